"""Slack approvals: the messages Trustladder posts and the decisions that come back.

A person's click decides through the same service as the browser's Decide button
(`reviews.services.proposed_action_decide`: role, deployment, claim and four-eyes rules, the
state check under the row lock), acting as the Trustladder user the Slack user is linked to.
Each button is bound to what its message showed (action id, status, payload SHA-256): a click
on a message that no longer shows the action as it is changes nothing, and the message is
updated to say why. A replayed request (same signed body) is recognised and changes nothing.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from core.jsonlimits import json_parse, text_problem
from core.tasks import enqueue_on_commit
from core.updates import model_update
from deployments.errors import DomainError, InvalidInput, InvalidTransition
from deployments.locks import deployment_lock
from deployments.models import AuditEvent, Deployment
from deployments.services import audit_event_record
from integrations.models import SlackInteraction, SlackMessage, SlackUser
from integrations.slack import blocks
from reviews.models import ProposedAction
from reviews.services import proposed_action_decide

logger = logging.getLogger(__name__)


def slack_web_client() -> WebClient:
    return WebClient(
        token=settings.TRUSTLADDER_SLACK_BOT_TOKEN or None, base_url=settings.TRUSTLADDER_SLACK_API_URL, timeout=10
    )


# ---------------------------------------------------------------------------------------
# Linking Slack users to members
# ---------------------------------------------------------------------------------------


def _slack_id(value: str, prefixes: str, name: str, hint: str) -> str:
    """`value` stripped, if it is a Slack id starting with one of `prefixes`; InvalidInput if not."""
    value = value.strip()
    if value[:1] not in prefixes or not (value.isascii() and value.isalnum()):
        raise InvalidInput(f"{value!r} is not {name} ({hint})")
    if len(value) > 32:
        raise InvalidInput(f"{name} has at most 32 characters")
    return value


def _audit(verb: str, actor: AbstractBaseUser | None, obj: object, data: dict) -> None:
    """A Slack setting's audit event: by `actor`, or by `manage.py` (the commands pass none)."""
    audit_event_record(verb=verb, actor=actor, actor_label="" if actor else "manage.py", obj=obj, data=data)


@transaction.atomic
def slack_user_link(*, username: str, slack_user_id: str, actor: AbstractBaseUser | None = None) -> SlackUser:
    """Map a Slack user id (U… or W…) to the Trustladder user `username` (replacing either
    side's previous link). Audited."""
    slack_user_id = _slack_id(slack_user_id, "UW", "a Slack user id", "U… or W…")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput(f"no user {username!r}")
    SlackUser.objects.filter(slack_user_id=slack_user_id).exclude(user=user).delete()
    link, _ = SlackUser.objects.update_or_create(user=user, defaults={"slack_user_id": slack_user_id})
    _audit("integrations.slack.user_linked", actor, link, {"username": username, "slack_user_id": slack_user_id})
    return link


@transaction.atomic
def deployment_slack_channel_set(*, slug: str, channel: str, actor: AbstractBaseUser | None = None) -> Deployment:
    """Set (or, with "", clear) the Slack channel id (C…, G… or D…) the deployment's queue
    items, breaker trips and SLA warnings are posted to. Audited. More notifications raise
    oversight, fewer leave every queue and gate as it was: no second admin either way."""
    channel = channel.strip() and _slack_id(channel, "CGD", "a Slack channel id", "C…, from the channel's details")
    found = Deployment.objects.filter(slug=slug).values_list("pk", flat=True).first()
    if found is None:
        raise InvalidInput(f"no deployment {slug!r}")
    deployment = deployment_lock(found)
    before = deployment.slack_channel
    model_update(deployment, slack_channel=channel)
    _audit("integrations.slack.channel_set", actor, deployment, {"before": before, "after": channel})
    return deployment


# ---------------------------------------------------------------------------------------
# Posting
# ---------------------------------------------------------------------------------------


def slack_action_sync(*, action_id: int, notice: str = "") -> SlackMessage | None:
    """Post the action's message (the first time, while it waits in a queue) or update it to
    show the action as it is now, with `notice` under it. Safe to repeat and to run
    concurrently: the message row is locked while Slack is called, so it is posted once.
    None when the deployment has no channel, or the action was decided before it was posted."""
    action = ProposedAction.objects.select_related("deployment").filter(pk=action_id).first()
    if action is None or not action.deployment.slack_channel:
        return None
    with transaction.atomic():
        message, _ = SlackMessage.objects.get_or_create(
            action=action, defaults={"deployment": action.deployment, "channel": action.deployment.slack_channel}
        )
        message = SlackMessage.objects.select_for_update().get(pk=message.pk)
        action.refresh_from_db()  # as it is now that no other sync of it runs
        if not message.ts and not action.is_pending:
            return None  # decided before it reached Slack: nothing to ask anyone
        text, content = blocks.action_message(action, notice)
        client = slack_web_client()
        if message.ts:
            client.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=content)
        else:
            response = client.chat_postMessage(channel=message.channel, text=text, blocks=content, unfurl_links=False)
            message.ts, message.channel = response["ts"], response.get("channel") or message.channel
        message.shown_status, message.shown_sha256 = action.status, action.proposal_sha256
        message.save(update_fields=["ts", "channel", "shown_status", "shown_sha256"])
    return message


def slack_breaker_post(*, deployment_id: int, event_id: int) -> SlackMessage | None:
    """Post a breaker trip to the deployment's channel, once per trip (its audit event)."""
    deployment = Deployment.objects.get(pk=deployment_id)
    event = AuditEvent.objects.filter(pk=event_id).first()
    if not deployment.slack_channel or event is None:
        return None
    with transaction.atomic():
        message, created = SlackMessage.objects.select_for_update().get_or_create(
            audit_event_id=event.pk,
            defaults={"kind": SlackMessage.Kind.BREAKER, "deployment": deployment, "channel": deployment.slack_channel},
        )
        if message.ts:
            return message
        text, content = blocks.breaker_message(deployment=deployment, reason=event.reason)
        response = slack_web_client().chat_postMessage(channel=message.channel, text=text, blocks=content)
        message.ts = response["ts"]
        message.save(update_fields=["ts"])
    return message


def slack_sla_warnings(*, now: datetime | None = None) -> int:
    """Post, in the thread of its message, every pending action near its SLA deadline (less
    than TRUSTLADDER_SLACK_SLA_WARN_FRACTION of its SLA left); once per deadline (an escalation
    sets a new one). Returns how many were posted. Safe to repeat."""
    now = now or timezone.now()
    fraction = settings.TRUSTLADDER_SLACK_SLA_WARN_FRACTION
    posted = 0
    candidates = (
        SlackMessage.objects.filter(kind=SlackMessage.Kind.ACTION, action__status__in=ProposedAction.PENDING_STATUSES)
        .exclude(ts="")
        .select_related("action__deployment")
    )
    for message in candidates:
        action = message.action
        sla = action.deployment.senior_sla if action.status == "pending_senior" else action.deployment.review_sla
        if action.expires_at is None or message.sla_warned_for == action.expires_at:
            continue
        left = action.expires_at - now
        if left > sla * fraction:
            continue
        with transaction.atomic():
            locked = SlackMessage.objects.select_for_update().get(pk=message.pk)
            if locked.sla_warned_for == action.expires_at:
                continue
            text, content = blocks.sla_message(action=action, minutes_left=max(int(left.total_seconds() // 60), 0))
            slack_web_client().chat_postMessage(
                channel=locked.channel, thread_ts=locked.ts, reply_broadcast=True, text=text, blocks=content
            )
            locked.sla_warned_for = action.expires_at
            locked.save(update_fields=["sla_warned_for"])
        posted += 1
    return posted


# ---------------------------------------------------------------------------------------
# Interactions (clicks and modal submissions)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the interactions endpoint answers Slack: 200 with this JSON body (or empty)."""

    body: dict[str, Any] | None = None


class Refused(Exception):  # noqa: N818 -- an outcome told to the Slack user, not an error of ours
    """A click that decides nothing. `stale`: the message no longer shows the action as it is."""

    def __init__(self, why: str, *, stale: bool = False) -> None:
        super().__init__(why)
        self.why, self.stale = why, stale

    @classmethod
    def of(cls, exc: DomainError) -> "Refused":
        return cls(exc.detail, stale=isinstance(exc, InvalidTransition))


def _first_seen(digest: str, slack_user_id: str) -> bool:
    """Record the request; False if it was seen before (a replay)."""
    try:
        with transaction.atomic():
            SlackInteraction.objects.create(digest=digest, slack_user_id=slack_user_id[:32])
    except IntegrityError:
        return False
    return True


def slack_interactions_purge(*, now: datetime | None = None) -> int:
    """Forget interactions older than an hour: their signatures (5 minutes) refuse a replay
    by themselves by then. Returns how many were deleted. Safe to repeat."""
    cutoff = (now or timezone.now()) - timedelta(hours=1)
    deleted, _ = SlackInteraction.objects.filter(received_at__lt=cutoff).delete()
    return deleted


def interaction_digest(timestamp: str, body: bytes) -> str:
    return hashlib.sha256(timestamp.encode() + b":" + body).hexdigest()


def _text(value: Any, limit: int = 255) -> str:
    """A string field of Slack's payload, or "" if it is anything else (a number, an object,
    text PostgreSQL cannot store) or longer than `limit`: Slack's ids are short ASCII."""
    if not isinstance(value, str) or len(value) > limit or text_problem(value):
        return ""
    return value


def _field(payload: dict[str, Any], name: str) -> dict[str, Any]:
    """An object field of the payload, or {}."""
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def _member_user(payload: dict[str, Any]) -> tuple[str, AbstractBaseUser]:
    user = _field(payload, "user")
    slack_user_id = _text(user.get("id"), 32)
    team_id = _text(_field(payload, "team").get("id")) or _text(user.get("team_id"))
    if settings.TRUSTLADDER_SLACK_TEAM_ID and team_id != settings.TRUSTLADDER_SLACK_TEAM_ID:
        raise Refused("this Slack workspace is not the one linked to Trustladder")
    link = SlackUser.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    if link is None or not link.user.is_active:
        raise Refused(
            "your Slack account is not linked to a Trustladder member; ask an admin to run "
            f"`manage.py link_slack <username> {blocks.escape(slack_user_id)}`"
        )
    return slack_user_id, link.user


def _bound(raw: Any) -> tuple[int, str, str, dict[str, Any]]:
    """The (action id, payload SHA-256, status) a button or modal was bound to, and the whole
    bound value (the modal's also names its decision)."""
    try:
        value = json_parse(raw) if isinstance(raw, str) and len(raw) <= 2000 else None
        action_id, sha, status = value["id"], _text(value["sha"]), _text(value["status"])
    except (ValueError, TypeError, KeyError):  # JsonProblem is a ValueError
        raise Refused("this button is not one of Trustladder's") from None
    if type(action_id) is not int or not 0 < action_id < 2**63 or not sha or not status:  # not bool either
        raise Refused("this button is not one of Trustladder's")
    return action_id, sha, status, value


def _check_bound(action: ProposedAction, sha: str, status: str) -> None:
    """Caller holds the action's row lock."""
    if action.proposal_sha256 != sha:
        raise Refused(f"#{action.pk}'s payload is not the one this message showed (it was edited)", stale=True)
    if action.status != status:
        raise Refused(f"#{action.pk} is now {action.status.replace('_', ' ')}; nothing changed", stale=True)


def _tell(payload: dict[str, Any], slack_user_id: str, text: str) -> None:
    """An ephemeral message to the one user who clicked."""
    channel = _text(_field(payload, "channel").get("id"))
    if not channel or not slack_user_id:
        return
    try:
        slack_web_client().chat_postEphemeral(channel=channel, user=slack_user_id, text=text)
    except SlackApiError:
        logger.warning("could not tell %s in Slack", slack_user_id, exc_info=True)


def _refused_notice(slack_user_id: str, why: str) -> str:
    return f"⚠️ <@{blocks.escape(slack_user_id)}>'s click was refused: {blocks.escape(why)}"


def _decide(
    *, user: AbstractBaseUser, action_id: int, sha: str, status: str, decision: str, reason: str = ""
) -> ProposedAction:
    """The decision, with the binding checked under the same row lock the service takes."""
    with transaction.atomic():
        action = ProposedAction.objects.select_for_update(of=("self",)).filter(pk=action_id).first()
        if action is None:
            raise Refused(f"action #{action_id} does not exist")
        _check_bound(action, sha, status)
        return proposed_action_decide(action_id=action_id, actor=user, decision=decision, reason=reason)


def slack_interaction_handle(*, payload: dict[str, Any], digest: str) -> Reply:
    """One verified interaction: a button click (`block_actions`) or the reason modal's
    submission (`view_submission`). Never raises for anything Slack (or a person) sends."""
    slack_user_id = _text(_field(payload, "user").get("id"), 32)
    if not _first_seen(digest, slack_user_id):
        return Reply()  # a replay: already handled, nothing changes
    kind = payload.get("type")
    if kind == "block_actions":
        return _on_click(payload, slack_user_id)
    if kind == "view_submission":
        return _on_reason(payload, slack_user_id)
    return Reply()


def _on_click(payload: dict[str, Any], slack_user_id: str) -> Reply:
    actions = payload.get("actions")
    click = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    decision = blocks.DECISIONS.get(_text(click.get("action_id")))
    if decision is None:
        return Reply()
    action_id = None
    try:
        action_id, sha, status, _ = _bound(click.get("value"))
        _, user = _member_user(payload)
        if decision == "approve":
            _decide(user=user, action_id=action_id, sha=sha, status=status, decision="approve")
            return Reply()  # the message is updated once the decision commits (reviews.services)
        # Reject and escalate need a reason: ask for it in a modal, bound like the button.
        action = ProposedAction.objects.select_related("deployment").filter(pk=action_id).first()
        if action is None:
            raise Refused(f"action #{action_id} does not exist")
        _check_bound(action, sha, status)
        metadata = {"id": action_id, "sha": sha, "status": status, "decision": decision}
        slack_web_client().views_open(
            trigger_id=_text(payload.get("trigger_id")),
            view=blocks.reason_modal(action=action, decision=decision, metadata=metadata),
        )
    except Refused as exc:
        _refuse(payload, slack_user_id, action_id, exc)
    except DomainError as exc:
        _refuse(payload, slack_user_id, action_id, Refused.of(exc))
    except SlackApiError:
        logger.warning("Slack refused a call while handling a click", exc_info=True)
    return Reply()


def _on_reason(payload: dict[str, Any], slack_user_id: str) -> Reply:
    view = _field(payload, "view")
    if view.get("callback_id") != blocks.REASON_CALLBACK:
        return Reply()
    try:
        values = view["state"]["values"][blocks.REASON_BLOCK][blocks.REASON_INPUT]
        reason = _text(values.get("value"), 3000).strip()  # Slack's plain_text_input holds 3000 at most
    except (KeyError, TypeError, AttributeError):
        reason = ""
    if not reason:
        return Reply({"response_action": "errors", "errors": {blocks.REASON_BLOCK: "A reason is required."}})
    action_id = None
    try:
        action_id, sha, status, bound = _bound(view.get("private_metadata"))
        decision = bound.get("decision")
        if decision not in ("reject", "escalate"):
            raise Refused("this form is not one of Trustladder's")
        _, user = _member_user(payload)
        _decide(user=user, action_id=action_id, sha=sha, status=status, decision=decision, reason=reason[:2000])
    except (Refused, DomainError) as exc:
        refused = exc if isinstance(exc, Refused) else Refused.of(exc)
        if action_id is not None and refused.stale:
            _sync_later(action_id, _refused_notice(slack_user_id, refused.why))
        return Reply({"response_action": "errors", "errors": {blocks.REASON_BLOCK: f"Refused: {refused.why}"}})
    return Reply()


def _refuse(payload: dict[str, Any], slack_user_id: str, action_id: int | None, refused: Refused) -> None:
    """Tell the person who clicked; if the message no longer shows the action as it is,
    update it to say why the click was refused."""
    _tell(payload, slack_user_id, f"Trustladder refused your click: {refused.why}")
    if action_id is not None and refused.stale:
        _sync_later(action_id, _refused_notice(slack_user_id, refused.why))


def _sync_later(action_id: int, notice: str) -> None:
    enqueue_on_commit("integrations.slack_action_sync", action_id, notice, robust=True)
