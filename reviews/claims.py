"""Claims: a reviewer's short lease on a queue item, so two people do not work the same item.

The one rule of what a live claim is lives here (`claim_is_live`, `claims_live`,
`claims_not_live`): a claim is live for REVIEW_CLAIM_TIMEOUT after it was taken, and dead
after. Queries, pages and services all ask this module. Claiming, releasing and the sweep of
stale claims are its services. A claim is not a state transition: it is not audited, and a
decision clears it (reviews.services).

A person holds at most one live claim: claiming an item releases the claimant's others.
"""

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from core.updates import model_update
from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import Member
from deployments.permissions import Delegator, member_of, member_reach
from reviews.models import ProposedAction

QUEUES = ("review", "senior", "audit")
# The claim fields of an item nobody holds: `model_update(action, **CLAIM_CLEARED)`, `.update(**CLAIM_CLEARED)`.
CLAIM_CLEARED = {"claimed_by": None, "claimed_at": None}

# ---------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------


def claim_cutoff(now: datetime) -> datetime:
    """Claims taken before this moment are no longer live."""
    return now - settings.REVIEW_CLAIM_TIMEOUT


def claim_is_live(action: ProposedAction, now: datetime) -> bool:
    """Whether someone holds a live claim on `action` at `now`."""
    return action.claimed_at is not None and action.claimed_at >= claim_cutoff(now)


def claim_until(action: ProposedAction) -> datetime:
    """When the claim on `action` stops being live (it has one)."""
    return action.claimed_at + settings.REVIEW_CLAIM_TIMEOUT


def claims_live(qs: QuerySet, now: datetime) -> QuerySet:
    """The rows of `qs` with a live claim."""
    return qs.filter(claimed_at__gte=claim_cutoff(now))


def claims_not_live(qs: QuerySet, now: datetime) -> QuerySet:
    """The rows of `qs` free to claim: never claimed, or claimed longer ago than the timeout."""
    return qs.filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=claim_cutoff(now)))


def claim_refuse_if_held_by_other(action: ProposedAction, actor: AbstractBaseUser, now: datetime) -> None:
    """Conflict when someone other than `actor` holds a live claim on `action`. The caller
    holds the row lock."""
    if action.claimed_by_id is not None and action.claimed_by_id != actor.pk and claim_is_live(action, now):
        until = claim_until(action)
        raise Conflict(f"{action.claimed_by} is working on this item (claimed until {until:%H:%M:%S} UTC)")


# ---------------------------------------------------------------------------------------
# Who may claim
# ---------------------------------------------------------------------------------------


def member_for(user: AbstractBaseUser | None, member: Member | None) -> Member | None:
    """`member` if it is `user`'s (loaded once per request by the caller), else read."""
    if member is not None and user is not None and member.user_id == user.pk:
        return member
    return member_of(user)


def member_deployment_ids(member: Member, queue: str = "review") -> list[int] | None:
    """Ids of the deployments whose `queue` the member works (their own and those a delegation
    in effect hands them: deployments.permissions.member_reach); None means all of them
    (admins). Read once per Member instance (a request's member): a decision and the next
    claim share it."""
    return member_reach(member).ids(queue)


def member_require_assigned(member: Member, deployment_id: int, queue: str = "review") -> Delegator | None:
    """NotAllowed unless `member` works `queue` of the deployment (deployments.permissions'
    rule, over the reach read once per request); whom they act for there (None: themselves)."""
    return member_reach(member).acting_for(deployment_id, queue)


def _require_can_work_queue(member: Member | None, queue: str) -> Member:
    if member is None:
        raise NotAllowed("only members may work the queues")
    if queue not in QUEUES:
        raise InvalidInput(f"unknown queue {queue!r}")
    if not member_reach(member).works(queue):
        raise NotAllowed(f"only senior reviewers may work the {queue} queue")
    return member


# ---------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------


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
    return claim_next_in_transaction(
        actor=actor, queue=queue, deployment_id=deployment_id, action_type=action_type, skip_ids=skip_ids, member=member
    )


def claim_next_in_transaction(
    *,
    actor: AbstractBaseUser,
    queue: str,
    deployment_id: int | None = None,
    action_type: str = "",
    skip_ids: tuple[int, ...] | list[int] = (),
    member: Member | None = None,
) -> ProposedAction | None:
    """`proposed_action_claim_next` in the caller's transaction (a decision that goes on to
    the next item: reviews.services.proposed_action_decide_and_claim_next)."""
    member = _require_can_work_queue(member_for(actor, member), queue)
    now = timezone.now()
    candidates = ProposedAction.objects.queue_items(
        queue, deployment_ids=member_deployment_ids(member, queue), deployment_id=deployment_id, action_type=action_type
    )
    if queue == "review":
        # A double-review sample this person already decided waits for someone else (reviews/humans/double.py).
        candidates = candidates.exclude(double_votes__actor=actor)
    if queue != "audit":
        # A quorum item this person already approved waits for another approver (reviews/quorum.py).
        candidates = candidates.exclude(quorum_approvals__actor=actor)
    held = claims_live(candidates.filter(claimed_by=actor), now).exclude(pk__in=list(skip_ids)).first()
    if held is not None:
        return held
    qs = claims_not_live(candidates, now).exclude(pk__in=list(skip_ids))
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    action = qs.first()
    mine = ProposedAction.objects.filter(claimed_by=actor)
    if action is None:
        mine.update(**CLAIM_CLEARED)
        return None
    # One statement releases the actor's other claims and takes this one.
    taken = Q(pk=action.pk)
    (mine | ProposedAction.objects.filter(taken)).update(
        claimed_by=Case(When(taken, then=Value(actor.pk)), default=None),
        claimed_at=Case(When(taken, then=Value(now)), default=None),
    )
    action.claimed_by, action.claimed_at = actor, now
    return action


@transaction.atomic
def proposed_action_claim(*, action_id: int, actor: AbstractBaseUser, member: Member | None = None) -> ProposedAction:
    """Claim one item for `actor` (renewing their own claim). Conflict when someone else holds
    a live claim on it; InvalidTransition when it is in no queue any more. Releases the actor's
    other claims (one live claim per person). Safe to repeat. `member` is the actor's Member
    row when the caller has already loaded it."""
    action = ProposedAction.objects.locked(action_id)
    queue = action.queue
    if queue is None:
        raise InvalidTransition(f"action {action.pk} is {action.status}; it is in no queue")
    member = _require_can_work_queue(member_for(actor, member), queue)
    member_require_assigned(member, action.deployment_id, queue)
    now = timezone.now()
    claim_refuse_if_held_by_other(action, actor, now)
    ProposedAction.objects.filter(claimed_by=actor).exclude(pk=action.pk).update(**CLAIM_CLEARED)
    model_update(action, claimed_by=actor, claimed_at=now)
    return action


@transaction.atomic
def proposed_action_release(*, action_id: int, actor: AbstractBaseUser) -> ProposedAction:
    """Give back `actor`'s claim on an item. Safe to repeat; someone else's claim is left alone."""
    action = ProposedAction.objects.locked(action_id)
    if action.claimed_by_id == actor.pk:
        model_update(action, **CLAIM_CLEARED)
    return action


def proposed_action_claims_release_stale(*, now: datetime | None = None) -> int:
    """Clear claims that are no longer live on pending actions; returns how many.

    One conditional UPDATE: a claim renewed meanwhile no longer matches, so it is never
    released by mistake. Safe to repeat. Not audited: a claim is not a decision.
    """
    cutoff = claim_cutoff(now or timezone.now())
    return ProposedAction.objects.pending().filter(claimed_at__lt=cutoff).update(**CLAIM_CLEARED)
