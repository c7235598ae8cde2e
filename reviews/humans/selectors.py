"""What the action page shows of blind and double samples, for one viewer."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from reviews.humans.blind import BLIND, blind_inputs
from reviews.humans.double import double_votes_open
from reviews.humans.drills import drill_notice
from reviews.humans.models import BlindAnswer, DoubleVote, Drill
from reviews.models import ProposedAction


def humans_context(action: ProposedAction, viewer: AbstractBaseUser) -> dict[str, Any]:
    """Context for the action page: `blind` (the proposal must stay hidden), `blind_inputs`,
    `blind_answer`; for a double sample `double_open`, `double_votes_cast`, `double_my_vote`
    and `double_votes` (only once the votes are closed: the second reviewer never sees the
    first's decision). No query for an action that is no sample."""
    if action.review_sample in ("", ProposedAction.Sample.DRILL):  # a drill looks like any item
        return {"blind": False}
    context: dict[str, Any] = {"blind": False}
    if action.review_sample == BLIND:
        answer = BlindAnswer.objects.filter(action=action).select_related("actor").first()
        context["blind_answer"] = answer
        if answer is None and action.is_pending:
            context.update(blind=True, blind_inputs=blind_inputs(action))
        return context
    votes = list(DoubleVote.objects.filter(action=action).select_related("actor").order_by("round"))
    is_open = double_votes_open(action)
    mine = next((v for v in votes if v.actor_id == viewer.pk), None)
    context.update(
        double_open=is_open,
        double_votes_cast=len(votes),
        double_my_vote=mine,
        double_votes=[] if is_open else votes,
    )
    if is_open and mine is not None:
        context["can_decide"] = context["can_escalate"] = False  # they decided; someone else decides now
    return context


def sample_notice(*, action: ProposedAction, queue: str) -> str:
    """What to tell a person at once after a decision on a sample that was not carried out as
    usual: a fire drill (what was wrong with it), or a double-review vote that did not settle
    the action ("" otherwise)."""
    if action.review_sample == ProposedAction.Sample.DRILL:
        return drill_notice(Drill.objects.select_related("template").get(action=action))
    if action.review_sample != ProposedAction.Sample.DOUBLE or queue != "review":
        return ""
    if action.status == ProposedAction.Status.PENDING_REVIEW:
        return f"Your decision on #{action.pk} is recorded: 1 of 2. A second person decides it independently."
    if action.status == ProposedAction.Status.PENDING_SENIOR and action.reason.startswith("double review"):
        return f"Your decision on #{action.pk} differs from the first reviewer's: a senior settles it."
    return ""
