"""Out-of-office delegation (issue 17 item 5): a member hands their queues to another member
for a period. What a delegation grants is deployments.permissions' rule (`member_reach`);
this module creates, cancels and lists them.

Rules: a member delegates their own queues (an admin may set a delegation for anyone); to
another member, never to themselves; the period ends after it starts, after now, and lasts at
most MAX_DAYS; a member's delegations never overlap, and nobody delegates to someone who is
away themselves (has a delegation of their own) during that period. A start in the past
starts now. Creating and cancelling are audited (`deployments.delegation.created|cancelled`).
"""

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.updates import model_update
from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.models import Delegation, Member
from deployments.permissions import member_of
from deployments.services import audit_event_record

MAX_DAYS = 90
MAX_NOTE = 500


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _overlapping(member_id: int, starts_at: datetime, ends_at: datetime) -> QuerySet[Delegation]:
    """`member_id`'s own delegations, not cancelled, that overlap [starts_at, ends_at)."""
    return Delegation.objects.filter(
        delegator_id=member_id, cancelled_at__isnull=True, starts_at__lt=ends_at, ends_at__gt=starts_at
    ).select_related("delegate__user")


def _require_may_manage(actor: AbstractBaseUser | None, delegator_id: int) -> Member:
    member = member_of(actor)
    if member is None:
        raise NotAllowed("only members may delegate their queues")
    if member.pk != delegator_id and not member.is_admin:
        raise NotAllowed("you may only manage your own delegations (admins may set one for anyone)")
    return member


def _require_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > MAX_NOTE or "\x00" in note:
        raise InvalidInput(f"the note must be at most {MAX_NOTE} characters, without NUL")
    return note


@transaction.atomic
def delegation_create(
    *,
    actor: AbstractBaseUser,
    delegator_id: int,
    delegate_id: int,
    starts_at: datetime,
    ends_at: datetime,
    note: str = "",
) -> Delegation:
    """Hand `delegator_id`'s queues to `delegate_id` (Member ids) from `starts_at` until
    `ends_at` (aware datetimes). NotAllowed unless `actor` is the delegator or an admin;
    InvalidInput for anything the module's rules refuse, nothing stored. The delegator's
    Member row is locked first, so two overlapping requests are never both stored."""
    _require_may_manage(actor, delegator_id)
    note = _require_note(note)
    if delegate_id == delegator_id:
        raise InvalidInput("you cannot delegate to yourself")
    now = timezone.now()
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput("give the start and the end with a time zone")
    starts_at = max(starts_at, now)
    if ends_at <= starts_at:
        raise InvalidInput("the end must be after the start (and in the future)")
    if ends_at - starts_at > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"a delegation lasts at most {MAX_DAYS} days")
    locked = {m.pk: m for m in Member.objects.select_for_update().filter(pk__in=[delegator_id, delegate_id])}
    if delegator_id not in locked:
        raise InvalidInput("no such member to delegate for")
    if delegate_id not in locked:
        raise InvalidInput("the delegate must be a member")
    delegator, delegate = locked[delegator_id], locked[delegate_id]
    if clash := _overlapping(delegator_id, starts_at, ends_at).first():
        raise InvalidInput(
            f"this overlaps the delegation to {clash.delegate.user.get_username()} from "
            f"{_when(clash.starts_at)} to {_when(clash.ends_at)}; cancel it first"
        )
    if away := _overlapping(delegate_id, starts_at, ends_at).first():
        raise InvalidInput(
            f"{delegate.user.get_username()} is away themselves from {_when(away.starts_at)} to "
            f"{_when(away.ends_at)}; choose someone else"
        )
    delegation = Delegation.objects.create(
        delegator=delegator, delegate=delegate, starts_at=starts_at, ends_at=ends_at, note=note, created_by=actor
    )
    audit_event_record(
        verb="deployments.delegation.created",
        actor=actor,
        obj=delegation,
        reason=note,
        data={
            "delegator": delegator.user.get_username(),
            "delegate": delegate.user.get_username(),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
    )
    return delegation


@transaction.atomic
def delegation_cancel(*, actor: AbstractBaseUser, delegation_id: int) -> Delegation:
    """Cancel a delegation that has not ended (one in effect stops now). NotAllowed unless
    `actor` is its delegator or an admin; InvalidTransition when it is cancelled or over."""
    delegation = (
        Delegation.objects.select_for_update(of=("self",))
        .select_related("delegator__user", "delegate__user")
        .filter(pk=delegation_id)
        .first()
    )
    if delegation is None:
        raise InvalidInput(f"delegation {delegation_id} does not exist")
    _require_may_manage(actor, delegation.delegator_id)
    now = timezone.now()
    if delegation.cancelled_at is not None:
        raise InvalidTransition("this delegation is already cancelled")
    if delegation.ends_at <= now:
        raise InvalidTransition("this delegation is over already")
    model_update(delegation, cancelled_at=now, cancelled_by=actor)
    audit_event_record(
        verb="deployments.delegation.cancelled",
        actor=actor,
        obj=delegation,
        data={
            "delegator": delegation.delegator.user.get_username(),
            "delegate": delegation.delegate.user.get_username(),
            "was_in_effect": delegation.starts_at <= now,
        },
    )
    return delegation


def delegations_listed(*, member: Member, now: datetime | None = None) -> dict[str, list[Delegation]]:
    """The away page's lists: the member's own delegations that have not ended ("mine"), those
    to them ("covering"), and for an admin every one that has not ended ("everyone")."""
    now = now or timezone.now()
    open_ = Delegation.objects.filter(cancelled_at__isnull=True, ends_at__gt=now).select_related(
        "delegator__user", "delegate__user"
    )
    lists = {
        "mine": list(open_.filter(delegator=member)),
        "covering": list(open_.filter(delegate=member)),
        "everyone": [],
    }
    if member.is_admin:
        lists["everyone"] = list(open_.filter(~Q(delegator=member))[:200])
    return lists
