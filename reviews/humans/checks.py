"""What an ordinary decision (approve, reject) asks of the humans' samples first."""

from django.contrib.auth.models import AbstractBaseUser

from reviews.humans.blind import blind_answer_check
from reviews.humans.double import double_review_check
from reviews.models import ProposedAction


def humans_decision_check(action: ProposedAction, actor: AbstractBaseUser) -> None:
    """Refuse a decision that a blind or double sample does not allow yet (no query for an
    action that is neither). Caller holds the row lock."""
    if action.review_sample:
        blind_answer_check(action)
        double_review_check(action, actor)
