"""Runs, parents and deadlines of proposals (issue 15, SPEC §7).

- A *run* (`run_id` on a proposal, `ActionRun`) may ask for a run-wide *hold*: while any of
  its gated actions (pending_review, pending_senior) waits for a person, no action of the run
  is told `execute`; an action that would be approved meanwhile (by policy or by a person) is
  `held`. When the last gated one is decided, every held action of the run is released
  (`approved`) once; the execution claim (reviews.execution) then grants each one run.
- A *child* (`parent_id`) waits (`held` instead of `approved`) while its parent is not yet
  approved, and falls with it: when the parent is rejected, cancelled or expired, a child not
  yet claimed for execution is rejected (audited), and so are its own children.
- A *deadline* (the agent's `expires_in` / `expires_at`) is at most the deployment's longest
  SLA; pending actions expire at the earlier of SLA and deadline, approved and held ones at
  the deadline if not claimed by then (reviews.execution.proposed_action_deadline_expire).

Locks: a transition locks its action first, then (here) its run, then the actions it
releases or refuses, in id order. A proposal into a run locks the run, and a child proposal
its parent (FOR NO KEY UPDATE), so that a proposal and a decision on its run or parent take
turns: the one that commits second sees the other's row.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.services import delivery_create
from deployments.errors import InvalidInput
from deployments.models import Deployment
from deployments.services import audit_event_record
from reviews.claims import CLAIM_CLEARED
from reviews.models import ActionRun, ProposedAction
from reviews.moves import action_system_move
from reviews.representation import action_representation

Status = ProposedAction.Status
# A parent in one of these lets its children go: a person (or policy) approved it.
RELEASING = (Status.APPROVED, Status.EXECUTING, Status.EXECUTED, Status.FAILED, Status.UNKNOWN)
# A parent in one of these takes its children (not yet claimed) down with it.
FALLEN = (Status.REJECTED, Status.CANCELLED, Status.EXPIRED)
# Children a fallen parent refuses, and held ones a released parent or run lets go.
UNCLAIMED = ProposedAction.OPEN_STATUSES
MAX_BATCH = 100


@dataclass
class ProposalLinks:
    """What a proposal says beyond SPEC §5's fields: its deadline, its run (locked) and its
    parent (locked), as `proposal_links` resolves them."""

    deadline: datetime | None = None
    run: ActionRun | None = None
    parent: ProposedAction | None = None


def action_notify(*, action: ProposedAction, event: str) -> None:
    """The agent's webhook for a change of `action` (if it gave a callback_url): an outbox row
    that commits, or rolls back, with the change."""
    if action.callback_url:
        delivery_create(
            deployment_id=action.deployment_id,
            url=action.callback_url,
            event_type=event,
            body=action_representation(action),
            object_type=action._meta.label_lower,
            object_id=str(action.pk),
            traceparent=action.traceparent,
        )


# ---------------------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------------------


def capped(sla_end: datetime, deadline: datetime | None) -> datetime:
    """A pending action's expiry: its SLA, or the agent's deadline if that comes first."""
    return min(sla_end, deadline) if deadline is not None else sla_end


def deadline_check(*, deployment: Deployment, deadline: datetime | None, now: datetime) -> None:
    """InvalidInput (422) unless `deadline` is in the future and at most the deployment's
    longest SLA away (an agent may shorten the wait for a person, never lengthen it)."""
    if deadline is None:
        return
    longest = max(deployment.review_sla, deployment.senior_sla)
    if deadline <= now:
        raise InvalidInput("expires_at: the deadline has already passed")
    if deadline > now + longest:
        raise InvalidInput(
            f"expires_in/expires_at: the deadline may be at most the deployment's SLA "
            f"({int(longest.total_seconds())} seconds from now)"
        )


# ---------------------------------------------------------------------------------------
# Proposals into a run, or under a parent
# ---------------------------------------------------------------------------------------


def run_lock(*, deployment: Deployment, key: str, hold: bool = False, actor_label: str = "agent") -> ActionRun:
    """The run `key` of `deployment`, created if new, locked (FOR NO KEY UPDATE) in the
    caller's transaction. `hold` turns the run's hold on (never off: that would lower
    oversight); approved actions of the run not yet claimed are then held while a gated one
    waits."""
    run = ActionRun.objects.select_for_update(no_key=True).filter(deployment=deployment, key=key).first()
    if run is None:
        try:
            with transaction.atomic():
                run = ActionRun.objects.create(deployment=deployment, key=key, hold=hold)
        except IntegrityError:  # created meanwhile by a concurrent proposal
            run = ActionRun.objects.select_for_update(no_key=True).get(deployment=deployment, key=key)
        else:
            if hold:
                audit_event_record(verb="reviews.run.hold_set", actor_label=actor_label, deployment=deployment, obj=run)
            return run
    if hold and not run.hold:
        run.hold = True
        run.save(update_fields=["hold"])
        audit_event_record(verb="reviews.run.hold_set", actor_label=actor_label, deployment=deployment, obj=run)
        run_hold_siblings(run=run)
    return run


def run_hold_siblings(*, run: ActionRun, exclude: Sequence[int] = ()) -> list[ProposedAction]:
    """Keep the run's hold: while a gated action of a holding run waits, its approved actions
    not yet claimed are held (audited), until the last gated one is decided. Call with the
    run locked, after a gated action joined it or its hold was turned on."""
    if not run.hold or not run_has_pending(run.pk):
        return []
    held = _lock_in_order(ProposedAction.objects.filter(run=run, status=Status.APPROVED).exclude(pk__in=exclude))
    for action in held:
        _move(action, Status.HELD, verb="reviews.action.held", data={"why": f"the hold of run {run.key!r}"})
    return held


def proposal_links(
    *, deployment: Deployment, run_id: str, run_hold: bool, parent_id: int | None, deadline: datetime | None
) -> ProposalLinks:
    """The run (locked, created if new) and the parent (locked) of a proposal, in the caller's
    transaction. InvalidInput (422) if the parent is not an action of `deployment`."""
    run = run_lock(deployment=deployment, key=run_id, hold=run_hold) if run_id else None
    parents = parents_lock(deployment=deployment, ids=[parent_id] if parent_id is not None else [])
    return ProposalLinks(deadline=deadline, run=run, parent=parents.get(parent_id))


def parents_lock(*, deployment: Deployment, ids: Sequence[int]) -> dict[int, ProposedAction]:
    """The actions `ids` of `deployment`, locked FOR NO KEY UPDATE (their own decisions wait
    for the proposal, and see its children); InvalidInput naming any that is not there."""
    if not ids:
        return {}
    qs = ProposedAction.objects.select_for_update(no_key=True, of=("self",)).filter(deployment=deployment)
    found = {a.pk: a for a in qs.filter(pk__in=sorted(set(ids))).order_by("pk")}
    missing = sorted(set(ids) - set(found))
    if missing:
        raise InvalidInput(f"parent_id: no action {missing[0]} in this deployment")
    fresh = [pk for pk, parent in found.items() if not parent.has_children]
    if fresh:
        ProposedAction.objects.filter(pk__in=fresh).update(has_children=True)
        for pk in fresh:
            found[pk].has_children = True
    return found


def proposal_gate(*, action: ProposedAction, verb: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A new proposal's status under its parent and run (unsaved; the caller holds their
    locks): refused (rejected) under a fallen parent, held while the parent or the run's hold
    keeps it back. Returns its audit verb and data."""
    if action.route == ProposedAction.RouteChoices.SHADOW:
        return verb, data  # never executed: nothing to hold back
    parent = action.parent
    if parent is not None and parent.status in FALLEN:
        action.status = Status.REJECTED
        action.reason = f"its parent #{parent.pk} is {parent.status}"
        action.decided_at, action.expires_at = action.created_at, None
        return "reviews.action.refused_by_parent", {**data, "parent": parent.pk, "parent_status": parent.status}
    if action.status == Status.APPROVED:
        why = blocked_reason(action)
        if why:
            action.status = Status.HELD
            return verb, {**data, "held": why}
    return verb, data


def blocked_reason(action: ProposedAction, *, run_pending: bool | None = None) -> str:
    """Why `action` may not be told `execute` yet ("" if nothing keeps it back): its parent
    is not approved, or its run holds while a gated sibling waits. `run_pending` is that
    last fact when the caller knows it."""
    if action.parent_id is not None and action.parent.status not in RELEASING:
        return f"waits for its parent #{action.parent_id} ({action.parent.status})"
    run = action.run if action.run_id is not None else None
    if run is not None and run.hold:
        if run_pending is None:
            run_pending = run_has_pending(run.pk, exclude=action.pk)
        if run_pending:
            return f"the hold of run {run.key!r}: a sibling waits for a person"
    return ""


def gate_status(*, action: ProposedAction) -> str:
    """The status a pending action takes when a person approves it: approved, or held while
    its parent or its run's hold keeps it back. Caller locked it with its lineage
    (`ProposedAction.objects.locked_with_lineage`)."""
    if action.run_id is None and action.parent_id is None:
        return Status.APPROVED
    return Status.HELD if blocked_reason(action) else Status.APPROVED


def run_has_pending(run_id: int, *, exclude: int | None = None) -> bool:
    """Whether a gated action of the run waits for a person (other than `exclude`)."""
    qs = ProposedAction.objects.filter(run_id=run_id, status__in=ProposedAction.PENDING_STATUSES)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.exists()


def _lock_in_order(qs) -> list[ProposedAction]:
    return list(qs.select_for_update(of=("self",)).select_related("deployment").order_by("pk"))


# ---------------------------------------------------------------------------------------
# After a transition: release what the run or the parent held, refuse what fell with it
# ---------------------------------------------------------------------------------------


def lineage_settle(*, action: ProposedAction) -> list[ProposedAction]:
    """Call after `action` left pending (decided, expired, cancelled) or was approved, in the
    same transaction, with its row locked. Releases (held → approved) the actions of its run
    (when no gated one waits any more) and its children (when it is approved), refuses
    (→ rejected) its children not yet claimed when it fell, and so on down the tree. Each
    change is audited and sent to the agent's webhook. Returns the actions changed."""
    changed: list[ProposedAction] = []
    todo = [action]
    while todo:
        current = todo.pop(0)
        moved = _run_release(current.run_id) if current.run_id is not None else []
        # has_children: most actions have nothing below them to settle, and read nothing more.
        if current.has_children and current.status in FALLEN:
            for child in _lock_in_order(current.children.filter(status__in=UNCLAIMED)):
                _refuse(child, parent=current)
                moved.append(child)
        elif current.has_children and current.status in RELEASING:
            for child in _lock_in_order(current.children.filter(status=Status.HELD)):
                child.parent = current
                if not blocked_reason(child):
                    _move(child, Status.APPROVED, verb="reviews.action.released", data={"why": "parent approved"})
                    moved.append(child)
        changed += moved
        todo += moved
    return changed


def _run_release(run_id: int) -> list[ProposedAction]:
    """The held actions of the run released once no gated action of it waits."""
    run = ActionRun.objects.select_for_update(no_key=True).get(pk=run_id)
    if not run.hold or run_has_pending(run_id):
        return []
    released = []
    for held in _lock_in_order(ProposedAction.objects.filter(run=run, status=Status.HELD)):
        held.run = run
        if not blocked_reason(held, run_pending=False):
            _move(held, Status.APPROVED, verb="reviews.action.released", data={"why": f"run {run.key!r} decided"})
            released.append(held)
    return released


def _move(action: ProposedAction, status: str, *, verb: str, data: dict[str, Any]) -> None:
    action_system_move(action, to=status, verb=verb, data=data)
    if status == Status.APPROVED:
        action_notify(action=action, event="action.released")


def _refuse(child: ProposedAction, *, parent: ProposedAction) -> None:
    action_system_move(
        child,
        to=Status.REJECTED,
        verb="reviews.action.refused_by_parent",
        data={"parent": parent.pk, "parent_status": parent.status},
        reason=f"its parent #{parent.pk} is {parent.status}",
        decided_at=child.decided_at or timezone.now(),
        **CLAIM_CLEARED,
    )
    action_notify(action=child, event="action.rejected")
