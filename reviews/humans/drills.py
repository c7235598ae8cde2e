"""Fire drills (issue 17 item 4): admins define known-bad sample actions per action type
(`DrillTemplate`, in the admin); with the deployment's `drill_rate` per proposal routed to the
reviewer queue, a copy of one (a `Drill`) is placed in that queue, looking like any other item.

A drill never executes and never reaches an agent: it has no callback URL (no webhook), the
agent API answers 404 for it (reviews.selectors.action_get_for_deployment), and it is never
`approved` (so nothing can claim it for execution). Deciding it writes no evidence counter
(the gate never sees it) and no Decision: only its `Drill` row's outcome, the reviewer's
`drill.caught` / `drill.missed` counter (the quality page's catch rate) and an audit event.
Approving it (with or without edits) is a missed drill; rejecting or escalating it, a caught
one. Either way the drill is closed (rejected, reason "fire drill") and the reviewer is told at
once what was wrong with it. A drill left to its SLA expires without evidence.
"""

import random

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.updates import model_update
from deployments.counters import Metric
from deployments.errors import InvalidTransition
from deployments.models import Deployment
from deployments.permissions import on_behalf_data
from deployments.policy import Route
from deployments.reviewers import reviewer_counts_add
from deployments.rules import approvals_required, rules_for, rules_match
from deployments.services import audit_event_record
from reviews.canonical import payload_sha256
from reviews.claims import CLAIM_CLEARED
from reviews.humans.common import Status, require_may_decide
from reviews.humans.models import Drill, DrillTemplate
from reviews.models import ProposedAction

DRILL = ProposedAction.Sample.DRILL
CLOSED_REASON = "fire drill: a known-bad sample, never executed"


def drill_maybe_place(*, deployment: Deployment, action_type: str, draw=random.random) -> ProposedAction | None:
    """With `deployment.drill_rate`, place a copy of one active drill template of
    `action_type` in the reviewer queue; None when not drawn or there is no template. Call
    after a proposal routed to the reviewer queue; no query when the rate is 0."""
    if deployment.drill_rate <= 0 or draw() >= deployment.drill_rate:
        return None
    templates = list(DrillTemplate.objects.filter(deployment=deployment, action_type=action_type, active=True))
    if not templates:
        return None
    return drill_place(template=random.choice(templates))


@transaction.atomic
def drill_place(*, template: DrillTemplate) -> ProposedAction:
    """Put a copy of `template` in its deployment's reviewer queue, with the SLA of any item.
    Audited on the template (the action's own history stays like any item's)."""
    deployment = template.deployment
    now = timezone.now()
    action = ProposedAction.objects.create(
        deployment=deployment,
        action_type=template.action_type,
        payload=template.payload,
        proposal_sha256=payload_sha256(template.payload),
        risk_score=template.risk_score,
        confidence=template.confidence,
        rationale=template.rationale,
        stage=deployment.effective_stage(template.action_type).value,
        route=ProposedAction.RouteChoices.REVIEW,
        status=Status.PENDING_REVIEW,
        review_sample=DRILL,
        created_at=now,
        expires_at=now + deployment.review_sla,
        approvals_required=_quorum(template),
    )
    Drill.objects.create(action=action, template=template)
    audit_event_record(
        verb="reviews.drill.placed",
        actor_label="system",
        deployment=deployment.pk,
        obj=template,
        data={"action": action.pk, "action_type": template.action_type},
    )
    return action


def _quorum(template: DrillTemplate) -> int:
    """The approvals its payload rules would ask of a real proposal like the template, so the
    drill looks like its neighbours ("0 of 2 approvals"); its first approval is still a miss."""
    rules = rules_for(template.deployment.payload_rules, template.action_type)
    if not rules:
        return 1
    fields = {
        "payload": template.payload,
        "action_type": template.action_type,
        "risk_score": template.risk_score,
        "confidence": template.confidence,
        "needs_human": False,
        "external_id": "",
        "model_version": "",
        "rationale": template.rationale,
    }
    return approvals_required(Route.REVIEW, rules_match(rules, fields))


def drill_decide(*, action: ProposedAction, actor: AbstractBaseUser | None, decision: str) -> Drill:
    """Close a pending drill on `decision` (approve: missed; reject or escalate: caught; expire:
    neither, by the clock, `actor` None). Caller holds the row lock; `actor` may decide it
    (checked here). Writes no evidence counter and no Decision."""
    if action.review_sample != DRILL or not action.is_pending:
        raise InvalidTransition(f"action {action.pk} is no pending drill")
    now = timezone.now()
    on_behalf_of = require_may_decide(action, actor, now) if actor is not None else None
    drill = Drill.objects.select_related("template").get(action=action)
    caught = decision in ("reject", "escalate")
    model_update(drill, actor=actor, decision=decision, decided_at=now, caught=caught if actor is not None else None)
    status = Status.EXPIRED if actor is None else Status.REJECTED
    model_update(action, status=status, reason=CLOSED_REASON, decided_at=now, **CLAIM_CLEARED)
    if actor is not None:
        reviewer_counts_add(
            deployment_id=action.deployment_id,
            user_id=actor.pk,
            day=now.date(),
            metrics={Metric.DRILL_CAUGHT if caught else Metric.DRILL_MISSED: (1, 0.0)},
        )
    audit_event_record(
        verb="reviews.drill.expired" if actor is None else "reviews.drill.caught" if caught else "reviews.drill.missed",
        actor=actor,
        actor_label="" if actor else "system",
        obj=action,
        data={"decision": decision} | on_behalf_data(on_behalf_of),
    )
    return drill


def drill_notice(drill: Drill) -> str:
    """What the reviewer is told at once, after deciding a drill."""
    wrong = drill.template.what_is_wrong
    if drill.caught:
        return f"Well caught: #{drill.action_id} was a fire drill, a known-bad sample. {wrong}".strip()
    return (
        f"#{drill.action_id} was a fire drill, a known-bad sample: approving it is recorded as a missed drill. "
        f"Nothing was executed. {wrong}"
    ).strip()
