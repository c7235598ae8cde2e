"""What blind and double review share: the row lock, who may answer, the comparison, timing."""

from datetime import datetime
from typing import Any, Required, TypedDict

from django.contrib.auth.models import AbstractBaseUser

from deployments.errors import NotAllowed
from deployments.permissions import Delegator, acting_for, member_of
from reviews.claims import claim_refuse_if_held_by_other
from reviews.models import ProposedAction
from reviews.shadow.compare import Rules, compare

Status = ProposedAction.Status


class AnswerFields(TypedDict, total=False):
    """What a person answers on an item (a decision, a blind answer, a double-review vote):
    the `decision`, the `payload` they would approve (or an edited one), and their `reason`."""

    decision: Required[str]
    payload: dict[str, Any] | None
    reason: str


def action_lock(action_id: int) -> ProposedAction:
    """The action with its row locked (ProposedActionQuerySet.locked); the caller is in a transaction."""
    return ProposedAction.objects.locked(action_id)


def require_may_decide(action: ProposedAction, actor: AbstractBaseUser, now: datetime) -> Delegator | None:
    """`actor` may decide `action` as it is now (assigned, or by a delegation in effect; a
    senior's rights for the senior queue), and nobody else holds a live claim on it. Returns
    whom the actor decides for (None: on their own rights). Caller holds the row lock."""
    member = member_of(actor)
    if member is None:
        raise NotAllowed("only members may decide actions")
    queue = "senior" if action.status == Status.PENDING_SENIOR else "review"
    on_behalf_of = acting_for(member, action.deployment_id, queue)
    claim_refuse_if_held_by_other(action, actor, now)
    return on_behalf_of


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
