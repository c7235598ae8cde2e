"""What an item's page says about where the item stands now, in words ("Approved by senior
12 s ago"), for the live state region of the action page and for refusals. Pure reads."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from deployments.templatetags.ui import ago
from reviews.claims import claim_is_live
from reviews.models import Decision, ProposedAction

S = ProposedAction.Status
DONE_WORDS = {
    Decision.Verb.AUTO_APPROVE: "Approved by policy",
    Decision.Verb.APPROVE: "Approved",
    Decision.Verb.EDIT: "Approved with edits",
    Decision.Verb.REJECT: "Rejected",
    Decision.Verb.ESCALATE: "Escalated to the senior queue",
    Decision.Verb.EXPIRE: "Expired",
    Decision.Verb.AUDIT_CORRECT: "Audited: correct",
    Decision.Verb.AUDIT_INCORRECT: "Audited: incorrect",
}


@dataclass
class ItemState:
    """`open`: the item can still be decided here; `held_by_other`: someone else's live claim
    blocks deciding; `text`: the sentence the page shows; `at`: when that happened."""

    open: bool
    held_by_other: bool
    text: str
    at: datetime | None = None


def last_decision(action: ProposedAction) -> Decision | None:
    return Decision.objects.filter(action=action).select_related("actor").order_by("-created_at", "-id").first()


def decision_words(decision: Decision, now: datetime | None = None) -> str:
    """'Approved by senior 12 s ago', 'Expired 3 min ago'."""
    who = f" by {decision.actor.get_username()}" if decision.actor else ""
    return f"{DONE_WORDS.get(decision.verb, decision.get_verb_display())}{who} {ago(decision.created_at, now)}"


def item_state(action: ProposedAction, *, user: AbstractBaseUser, queue: str | None) -> ItemState:
    """Where `action` stands for `user`, looking at it in `queue` (None: in no queue now)."""
    now = timezone.now()
    if queue is not None:
        if claim_is_live(action, now) and action.claimed_by_id != user.pk:
            name = action.claimed_by.get_username() if action.claimed_by else "someone"
            return ItemState(
                open=True,
                held_by_other=True,
                text=f"{name} is working on this (claimed {ago(action.claimed_at, now)})",
                at=action.claimed_at,
            )
        return ItemState(open=True, held_by_other=False, text=action.get_status_display(), at=None)
    decision = last_decision(action)
    if decision is not None:
        text = decision_words(decision, now)
        if decision.verb == Decision.Verb.ESCALATE:
            text += ": seniors decide it now"
        return ItemState(open=False, held_by_other=False, text=text, at=decision.created_at)
    moment = action.decided_at or action.executed_at
    text = action.get_status_display() + (f" {ago(moment, now)}" if moment else "")
    return ItemState(open=False, held_by_other=False, text=text, at=moment)
