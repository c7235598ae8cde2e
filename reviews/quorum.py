"""Quorum approvals (issue 17 item 5): an action whose matching payload rules ask for
`approvals_required: N` (deployments.rules) needs N different people to approve it.

- At ingest the count is recorded on the action (`ProposedAction.approvals_required`).
- Each approval but the last is a `QuorumApproval` row, audited
  (`reviews.action.quorum_approval`, "approval k of N"), counted in the approver's reviewer
  counters, and leaves the action pending: nothing executes, the agent is not told. The
  queue, the action page and the API show "k of N approvals" (`approvals_given`).
- The last approval is carried out as any approval (reviews.services: its Decision, the
  evidence counters once per action, the audit event, the agent's webhook once).
- "Different people" counts the delegator too: a delegate approving for someone who already
  approved (or who approved themselves, then approves again for someone else) is refused.
- A reject by anyone, at any point, rejects. An escalation keeps the approvals already given.
- Edits are refused on a quorum item: N people approve one payload, the agent's; to change
  it, reject it (with the reason) and let the agent propose again.
- Quorum items are never blind or double-review samples (reviews/humans/sampling.py): a
  double review's two votes are already two people, and mixing the two would make neither
  measure clean. A fire drill gets the quorum of its template under the rules, so it looks
  like its neighbours; its first approval is a missed drill (reviews/humans/drills.py).
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from core.updates import model_update
from deployments.counters import counters_add
from deployments.errors import Conflict, InvalidInput
from deployments.permissions import Delegator, on_behalf_data
from deployments.reviewers import reviewer_decision_counters
from deployments.services import audit_event_record
from reviews.claims import CLAIM_CLEARED
from reviews.models import ProposedAction, QuorumApproval

EDIT_REFUSED = (
    "this action needs {n} approvals: it can be approved as proposed or rejected, not edited "
    "(reject it with your reason and the agent can propose the change)"
)


def quorum_refuse_edit(action: ProposedAction) -> None:
    """InvalidInput: an edited payload is refused on a quorum item."""
    raise InvalidInput(EDIT_REFUSED.format(n=action.approvals_required))


def quorum_approval_record(
    *,
    action: ProposedAction,
    actor: AbstractBaseUser,
    on_behalf_of: Delegator | None,
    reason: str,
    now: datetime,
) -> bool:
    """Record `actor`'s approval of a quorum item; True when it is the last one needed (the
    caller then carries the approval out, in the same transaction), False when the action
    stays pending (its claim released, the approval audited and counted for the approver).

    Preconditions: the caller holds the action's row lock, has checked that `actor` may decide
    it, and that the payload is not edited. Conflict when the actor, or the person they act
    for, already approved it (a database fact too: one approval per person and action).
    """
    people = {actor.pk} | ({on_behalf_of.user_id} if on_behalf_of is not None else set())
    if QuorumApproval.objects.filter(action=action).filter(Q(actor__in=people) | Q(on_behalf_of__in=people)).exists():
        raise Conflict(
            f"you (or someone for you) already approved this item; it needs {action.approvals_required} "
            "approvals by different people"
        )
    started = action.claimed_at if action.claimed_at and action.claimed_by_id == actor.pk else action.created_at
    seconds = (now - started).total_seconds()
    number = action.approvals_given + 1
    QuorumApproval.objects.create(
        action=action,
        actor=actor,
        on_behalf_of_id=on_behalf_of.user_id if on_behalf_of is not None else None,
        number=number,
        reason=reason,
        seconds_to_decide=seconds,
        created_at=now,
    )
    action.approvals_given = number
    if number >= action.approvals_required:
        return True
    deltas, statements = reviewer_decision_counters(
        deployment_id=action.deployment_id, user_id=actor.pk, verb="approve", seconds=seconds, day=now.date()
    )
    counters_add(deltas, also=statements)
    audit_event_record(
        verb="reviews.action.quorum_approval",
        actor=actor,
        obj=action,
        reason=reason,
        data={"approval": number, "of": action.approvals_required, **on_behalf_data(on_behalf_of)},
    )
    model_update(action, approvals_given=number, **CLAIM_CLEARED)
    return False


def quorum_approvers(action: ProposedAction) -> list[str]:
    """Who approved a quorum item so far, in order, "X" or "X for Y" (the action page)."""
    if action.approvals_required <= 1 or not action.approvals_given:
        return []
    rows = QuorumApproval.objects.filter(action=action).select_related("actor", "on_behalf_of").order_by("number")
    return [
        r.actor.get_username() + (f" for {r.on_behalf_of.get_username()}" if r.on_behalf_of_id else "") for r in rows
    ]
