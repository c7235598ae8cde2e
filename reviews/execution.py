"""Executing an approved action, exactly once (issue 15, SPEC §7): the execution claim, the
result, reconciliation of an unknown result, cancellation and the agent's deadline.

```
approved ──claim──▶ executing ──result──▶ executed | failed | unknown ──reconcile──▶ executed
   ▲                                                               └───(not committed)──┐
   └────────────────────────────────────────────────────────────────────────────────────┘
pending_review | pending_senior | held | approved ──cancel──▶ cancelled
held | approved ──(the agent's deadline passes before a claim)──▶ expired
```

Every function here is one transition: one transaction, the action's row locked (after its
parent and run: ProposedAction.objects.locked_with_lineage) before its status is read, audited, its evidence
counter written, the agent's webhook queued. An illegal move raises a DomainError (409).
"""

import secrets
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from deployments.calibration import calibration_deltas
from deployments.counters import Metric, counters_add, evidence_deltas
from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import Member
from deployments.policy import Route
from deployments.services import audit_event_record, breaker_check
from reviews import runs
from reviews.models import ProposedAction
from reviews.services import _slack_sync as slack_sync  # one hook for every move of an action
from reviews.services import proposed_action_expire, replay_cell_deltas

Status = ProposedAction.Status
RESULTS = (Status.EXECUTED, Status.FAILED, Status.UNKNOWN)


class AlreadyClaimed(Conflict, code="already_claimed"):
    """The execution of this approval was claimed already: do not run it."""


class NotClaimed(Conflict, code="not_claimed"):
    """A result for an action whose execution nobody claimed."""


class AlreadyReported(Conflict, code="already_reported"):
    """A second result for one claim: refused, so the audit never shows one execution for two."""


class ActionExpired(Conflict, code="expired"):
    """The approval's deadline passed before its execution was claimed."""


class ActionCancelled(Conflict, code="cancelled"):
    """The agent cancelled the action: it will not run."""


def _agent_move(
    action: ProposedAction,
    *,
    to: str,
    fields: tuple[str, ...],
    metric: Metric,
    verb: str,
    event: str = "",
    actor: AbstractBaseUser | None = None,
    actor_label: str = "agent",
    reason: str = "",
    data: dict | None = None,
    settle: bool = False,
    replay: bool = False,
) -> ProposedAction:
    """The one shape of the moves here: set the status, save it with `fields` (set by the
    caller), add `metric`, audit `verb` (from, to and `data`), queue the agent's webhook
    `event`; with `settle`, release or refuse what its run or its children wait for
    (reviews.runs); with `replay`, count it in the simulator's "auto" cell. Precondition:
    the caller holds the row lock and checked the move."""
    from_status = action.status
    action.status = to
    action.save(update_fields=["status", *fields])
    ids = {"deployment_id": action.deployment_id, "action_type": action.action_type, "metric": metric}
    # An execution's result is also a calibration outcome (deployments.calibration).
    deltas = [*evidence_deltas(**ids), *calibration_deltas(**ids, confidence=action.confidence)]
    if replay:  # the simulator counts what executed without a person
        deltas += replay_cell_deltas(action, "auto")
    counters_add(deltas)
    audit_event_record(
        verb=verb,
        actor=actor,
        actor_label=actor_label if actor is None else "",
        obj=action,
        reason=reason,
        data={"from": from_status, "to": to, **(data or {})},
    )
    if event:
        runs.action_notify(action=action, event=event)
    slack_sync(action)  # a Slack message of the action shows its new state (integrations.slack)
    if settle:
        runs.lineage_settle(action=action)
    return action


def _not_claimable(action: ProposedAction) -> Conflict:
    """The refusal for a claim on an action that is not approved."""
    status = action.status
    if status in (Status.EXECUTING, *RESULTS):
        return AlreadyClaimed(
            f"the execution of action {action.pk} was already claimed ({status}); it must not be run again"
        )
    if status == Status.EXPIRED:
        return ActionExpired(f"action {action.pk} expired ({action.reason}); it must not be run")
    if status == Status.CANCELLED:
        return ActionCancelled(f"action {action.pk} was cancelled; it must not be run")
    if status == Status.HELD:
        return InvalidTransition(f"action {action.pk} is held ({runs.blocked_reason(action) or 'released soon'})")
    return InvalidTransition(f"action {action.pk} is {status}; only approved actions can be claimed for execution")


@transaction.atomic
def proposed_action_execution_claim(
    *, action_id: int, claim_key: str = "", payload_hash: str = "", actor_label: str = "agent"
) -> tuple[ProposedAction, bool]:
    """Grant the one execution of an approved action; returns (action, replayed).

    The claim holds `claim_key` (the caller's, or a new random one): the same key sent again
    while the action is executing is answered again (replayed=True), so a claim's own retry
    is safe; every other claim is refused with AlreadyClaimed, whatever the state after
    `approved` (a replay, a retry after a crash, a second process). `payload_hash`, if given,
    must be the final payload's SHA-256 (Conflict otherwise: nothing is claimed). Past the
    agent's deadline the claim is refused (ActionExpired): call
    `proposed_action_expire_if_due` first so that the refusal is also recorded.
    """
    now = timezone.now()
    # A claim changes this row only, so it needs no lineage lock (reviews.runs: lock order).
    action = ProposedAction.objects.locked(action_id)
    if (
        action.status == Status.EXECUTING
        and claim_key
        and secrets.compare_digest(claim_key, action.execution_claim_key)
    ):
        return action, True
    if action.status != Status.APPROVED:
        raise _not_claimable(action)
    if action.deadline is not None and action.deadline <= now:
        raise ActionExpired(f"action {action.pk}: the agent's deadline passed before the execution was claimed")
    if payload_hash and payload_hash != action.payload_sha256:
        raise Conflict("payload_sha256 does not match the final payload's SHA-256; nothing was claimed")
    action.execution_claim_key = claim_key or secrets.token_urlsafe(24)
    action.execution_claimed_at = now
    action.execution_claims += 1
    _agent_move(
        action,
        to=Status.EXECUTING,
        fields=("execution_claim_key", "execution_claimed_at", "execution_claims"),
        metric=Metric.LIFECYCLE_CLAIMED,
        verb="reviews.action.execution_claimed",
        actor_label=actor_label,
        data={"claim": action.execution_claims, "payload_sha256": action.payload_sha256},
    )
    return action, False


@transaction.atomic
def proposed_action_report_result(
    *,
    action_id: int,
    status: str,
    payload_hash: str,
    error: str = "",
    claim_key: str = "",
    actor_label: str = "agent",
) -> ProposedAction:
    """Record the result of a claimed execution, bound to the SHA-256 of the final payload:
    `executed`, `failed` or `unknown` (the agent cannot tell; reconcile it later).

    Requires the claim (NotClaimed while approved). A `claim_key` sent must be the claim's.
    A second result is refused (AlreadyReported), except the same result sent again with the
    claim's key (a retry of this report), which returns the action unchanged.
    """
    if status not in RESULTS:
        raise InvalidInput("status must be 'executed', 'failed' or 'unknown'")
    action = ProposedAction.objects.locked(action_id)
    holder = bool(claim_key) and secrets.compare_digest(claim_key, action.execution_claim_key)
    if action.status in RESULTS:
        if holder and action.status == status and payload_hash == action.payload_sha256:
            return action
        raise AlreadyReported(
            f"a result ({action.status}) is already recorded for the execution of action {action.pk}; "
            "a second one is refused"
        )
    if action.status == Status.APPROVED:
        raise NotClaimed(f"action {action.pk}: claim its execution (POST .../claim) before reporting a result")
    if action.status != Status.EXECUTING:
        raise InvalidTransition(
            f"action {action.pk} is {action.status}; a result can be reported only for a claimed execution"
        )
    if claim_key and not holder:
        raise Conflict("claim_key is not the key of this action's execution claim")
    if payload_hash != action.payload_sha256:
        raise Conflict("payload_sha256 does not match the final payload's SHA-256; execute the final payload")
    action.executed_at = timezone.now()
    action.result_error = error or ""
    _agent_move(
        action,
        to=status,
        fields=("executed_at", "result_error"),
        # An unknown result is not yet evidence of success or failure: its reconciliation is.
        metric=Metric.of("execution", status, action.route) if status != Status.UNKNOWN else Metric.LIFECYCLE_UNKNOWN,
        verb=f"reviews.action.{status}",
        event=f"action.{status}",
        actor_label=actor_label,
        data={"claim": action.execution_claims, **({"error": error[:1000]} if error else {})},
        replay=action.route == Route.AUTO,  # once: a second result is refused
    )
    breaker_check(deployment=action.deployment)  # SPEC §3: checked on every result report
    return action


@transaction.atomic
def proposed_action_reconcile(
    *,
    action_id: int,
    committed: bool,
    reason: str = "",
    actor: AbstractBaseUser | None = None,
    actor_label: str = "agent",
) -> ProposedAction:
    """Settle an `unknown` result: committed (the effect happened: executed) or not committed
    (it did not: approved again, open for exactly one more execution claim). By the agent
    (`actor_label`) or by an admin (`actor`, with a reason). InvalidTransition unless unknown."""
    if actor is not None:
        member = Member.objects.filter(user=actor).first()
        if member is None or not member.is_admin:
            raise NotAllowed("only admins may reconcile an unknown result")
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("a reason is required to reconcile")
    action = ProposedAction.objects.locked(action_id)
    if action.status != Status.UNKNOWN:
        raise InvalidTransition(f"action {action.pk} is {action.status}; only an unknown result can be reconciled")
    if not committed:  # open for one more claim
        action.execution_claim_key, action.execution_claimed_at, action.executed_at = "", None, None
    return _agent_move(
        action,
        to=Status.EXECUTED if committed else Status.APPROVED,
        fields=("execution_claim_key", "execution_claimed_at", "executed_at"),
        metric=Metric.of("execution", Status.EXECUTED, action.route) if committed else Metric.LIFECYCLE_NOT_COMMITTED,
        verb="reviews.action.reconciled",
        event="action.reconciled",
        actor=actor,
        actor_label=actor_label,
        reason=reason,
        data={"committed": committed, "claim": action.execution_claims},
    )


@transaction.atomic
def proposed_action_cancel(*, action_id: int, reason: str = "", actor_label: str = "agent") -> ProposedAction:
    """The agent withdraws its action: pending, held or approved, not yet claimed. It leaves
    the queues at once; a later decision or claim is refused. Its children fall with it and
    its run's hold is re-evaluated (reviews.runs). Safe to repeat: a cancelled action is
    returned unchanged; anything else is InvalidTransition."""
    action = ProposedAction.objects.locked_with_lineage(action_id)
    if action.status == Status.CANCELLED:
        return action
    if action.status not in ProposedAction.OPEN_STATUSES:
        raise InvalidTransition(
            f"action {action.pk} is {action.status}; only pending or approved actions not yet claimed can be cancelled"
        )
    action.reason = (reason or "").strip() or "cancelled by the agent"
    action.decided_at = action.decided_at or timezone.now()
    action.claimed_by, action.claimed_at = None, None  # it leaves the queues at once
    return _agent_move(
        action,
        to=Status.CANCELLED,
        fields=("reason", "decided_at", "claimed_by", "claimed_at"),
        metric=Metric.LIFECYCLE_CANCELLED,
        verb="reviews.action.cancelled",
        event="action.cancelled",
        actor_label=actor_label,
        reason=action.reason,
        settle=True,
    )


@transaction.atomic
def proposed_action_deadline_expire(*, action_id: int, now: datetime | None = None) -> ProposedAction | None:
    """Expire a held or approved action whose execution was not claimed by the agent's
    deadline, like an SLA expiry (audited, the agent's webhook): a late approval never makes
    a timed-out call executable. Safe to repeat: None (nothing changed) unless due."""
    now = now or timezone.now()
    action = ProposedAction.objects.locked_with_lineage(action_id)
    if action.status not in (Status.APPROVED, Status.HELD) or action.deadline is None or action.deadline > now:
        return None
    action.reason = "the agent's deadline passed before the execution was claimed"
    return _agent_move(
        action,
        to=Status.EXPIRED,
        fields=("reason",),
        metric=Metric.LIFECYCLE_DEADLINE,
        verb="reviews.action.expired",
        event="action.expired",
        actor_label="system",
        reason=action.reason,
        data={"deadline": action.deadline.isoformat()},
        settle=True,
    )


def proposed_action_expire_if_due(*, action: ProposedAction, now: datetime | None = None) -> ProposedAction:
    """Fail closed on every read and claim: `action` (as read) expired now if its SLA or the
    agent's deadline has passed and the periodic sweep has not got to it yet. Returns the
    action as it is afterwards."""
    now = now or timezone.now()
    due = None
    if action.is_pending and action.expires_at is not None and action.expires_at <= now:
        due = proposed_action_expire(action_id=action.pk, now=now)
    elif action.status in (Status.APPROVED, Status.HELD) and action.deadline is not None and action.deadline <= now:
        due = proposed_action_deadline_expire(action_id=action.pk, now=now)
    return due if due is not None else action
