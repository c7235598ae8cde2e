"""What blind and double review share: the row lock, who may answer, the comparison, timing."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from deployments.errors import Conflict, InvalidInput, NotAllowed
from deployments.models import Member
from deployments.permissions import member_of, require_assigned
from reviews.models import ProposedAction
from reviews.shadow.compare import Rules, compare

Status = ProposedAction.Status


def action_lock(action_id: int) -> ProposedAction:
    """The action with its row locked (not its deployment's); the caller is in a transaction."""
    try:
        return ProposedAction.objects.select_for_update(of=("self",)).select_related("deployment").get(pk=action_id)
    except ProposedAction.DoesNotExist:
        raise InvalidInput(f"action {action_id} does not exist") from None


def require_may_decide(action: ProposedAction, actor: AbstractBaseUser, now: datetime) -> Member:
    """`actor` may decide `action` as it is now (assigned; a senior for the senior queue), and
    nobody else holds a live claim on it. Caller holds the row lock."""
    member = require_assigned(member_of(actor), action.deployment_id, who="only members may decide actions")
    if action.status == Status.PENDING_SENIOR and not member.is_senior:
        raise NotAllowed("only senior reviewers may decide the senior queue")
    if (
        action.claimed_by_id not in (None, actor.pk)
        and action.claimed_at is not None
        and action.claimed_at >= now - settings.REVIEW_CLAIM_TIMEOUT
    ):
        raise Conflict(f"{action.claimed_by} is working on this item")
    return member


def answers_compare(action: ProposedAction, first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict:
    """{"agree", "diff"} of two answers to `action` (a payload to approve, or None for a
    rejection) under the deployment's comparison rules: two rejections agree, a rejection and
    a payload do not. The AI's answer is its proposal, `action.payload`."""
    if first is None or second is None:
        if first is None and second is None:
            return {"agree": True, "diff": []}
        return {"agree": False, "diff": [{"path": "", "kind": "rejected", "ai": first, "human": second}]}
    return compare(
        ai_type=action.action_type,
        ai_payload=first,
        human_type=action.action_type,
        human_payload=second,
        rules=Rules.from_json(action.deployment.comparison_rules),
    )


def seconds_since_start(action: ProposedAction, actor: AbstractBaseUser, now: datetime) -> float:
    """From the actor's claim on the item, else from its proposal: how decisions are timed."""
    started = action.claimed_at if action.claimed_at and action.claimed_by_id == actor.pk else action.created_at
    return (now - started).total_seconds()
