"""Block Kit for Slack approvals: the message that shows an action, the reason modal, notices.

Everything an agent wrote (payload, rationale, action type) goes out as `plain_text`, never
`mrkdwn`, so it cannot mention `@channel`, link or format anything; our own text is escaped.
Each button's value binds the click to what the message showed: the action's id, its status
and the SHA-256 of its payload (reviews.services refuses the rest).
"""

import json
from typing import Any

from django.conf import settings
from django.urls import reverse

from reviews.models import Decision, ProposedAction
from reviews.selectors import payload_summary

APPROVE, REJECT, ESCALATE = "tl_approve", "tl_reject", "tl_escalate"
DECISIONS = {APPROVE: "approve", REJECT: "reject", ESCALATE: "escalate"}
REASON_CALLBACK = "tl_reason"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"

QUEUE_NAMES = {
    ProposedAction.Status.PENDING_REVIEW: "reviewer queue",
    ProposedAction.Status.PENDING_SENIOR: "senior queue",
}
OUTCOMES = {
    Decision.Verb.APPROVE: "✅ Approved",
    Decision.Verb.EDIT: "✅ Approved with edits",
    Decision.Verb.REJECT: "⛔ Rejected",
    Decision.Verb.ESCALATE: "⬆️ Escalated to the senior queue",
    Decision.Verb.EXPIRE: "⌛ Expired without a decision",
}


def escape(text: str) -> str:
    """Slack's mrkdwn escaping (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    text = text or " "
    return {"type": "plain_text", "text": text if len(text) <= limit else text[: limit - 1] + "…", "emoji": False}


def action_url(action: ProposedAction) -> str:
    return settings.TRUSTLADDER_BASE_URL + reverse("reviews:action_detail", kwargs={"action_id": action.pk})


def button_value(action: ProposedAction) -> str:
    return json.dumps({"id": action.pk, "sha": action.proposal_sha256, "status": action.status}, separators=(",", ":"))


def _decided_line(action: ProposedAction) -> str:
    decision = action.decisions.select_related("actor").order_by("-created_at", "-id").first()
    if decision is None:
        return ""
    who = f" by *{escape(decision.actor.get_username())}*" if decision.actor else ""
    when = f" at {decision.created_at:%Y-%m-%d %H:%M} UTC"
    reason = f" — “{escape(decision.reason)}”" if decision.reason and decision.verb != Decision.Verb.EXPIRE else ""
    return f"{OUTCOMES.get(decision.verb, escape(decision.verb))}{who}{when}{reason}"


def action_message(action: ProposedAction, notice: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and blocks of the message that shows `action` as it is now; with
    buttons while it waits in a queue. `notice` (our own text, already mrkdwn) goes last."""
    deployment = action.deployment
    fallback = f"Trustladder #{action.pk} {action.action_type} ({deployment.slug}): {action.status}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f"#{action.pk} {action.action_type}", 150)},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Deployment*\n{escape(deployment.name)} (`{escape(deployment.slug)}`)"},
                {"type": "mrkdwn", "text": f"*Queue*\n{QUEUE_NAMES.get(action.status, action.status)}"},
                {"type": "mrkdwn", "text": f"*Risk*\n{action.risk_score:.3f}"},
                {"type": "mrkdwn", "text": f"*Confidence*\n{action.confidence:.3f}"},
            ],
        },
        {"type": "section", "text": plain(payload_summary(action.payload, width=900))},
    ]
    if action.quorum_label:  # reviews/quorum.py: several people must approve
        blocks[1]["fields"].append({"type": "mrkdwn", "text": f"*Approvals*\n{action.quorum_label}"})
    blocks += [
        {"type": "context", "elements": [plain("Rationale: " + (action.rationale or "(none given)"), 1500)]},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"<{action_url(action)}|Open #{action.pk} in Trustladder>"}],
        },
    ]
    if action.is_pending:
        if action.status == ProposedAction.Status.PENDING_SENIOR and (line := _decided_line(action)):
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
        value = button_value(action)
        buttons = [
            {
                "type": "button",
                "action_id": APPROVE,
                "text": plain("Approve"),
                "style": "primary",
                "value": value,
                "confirm": {
                    "title": plain("Approve this action?"),
                    "text": plain(f"#{action.pk} {action.action_type} will be executed as shown."),
                    "confirm": plain("Approve"),
                    "deny": plain("Cancel"),
                },
            },
            {"type": "button", "action_id": REJECT, "text": plain("Reject"), "style": "danger", "value": value},
        ]
        if action.status == ProposedAction.Status.PENDING_REVIEW:
            buttons.append({"type": "button", "action_id": ESCALATE, "text": plain("Escalate"), "value": value})
        blocks.append({"type": "actions", "block_id": f"tl_decide_{action.pk}", "elements": buttons})
    else:
        line = _decided_line(action) or f"Now *{escape(action.status)}*"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    if notice:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": notice}]})
    return fallback, blocks


def reason_modal(*, action: ProposedAction, decision: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The modal that asks for the reason a reject or an escalation needs."""
    verb = "Reject" if decision == "reject" else "Escalate"
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "title": plain(f"{verb} #{action.pk}", 24),
        "submit": plain(verb),
        "close": plain("Cancel"),
        "blocks": [
            {"type": "section", "text": plain(f"{action.action_type}: {payload_summary(action.payload, width=500)}")},
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": plain("Reason (required)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            },
        ],
    }


def breaker_message(*, deployment: Any, reason: str) -> tuple[str, list[dict[str, Any]]]:
    url = settings.TRUSTLADDER_BASE_URL + reverse("deployments:detail", kwargs={"slug": deployment.slug})
    text = f"Circuit breaker tripped: {deployment.slug}"
    return text, [
        {"type": "header", "text": plain(f"🚨 Circuit breaker tripped: {deployment.name}", 150)},
        {"type": "section", "text": plain(reason or "(no reason recorded)")},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Every action of `{escape(deployment.slug)}` now waits for a person until an admin "
                    f"resets the breaker: <{url}|open the deployment>",
                }
            ],
        },
    ]


def sla_message(*, action: ProposedAction, minutes_left: int) -> tuple[str, list[dict[str, Any]]]:
    text = f"#{action.pk} {action.action_type} expires in {minutes_left} min"
    return text, [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"⏰ <{action_url(action)}|#{action.pk}> is near its SLA: it expires in *{minutes_left} min* "
                f"({action.expires_at:%H:%M} UTC) unless someone decides it.",
            },
        }
    ]
