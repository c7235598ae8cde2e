"""Every write to proposed actions: proposal, the lifecycle of SPEC §4, and execution results.

Each transition is one function, one transaction, with the action's row locked
(`SELECT ... FOR UPDATE`) before its status is read. An illegal move raises
`InvalidTransition`; nothing is ever silently overwritten. Evidence counters and the audit
log are written in the same transaction as the change they describe.
"""

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import Deployment, Member
from deployments.policy import Route, Stage, route_for
from deployments.services import audit_event_record, evidence_add
from reviews.canonical import payload_sha256
from reviews.models import Decision, ProposedAction

Status = ProposedAction.Status

ROUTE_STATUS = {
    Route.SHADOW: Status.LOGGED,
    Route.AUTO: Status.APPROVED,
    Route.REVIEW: Status.PENDING_REVIEW,
    Route.SENIOR: Status.PENDING_SENIOR,
}


AUDIT_VERBS = {
    Decision.Verb.APPROVE: "reviews.action.approved",
    Decision.Verb.EDIT: "reviews.action.edited_and_approved",
    Decision.Verb.REJECT: "reviews.action.rejected",
    Decision.Verb.EXPIRE: "reviews.action.expired",
}


def _lock(action_id: int) -> ProposedAction:
    """Load the action with its row locked; the caller is inside a transaction."""
    try:
        return ProposedAction.objects.select_for_update().select_related("deployment").get(pk=action_id)
    except ProposedAction.DoesNotExist:
        raise InvalidInput(f"action {action_id} does not exist") from None


def _member(user: AbstractBaseUser | None) -> Member | None:
    if user is None or not user.is_authenticated:
        return None
    return Member.objects.filter(user=user).first()


def _require_can_decide(action: ProposedAction, actor: AbstractBaseUser | None) -> None:
    """Reviewers decide the reviewer queue of their deployments; seniors also the senior queue."""
    member = _member(actor)
    if member is None:
        raise NotAllowed("only members may decide actions")
    if not member.is_admin and not member.deployments.filter(pk=action.deployment_id).exists():
        raise NotAllowed("you are not assigned to this deployment")
    if action.status == Status.PENDING_SENIOR and not member.is_senior:
        raise NotAllowed("only senior reviewers may decide the senior queue")


@transaction.atomic
def proposed_action_create(
    *,
    deployment: Deployment,
    action_type: str,
    payload: dict[str, Any],
    risk_score: float,
    confidence: float,
    external_id: str = "",
    model_version: str = "",
    rationale: str = "",
    needs_human: bool = False,
    callback_url: str = "",
    idempotency_key: str | None = None,
    actor_label: str = "",
    on_created: Callable[[ProposedAction], None] | None = None,
) -> ProposedAction:
    """Store a proposed action and route it by the deployment's effective stage (SPEC §1).

    Refuses (Conflict) a proposal that repeats one already rejected for the same external_id.
    `on_created(action)` runs last, inside this transaction: what it writes (the API's stored
    idempotent response) commits or rolls back with the action, without a savepoint.
    """
    proposal_hash = payload_sha256(payload)
    if (
        external_id
        and ProposedAction.objects.filter(
            deployment=deployment,
            external_id=external_id,
            action_type=action_type,
            proposal_sha256=proposal_hash,
            status=Status.REJECTED,
        ).exists()
    ):
        raise Conflict(
            f"this {action_type} for external_id {external_id!r} was already rejected; a rejected action stays rejected"
        )

    stage = deployment.effective_stage(action_type)
    route = route_for(
        stage=stage,
        thresholds=deployment.thresholds,
        risk=risk_score,
        confidence=confidence,
        needs_human=needs_human,
        fail_closed=deployment.fail_closed,
    )
    now = timezone.now()
    action = ProposedAction(
        deployment=deployment,
        action_type=action_type,
        external_id=external_id,
        idempotency_key=idempotency_key,
        payload=payload,
        proposal_sha256=proposal_hash,
        risk_score=risk_score,
        confidence=confidence,
        model_version=model_version,
        rationale=rationale,
        needs_human=needs_human,
        callback_url=callback_url,
        stage=stage.value,
        route=route.value,
        status=ROUTE_STATUS[route],
    )
    if route is Route.AUTO:
        action.final_payload = payload
        action.payload_sha256 = proposal_hash
        action.decided_at = now
        action.audit_sample = random.random() < deployment.audit_sample_rate
    elif route is Route.REVIEW:
        action.expires_at = now + deployment.review_sla
    elif route is Route.SENIOR:
        action.expires_at = now + deployment.senior_sla
    action.save()

    evidence_add(deployment_id=deployment.pk, action_type=action_type, metric=f"proposed.{route.value}")
    audit_event_record(
        verb="reviews.action.auto_approved" if route is Route.AUTO else "reviews.action.proposed",
        actor_label=actor_label or "agent",
        deployment=deployment,
        obj=action,
        data={
            "action_type": action_type,
            "route": route.value,
            "stage": stage.value,
            "risk_score": risk_score,
            "confidence": confidence,
            "fail_closed": deployment.fail_closed,
        },
    )
    if on_created is not None:
        on_created(action)
    return action


def _record_human_decision(
    *,
    action: ProposedAction,
    verb: Decision.Verb,
    actor: AbstractBaseUser | None,
    from_status: str,
    reason: str,
    now: datetime,
    payload_before: Any = None,
    payload_after: Any = None,
) -> Decision:
    started = action.claimed_at if action.claimed_at and action.claimed_by_id == getattr(actor, "pk", None) else None
    seconds = (now - (started or action.created_at)).total_seconds()
    decision = Decision.objects.create(
        action=action,
        verb=verb,
        actor=actor if actor is not None and actor.is_authenticated else None,
        from_status=from_status,
        to_status=action.status,
        reason=reason,
        payload_before=payload_before,
        payload_after=payload_after,
        claimed_at=started,
        seconds_to_decide=seconds,
    )
    deployment_id, action_type = action.deployment_id, action.action_type
    evidence_add(deployment_id=deployment_id, action_type=action_type, metric=f"decision.{verb.value}", total=seconds)
    if verb in (Decision.Verb.APPROVE, Decision.Verb.EDIT, Decision.Verb.REJECT):
        within = action.expires_at is None or now <= action.expires_at
        evidence_add(
            deployment_id=deployment_id,
            action_type=action_type,
            metric="sla.within" if within else "sla.breached",
        )
    # The 2→3 counterfactual: would stage 3 have auto-executed this approval-stage action?
    if action.stage == Stage.APPROVAL and verb in (
        Decision.Verb.APPROVE,
        Decision.Verb.EDIT,
        Decision.Verb.REJECT,
    ):
        would_route = route_for(
            stage=Stage.SUPERVISED,
            thresholds=action.deployment.thresholds,
            risk=action.risk_score,
            confidence=action.confidence,
            needs_human=action.needs_human,
        )
        if would_route is Route.AUTO:
            evidence_add(deployment_id=deployment_id, action_type=action_type, metric="counterfactual.auto")
            if verb is not Decision.Verb.APPROVE:
                evidence_add(deployment_id=deployment_id, action_type=action_type, metric="counterfactual.auto_changed")
    audit_event_record(
        verb=AUDIT_VERBS[verb],
        actor=actor,
        deployment=deployment_id,
        obj=action,
        reason=reason,
        data={"from": from_status, "to": action.status, "seconds_to_decide": round(seconds, 3)},
    )
    return decision


@transaction.atomic
def proposed_action_approve(
    *,
    action_id: int,
    actor: AbstractBaseUser,
    payload: dict[str, Any] | None = None,
    reason: str = "",
) -> ProposedAction:
    """Approve a pending action, optionally with an edited payload (bound by its SHA-256)."""
    action = _lock(action_id)
    if not action.is_pending:
        raise InvalidTransition(f"action {action.pk} is {action.status}; only pending actions can be approved")
    _require_can_decide(action, actor)
    if payload is not None and not isinstance(payload, dict):
        raise InvalidInput("the edited payload must be a JSON object")
    edited = payload is not None and payload_sha256(payload) != action.proposal_sha256
    final = payload if edited else action.payload
    now = timezone.now()
    from_status = action.status
    action.status = Status.APPROVED
    action.final_payload = final
    action.payload_sha256 = payload_sha256(final)
    action.reason = reason
    action.decided_at = now
    _record_human_decision(
        action=action,
        verb=Decision.Verb.EDIT if edited else Decision.Verb.APPROVE,
        actor=actor,
        from_status=from_status,
        reason=reason,
        now=now,
        payload_before=action.payload if edited else None,
        payload_after=final if edited else None,
    )
    action.claimed_by, action.claimed_at = None, None
    action.save()
    return action


@transaction.atomic
def proposed_action_reject(*, action_id: int, actor: AbstractBaseUser, reason: str) -> ProposedAction:
    """Reject a pending action. A reason is required."""
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required to reject")
    action = _lock(action_id)
    if not action.is_pending:
        raise InvalidTransition(f"action {action.pk} is {action.status}; only pending actions can be rejected")
    _require_can_decide(action, actor)
    now = timezone.now()
    from_status = action.status
    action.status = Status.REJECTED
    action.reason = reason.strip()
    action.decided_at = now
    _record_human_decision(
        action=action,
        verb=Decision.Verb.REJECT,
        actor=actor,
        from_status=from_status,
        reason=action.reason,
        now=now,
    )
    action.claimed_by, action.claimed_at = None, None
    action.save()
    return action


@transaction.atomic
def proposed_action_escalate(*, action_id: int, actor: AbstractBaseUser, reason: str) -> ProposedAction:
    """Move an action from the reviewer queue to the senior queue. A reason is required."""
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required to escalate")
    action = _lock(action_id)
    if action.status != Status.PENDING_REVIEW:
        raise InvalidTransition(
            f"action {action.pk} is {action.status}; only actions in the reviewer queue can be escalated"
        )
    _require_can_decide(action, actor)
    now = timezone.now()
    action.status = Status.PENDING_SENIOR
    action.reason = reason.strip()
    action.expires_at = now + action.deployment.senior_sla
    started = action.claimed_at if action.claimed_by_id == actor.pk else None
    seconds = (now - (started or action.created_at)).total_seconds()
    Decision.objects.create(
        action=action,
        verb=Decision.Verb.ESCALATE,
        actor=actor,
        from_status=Status.PENDING_REVIEW,
        to_status=Status.PENDING_SENIOR,
        reason=action.reason,
        claimed_at=started,
        seconds_to_decide=seconds,
    )
    evidence_add(
        deployment_id=action.deployment_id,
        action_type=action.action_type,
        metric="decision.escalate",
        total=seconds,
    )
    audit_event_record(
        verb="reviews.action.escalated",
        actor=actor,
        deployment=action.deployment_id,
        obj=action,
        reason=action.reason,
        data={"from": Status.PENDING_REVIEW, "to": Status.PENDING_SENIOR},
    )
    action.claimed_by, action.claimed_at = None, None
    action.save()
    return action


@transaction.atomic
def proposed_action_expire(*, action_id: int, now: datetime | None = None) -> ProposedAction | None:
    """Expire a pending action whose SLA deadline has passed. Safe to repeat: returns None
    (and changes nothing) when the action was decided, or expired, in the meantime."""
    now = now or timezone.now()
    action = _lock(action_id)
    if not action.is_pending or action.expires_at is None or action.expires_at > now:
        return None
    from_status = action.status
    action.status = Status.EXPIRED
    action.decided_at = now
    action.reason = "SLA passed without a decision"
    _record_human_decision(
        action=action,
        verb=Decision.Verb.EXPIRE,
        actor=None,
        from_status=from_status,
        reason=action.reason,
        now=now,
    )
    action.claimed_by, action.claimed_at = None, None
    action.save()
    return action


@transaction.atomic
def proposed_action_report_result(
    *, action_id: int, status: str, payload_hash: str, error: str = "", actor_label: str = "agent"
) -> ProposedAction:
    """Record the agent's execution result, bound to the SHA-256 of the final payload.

    Safe to repeat: reporting the same status again returns the action unchanged.
    """
    if status not in (Status.EXECUTED, Status.FAILED):
        raise InvalidInput("status must be 'executed' or 'failed'")
    action = _lock(action_id)
    if action.status == status and action.payload_sha256 == payload_hash:
        return action
    if action.status != Status.APPROVED:
        raise InvalidTransition(
            f"action {action.pk} is {action.status}; a result can be reported only for approved actions"
        )
    if payload_hash != action.payload_sha256:
        raise Conflict("payload_sha256 does not match the final payload's SHA-256; execute the final payload")
    action.status = status
    action.executed_at = timezone.now()
    action.result_error = error or ""
    action.save(update_fields=["status", "executed_at", "result_error"])
    evidence_add(
        deployment_id=action.deployment_id,
        action_type=action.action_type,
        metric=f"execution.{status}.{action.route}",
    )
    audit_event_record(
        verb=f"reviews.action.{status}",
        actor_label=actor_label,
        deployment=action.deployment_id,
        obj=action,
        data={"error": error[:1000]} if error else {},
    )
    return action
