"""What an ordinary decision (approve, reject, escalate) asks of the humans' samples first."""

from django.contrib.auth.models import AbstractBaseUser

from deployments.errors import InvalidTransition
from reviews.humans.blind import blind_answer_check
from reviews.humans.double import double_review_check
from reviews.models import ProposedAction


def humans_decision_check(action: ProposedAction, actor: AbstractBaseUser, *, escalating: bool = False) -> None:
    """Refuse a decision that a blind or double sample does not allow yet, and any decision of
    a fire drill outside the browser's `proposed_action_decide` (which closes it without
    evidence). No query for an action that is no sample. Caller holds the row lock."""
    if action.review_sample == ProposedAction.Sample.DRILL:
        raise InvalidTransition(f"action {action.pk} is decided through proposed_action_decide")
    if action.review_sample and not escalating:  # escalating a blind or double sample is allowed
        blind_answer_check(action)
        double_review_check(action, actor)
