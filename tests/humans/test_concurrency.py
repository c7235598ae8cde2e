"""Races on real PostgreSQL: double-review votes and blind answers under the action's row lock."""

import pytest

from deployments.counters import Metric
from deployments.errors import Conflict, InvalidTransition
from deployments.models import Member
from reviews.humans.blind import blind_answer_record
from reviews.humans.models import BlindAnswer, DoubleVote
from reviews.models import Decision, ProposedAction
from reviews.services import proposed_action_decide
from tests.factories import DeploymentFactory, MemberFactory
from tests.humans.support import evidence, sample
from tests.reviews.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_three_people_voting_at_once_make_one_pair_and_one_decision():
    d = DeploymentFactory(stage="approval")
    people = [MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for _ in range(3)]
    for _ in range(15):
        action = sample(d, "double")
        results = run_together(
            *(
                lambda u=u, action=action: proposed_action_decide(action_id=action.pk, actor=u, decision="approve")
                for u in people
            )
        )
        done = [r for r in results if isinstance(r, ProposedAction)]
        refused = [r for r in results if isinstance(r, InvalidTransition | Conflict)]
        assert len(done) == 2 and len(refused) == 1, results
        assert sorted(DoubleVote.objects.filter(action=action).values_list("round", flat=True)) == [1, 2]
        assert ProposedAction.objects.get(pk=action.pk).status == ProposedAction.Status.APPROVED
        assert Decision.objects.filter(action=action).count() == 1
    assert evidence(d, Metric.DOUBLE_HH_SAME) == 15


def test_two_blind_answers_at_once_store_one():
    d = DeploymentFactory(stage="approval")
    people = [MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for _ in range(2)]
    for _ in range(15):
        action = sample(d, "blind")
        results = run_together(
            *(
                lambda u=u, action=action: blind_answer_record(
                    action_id=action.pk, actor=u, decision="reject", reason="no"
                )
                for u in people
            )
        )
        assert sum(isinstance(r, BlindAnswer) for r in results) == 1, results
        assert sum(isinstance(r, InvalidTransition) for r in results) == 1, results
    assert evidence(d, Metric.BLIND_DISAGREE) == 15
