"""Every write to proposed actions: proposal, the lifecycle of SPEC §4, and execution results.

Each transition is one function, one transaction, with the action's row locked
(`SELECT ... FOR UPDATE`) before its status is read. An illegal move raises
`InvalidTransition`; nothing is ever silently overwritten. Evidence counters and the audit
log are written in the same transaction as the change they describe.
"""

import random
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.tasks import enqueue_on_commit
from deliveries.services import delivery_create
from deployments.counters import Metric
from deployments.errors import ApiKeyChanged, Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import Deployment, KeyCheck, Member
from deployments.permissions import require_assigned
from deployments.policy import Route, Stage, route_for
from deployments.services import (
    audit_event_build,
    audit_event_record,
    blast_radius_reserve,
    breaker_check,
    evidence_add,
    evidence_deltas,
)
from reviews.canonical import payload_sha256
from reviews.idempotency import IdempotencyKeyTaken
from reviews.ingest import NewProposal, Outcome, proposal_insert
from reviews.models import Decision, IdempotencyRecord, ProposedAction
from reviews.representation import action_representation
from reviews.shadow.services import shadow_action_logged

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

# The webhook event each human (or clock) decision sends to the action's callback_url.
WEBHOOK_EVENTS = {
    Decision.Verb.APPROVE: "action.approved",
    Decision.Verb.EDIT: "action.approved",
    Decision.Verb.REJECT: "action.rejected",
    Decision.Verb.EXPIRE: "action.expired",
}


def _lock(action_id: int) -> ProposedAction:
    """Load the action with its row locked; the caller is inside a transaction."""
    try:
        # of=("self",): lock the action only, not its deployment row (blast-radius reservations lock that).
        return ProposedAction.objects.select_for_update(of=("self",)).select_related("deployment").get(pk=action_id)
    except ProposedAction.DoesNotExist:
        raise InvalidInput(f"action {action_id} does not exist") from None


def _member(user: AbstractBaseUser | None) -> Member | None:
    if user is None or not user.is_authenticated:
        return None
    return Member.objects.filter(user=user).first()


def _require_can_decide(action: ProposedAction, actor: AbstractBaseUser | None) -> None:
    """Reviewers decide the reviewer queue of their deployments; seniors also the senior queue."""
    member = require_assigned(_member(actor), action.deployment_id, who="only members may decide actions")
    if action.status == Status.PENDING_SENIOR and not member.is_senior:
        raise NotAllowed("only senior reviewers may decide the senior queue")


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
    idempotency_record: IdempotencyRecord | None = None,
    key_check: KeyCheck | None = None,
    traceparent: str = "",
) -> ProposedAction:
    """Store a proposed action and route it by the deployment's effective stage (SPEC §1).

    Refuses (Conflict) a proposal that repeats one already rejected for the same external_id.
    `idempotency_record`, the API's Idempotency-Key, is stored with the 201 reply in the same
    transaction, so the replay exists exactly when the action does: an unsaved record is
    claimed there (IdempotencyKeyTaken if the key is already claimed), a saved one (claimed
    before, reviews.idempotency) completed. With `key_check` (an API key from the process's
    cache, `deployment` as read with it) nothing is written unless the key is still as it was
    read (ApiKeyChanged). `traceparent` is the agent's W3C trace context, kept on the action.

    One transaction: with a blast-radius budget to reserve, an explicit one (the reservation
    locks the deployment row); otherwise the single statement of `reviews.ingest`.
    """
    proposal_hash = payload_sha256(payload)
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
    reserve = route is Route.AUTO and deployment.has_blast_limits
    with transaction.atomic() if reserve else nullcontext():
        limited = ""
        if reserve:
            allowed, limited = blast_radius_reserve(deployment=deployment, payload=payload, now=now)
            if not allowed:
                route = Route.REVIEW  # past a blast-radius limit (or failed closed meanwhile): a person decides
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
            created_at=now,
            traceparent=traceparent,
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
        audit = audit_event_build(
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
                **({"limited": limited} if limited else {}),
            },
        )
        stored = proposal_insert(
            NewProposal(
                action=action,
                audit=audit,
                counters=evidence_deltas(
                    deployment_id=deployment.pk, action_type=action_type, metric=Metric.of("proposed", route), at=now
                ),
                unless_rejected=bool(external_id),
                idempotency=idempotency_record,
                key_check=key_check,
            )
        )
        if stored is Outcome.REJECTED:
            raise Conflict(
                f"this {action_type} for external_id {external_id!r} was already rejected; "
                "a rejected action stays rejected"
            )
        if stored is Outcome.KEY_TAKEN:
            raise IdempotencyKeyTaken(idempotency_key)
        if stored is Outcome.KEY_CHANGED:
            raise ApiKeyChanged(key_check)
    if route is Route.SHADOW:
        shadow_action_logged(action=action)  # its outcome may have arrived first
    elif route in (Route.REVIEW, Route.SENIOR):
        _slack_sync(action)
    return action


def _slack_sync(action: ProposedAction) -> None:
    """Slack approvals (integrations.slack): post or update the action's message once this
    transaction commits, if its deployment has a Slack channel."""
    if action.deployment.slack_channel:
        enqueue_on_commit("integrations.slack_action_sync", action.pk, robust=True)


def _decision_create(
    *,
    action: ProposedAction,
    verb: Decision.Verb,
    actor: AbstractBaseUser | None,
    from_status: str,
    reason: str,
    now: datetime,
    payload_before: Any = None,
    payload_after: Any = None,
    metric: Metric | None = None,
) -> tuple[Decision, float]:
    """The Decision row of a move (to `action.status`, already set) and its counter
    (`metric`, by default `decision.<verb>`) with the seconds it took (from the decider's
    claim, else from the proposal)."""
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
    evidence_add(
        deployment_id=action.deployment_id,
        action_type=action.action_type,
        metric=metric or Metric.of("decision", verb),
        total=seconds,
    )
    _slack_sync(action)
    return decision, seconds


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
    """A final decision (approve, edit, reject, expire): its Decision and counters, the SLA
    and 2→3 counterfactual evidence, the audit event and the agent's webhook."""
    decision, seconds = _decision_create(
        action=action,
        verb=verb,
        actor=actor,
        from_status=from_status,
        reason=reason,
        now=now,
        payload_before=payload_before,
        payload_after=payload_after,
    )
    deployment_id, action_type = action.deployment_id, action.action_type
    if verb in (Decision.Verb.APPROVE, Decision.Verb.EDIT, Decision.Verb.REJECT):
        within = action.expires_at is None or now <= action.expires_at
        evidence_add(
            deployment_id=deployment_id,
            action_type=action_type,
            metric=Metric.SLA_WITHIN if within else Metric.SLA_BREACHED,
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
            evidence_add(deployment_id=deployment_id, action_type=action_type, metric=Metric.COUNTERFACTUAL_AUTO)
            if verb is not Decision.Verb.APPROVE:
                changed = Metric.COUNTERFACTUAL_AUTO_CHANGED
                evidence_add(deployment_id=deployment_id, action_type=action_type, metric=changed)
    audit_event_record(
        verb=AUDIT_VERBS[verb],
        actor=actor,
        deployment=deployment_id,
        obj=action,
        reason=reason,
        data={"from": from_status, "to": action.status, "seconds_to_decide": round(seconds, 3)},
    )
    if action.callback_url:
        # The outbox row commits (or rolls back) with the decision: the agent learns every one.
        delivery_create(
            deployment_id=deployment_id,
            url=action.callback_url,
            event_type=WEBHOOK_EVENTS[verb],
            body=action_representation(action),
            object_type=action._meta.label_lower,
            object_id=str(action.pk),
            traceparent=action.traceparent,
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
    # Not a final decision: no SLA or counterfactual evidence and no webhook (the agent keeps
    # waiting), so only the Decision row and its counter are shared with the others.
    _decision_create(
        action=action,
        verb=Decision.Verb.ESCALATE,
        actor=actor,
        from_status=Status.PENDING_REVIEW,
        reason=action.reason,
        now=now,
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
        metric=Metric.of("execution", status, action.route),
    )
    audit_event_record(
        verb=f"reviews.action.{status}",
        actor_label=actor_label,
        deployment=action.deployment_id,
        obj=action,
        data={"error": error[:1000]} if error else {},
    )
    breaker_check(deployment=action.deployment)  # SPEC §3: checked on every result report
    return action


def proposed_action_claims_release_stale(*, now: datetime | None = None) -> int:
    """Clear claims older than REVIEW_CLAIM_TIMEOUT on pending actions; returns how many.

    One conditional UPDATE: a claim renewed meanwhile no longer matches, so it is never
    released by mistake. Safe to repeat. Not audited: a claim is not a decision.
    """
    cutoff = (now or timezone.now()) - settings.REVIEW_CLAIM_TIMEOUT
    return ProposedAction.objects.pending().filter(claimed_at__lt=cutoff).update(claimed_by=None, claimed_at=None)


# ---------------------------------------------------------------------------------------
# Claims: a reviewer's short lease on a queue item (REVIEW_CLAIM_TIMEOUT), so two people do
# not work the same item. A claim is not a state transition: it is not audited, and a
# decision clears it.
# ---------------------------------------------------------------------------------------


def _require_can_work_queue(member: Member | None, queue: str) -> Member:
    if member is None:
        raise NotAllowed("only members may work the queues")
    if queue not in ("review", "senior", "audit"):
        raise InvalidInput(f"unknown queue {queue!r}")
    if queue != "review" and not member.is_senior:
        raise NotAllowed(f"only senior reviewers may work the {queue} queue")
    return member


@transaction.atomic
def proposed_action_claim_next(
    *,
    actor: AbstractBaseUser,
    queue: str = "review",
    deployment_id: int | None = None,
    action_type: str = "",
    skip_ids: tuple[int, ...] | list[int] = (),
    member: Member | None = None,
) -> ProposedAction | None:
    """Claim the oldest unclaimed item of `queue` (within the filters) for `actor`; None when
    nothing is left.

    A person holds at most one live claim: if `actor` already holds one in this queue (and it
    is not in `skip_ids`), that item is returned again; any other claim of theirs is released.
    On PostgreSQL the candidate row is taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so
    concurrent reviewers never block on, or receive, the same item. `member` is the actor's
    Member row when the caller has already loaded it (saves a query).
    """
    from django.db import connection

    from reviews.selectors import member_deployment_ids, queue_queryset

    if member is None or member.user_id != actor.pk:
        member = _member(actor)
    member = _require_can_work_queue(member, queue)
    now = timezone.now()
    candidates = queue_queryset(
        queue=queue,
        deployment_ids=member_deployment_ids(member),
        deployment_id=deployment_id,
        action_type=action_type,
    )
    held = candidates.held_by(actor, now).exclude(pk__in=list(skip_ids)).first()
    if held is not None:
        return held
    ProposedAction.objects.filter(claimed_by=actor).update(claimed_by=None, claimed_at=None)
    qs = candidates.unclaimed(now).exclude(pk__in=list(skip_ids))
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    action = qs.first()
    if action is None:
        return None
    action.claimed_by, action.claimed_at = actor, now
    action.save(update_fields=["claimed_by", "claimed_at"])
    return action


@transaction.atomic
def proposed_action_claim(*, action_id: int, actor: AbstractBaseUser) -> ProposedAction:
    """Claim one item for `actor` (renewing their own claim). Conflict when someone else holds
    a live claim on it; InvalidTransition when it is in no queue any more. Releases the actor's
    other claims (one live claim per person). Safe to repeat."""
    from reviews.selectors import action_queue

    action = _lock(action_id)
    queue = action_queue(action)
    if queue is None:
        raise InvalidTransition(f"action {action.pk} is {action.status}; it is in no queue")
    require_assigned(_require_can_work_queue(_member(actor), queue), action.deployment_id)
    now = timezone.now()
    _refuse_if_claimed_by_other(action, actor, now)
    ProposedAction.objects.filter(claimed_by=actor).exclude(pk=action.pk).update(claimed_by=None, claimed_at=None)
    action.claimed_by, action.claimed_at = actor, now
    action.save(update_fields=["claimed_by", "claimed_at"])
    return action


@transaction.atomic
def proposed_action_release(*, action_id: int, actor: AbstractBaseUser) -> ProposedAction:
    """Give back `actor`'s claim on an item. Safe to repeat; someone else's claim is left alone."""
    action = _lock(action_id)
    if action.claimed_by_id == actor.pk:
        action.claimed_by, action.claimed_at = None, None
        action.save(update_fields=["claimed_by", "claimed_at"])
    return action


def _refuse_if_claimed_by_other(action: ProposedAction, actor: AbstractBaseUser, now: datetime) -> None:
    """Caller holds the row lock."""
    from django.conf import settings

    if (
        action.claimed_by_id is not None
        and action.claimed_by_id != actor.pk
        and action.claimed_at is not None
        and action.claimed_at >= now - settings.REVIEW_CLAIM_TIMEOUT
    ):
        until = action.claimed_at + settings.REVIEW_CLAIM_TIMEOUT
        raise Conflict(f"{action.claimed_by} is working on this item (claimed until {until:%H:%M:%S} UTC)")


@transaction.atomic
def proposed_action_decide(
    *,
    action_id: int,
    actor: AbstractBaseUser,
    decision: str,
    reason: str = "",
    payload: dict[str, Any] | None = None,
) -> ProposedAction:
    """A person's decision from the browser: approve (optionally with an edited payload),
    reject or escalate. Refuses (Conflict) while someone else holds a live claim on the item,
    then calls the one transition service for the decision. Everything else — the state check,
    the Decision row, evidence and audit — is that service's."""
    action = _lock(action_id)
    _refuse_if_claimed_by_other(action, actor, timezone.now())
    if decision == "approve":
        return proposed_action_approve(action_id=action_id, actor=actor, payload=payload, reason=reason)
    if decision == "reject":
        return proposed_action_reject(action_id=action_id, actor=actor, reason=reason)
    if decision == "escalate":
        return proposed_action_escalate(action_id=action_id, actor=actor, reason=reason)
    raise InvalidInput("decision must be approve, reject or escalate")


AUDIT_VERDICTS = {"correct": Decision.Verb.AUDIT_CORRECT, "incorrect": Decision.Verb.AUDIT_INCORRECT}


@transaction.atomic
def proposed_action_audit_verdict(
    *, action_id: int, actor: AbstractBaseUser, verdict: str, reason: str = ""
) -> ProposedAction:
    """A senior's after-the-fact verdict on an auto-executed audit sample (SPEC §1).

    Preconditions: `actor` is a senior (or admin) assigned to the deployment; the action is an
    audit sample without a verdict; `verdict` is "correct" or "incorrect" (the latter needs a
    reason). Writes a Decision (audit_correct / audit_incorrect), the `audit.<verdict>`
    evidence counter the gate and breakers read, and the audit event, in one transaction.
    A second verdict raises InvalidTransition and changes nothing.
    """
    if verdict not in AUDIT_VERDICTS:
        raise InvalidInput("verdict must be 'correct' or 'incorrect'")
    reason = (reason or "").strip()
    if verdict == "incorrect" and not reason:
        raise InvalidInput("a reason is required for an 'incorrect' verdict")
    action = _lock(action_id)
    member = _member(actor)
    if member is None or not member.is_senior:
        raise NotAllowed("only senior reviewers may give audit verdicts")
    require_assigned(member, action.deployment_id)
    if not action.audit_sample:
        raise InvalidTransition(f"action {action.pk} is not an audit sample")
    if action.audit_verdict:
        raise InvalidTransition(f"action {action.pk} already has the audit verdict {action.audit_verdict!r}")
    # The verdict's Decision, timed from the auditor's claim, before the claim is released.
    _decision_create(
        action=action,
        verb=AUDIT_VERDICTS[verdict],
        actor=actor,
        from_status=action.status,
        reason=reason,
        now=timezone.now(),
        metric=Metric.of("audit", verdict),
    )
    action.audit_verdict = verdict
    action.claimed_by, action.claimed_at = None, None
    action.save(update_fields=["audit_verdict", "claimed_by", "claimed_at"])
    audit_event_record(
        verb="reviews.action.audit_verdict",
        actor=actor,
        deployment=action.deployment_id,
        obj=action,
        reason=reason,
        data={"verdict": verdict, "status": action.status, "route": action.route},
    )
    return action
