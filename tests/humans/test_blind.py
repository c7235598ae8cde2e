"""Blind review samples (issue 17 item 1): sampling, the answer first, its evidence, the guards."""

import random

import pytest
from django.db import IntegrityError, transaction

from deployments.counters import Metric
from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Member
from deployments.policy import Route, Stage
from reviews.claims import proposed_action_claim
from reviews.humans.answers import answer_payload_parse
from reviews.humans.blind import blind_answer_record, blind_inputs
from reviews.humans.models import BlindAnswer
from reviews.humans.sampling import review_sample_for
from reviews.models import ProposedAction
from reviews.services import (
    proposed_action_approve,
    proposed_action_escalate,
    proposed_action_reject,
)
from tests.factories import DeploymentFactory, MemberFactory, action_propose
from tests.humans.support import evidence, sample

pytestmark = pytest.mark.django_db
S = ProposedAction.Status


@pytest.fixture
def stage2():
    return DeploymentFactory(stage="approval", blind_review_rate=1.0, blind_input_fields=["order", "customer.id"])


@pytest.fixture
def rita(stage2):
    return MemberFactory(role=Member.Role.REVIEWER, deployments=[stage2]).user


def test_sampling_draws_blind_only_at_stage_2_and_only_for_people():
    d = DeploymentFactory(stage="approval", blind_review_rate=0.3, double_review_rate=0.5)

    def drawn(*values):
        draws = iter(values)
        return review_sample_for(deployment=d, stage=Stage.APPROVAL, route=Route.REVIEW, draw=lambda: next(draws))

    assert drawn(0.29, 0.9) == "blind"
    assert drawn(0.31, 0.49) == "double"
    assert drawn(0.31, 0.51) == ""
    # Stage 3: no blind samples; the auto route and shadow: never sampled.
    assert review_sample_for(deployment=d, stage=Stage.SUPERVISED, route=Route.SENIOR, draw=lambda: 0.0) == ""
    assert review_sample_for(deployment=d, stage=Stage.SUPERVISED, route=Route.AUTO, draw=lambda: 0.0) == ""
    assert review_sample_for(deployment=d, stage=Stage.APPROVAL, route=Route.SENIOR, draw=lambda: 0.0) == "blind"


def test_default_rate_is_zero_and_a_rate_of_one_samples_every_reviewed_proposal(stage2):
    plain = DeploymentFactory(stage="approval")
    assert plain.blind_review_rate == 0 and plain.double_review_rate == 0
    args = {"action_type": "refund.issue", "payload": {"order": "A-1"}, "risk_score": 0.1, "confidence": 0.99}
    assert action_propose(plain, **args).review_sample == ""
    action = action_propose(stage2, **args)
    action.refresh_from_db()  # stored through the ingest statement
    assert (action.status, action.review_sample) == (S.PENDING_REVIEW, "blind")


def test_share_of_samples_follows_the_rate(stage2):
    stage2.blind_review_rate = 0.25
    random.seed(7)
    kinds = [review_sample_for(deployment=stage2, stage=Stage.APPROVAL, route=Route.REVIEW) for _ in range(4000)].count(
        "blind"
    )
    assert 900 < kinds < 1100


def test_approve_and_reject_are_refused_before_the_blind_answer(stage2, rita):
    action = sample(stage2, "blind")
    with pytest.raises(InvalidTransition, match="blind sample"):
        proposed_action_approve(action_id=action.pk, actor=rita)
    with pytest.raises(InvalidTransition, match="blind sample"):
        proposed_action_reject(action_id=action.pk, actor=rita, reason="no")
    action.refresh_from_db()
    assert action.status == S.PENDING_REVIEW


def test_an_agreeing_answer_is_stored_counted_audited_then_the_decision_goes_through(stage2, rita):
    stage2.comparison_rules = {"ignore": ["note"]}
    stage2.save()
    action = sample(stage2, "blind")
    proposed_action_claim(action_id=action.pk, actor=rita)
    answer = blind_answer_record(
        action_id=action.pk, actor=rita, decision="approve", payload={"order": "A-1", "amount_cents": 1200}
    )
    assert answer.agree is True and answer.diff == [] and answer.seconds_to_answer >= 0
    assert evidence(stage2, Metric.BLIND_AGREE) == 1 and evidence(stage2, Metric.BLIND_DISAGREE) == 0
    event = AuditEvent.objects.get(verb="reviews.action.blind_answered")
    assert event.actor == rita and event.data == {"decision": "approve", "agree": True, "differences": 0}
    approved = proposed_action_approve(action_id=action.pk, actor=rita)
    assert approved.status == S.APPROVED
    assert evidence(stage2, Metric.DECISION_APPROVE) == 1  # the ordinary evidence, beside the blind one


def test_a_differing_answer_and_a_rejection_count_as_disagreement(stage2, rita):
    first, second = sample(stage2, "blind"), sample(stage2, "blind")
    answer = blind_answer_record(
        action_id=first.pk, actor=rita, decision="approve", payload={"order": "A-1", "amount_cents": 900}
    )
    assert answer.agree is False
    assert {d["path"] for d in answer.diff} == {"amount_cents", "note"}
    rejected = blind_answer_record(action_id=second.pk, actor=rita, decision="reject", reason="looks like fraud")
    assert (rejected.agree, rejected.payload, rejected.reason) == (False, None, "looks like fraud")
    assert evidence(stage2, Metric.BLIND_DISAGREE) == 2


def test_the_answer_cannot_be_changed_or_given_twice(stage2, rita):
    action = sample(stage2, "blind")
    answer = blind_answer_record(action_id=action.pk, actor=rita, decision="reject", reason="no")
    with pytest.raises(InvalidTransition, match="cannot be changed"):
        blind_answer_record(action_id=action.pk, actor=rita, decision="approve", payload={"order": "A-1"})
    answer.reason = "changed my mind"
    with pytest.raises(ValueError, match="immutable"):
        answer.save()
    with pytest.raises(ValueError, match="immutable"):
        answer.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        BlindAnswer.objects.create(action=action, actor=rita, decision="reject", agree=False)
    assert evidence(stage2, Metric.BLIND_DISAGREE) == 1


def test_who_may_answer(stage2, rita):
    action = sample(stage2, "blind")
    outsider = MemberFactory(role=Member.Role.REVIEWER).user
    with pytest.raises(NotAllowed):
        blind_answer_record(action_id=action.pk, actor=outsider, decision="reject", reason="x")
    other = MemberFactory(role=Member.Role.REVIEWER, deployments=[stage2]).user
    proposed_action_claim(action_id=action.pk, actor=other)
    with pytest.raises(Conflict):
        blind_answer_record(action_id=action.pk, actor=rita, decision="reject", reason="x")
    senior_item = sample(stage2, "blind", route="senior", status=S.PENDING_SENIOR)
    with pytest.raises(NotAllowed, match="senior"):
        blind_answer_record(action_id=senior_item.pk, actor=rita, decision="reject", reason="x")
    assert not BlindAnswer.objects.exists()


def test_only_pending_blind_samples_take_answers(stage2, rita):
    plain = sample(stage2, "")
    with pytest.raises(InvalidTransition, match="not a blind sample"):
        blind_answer_record(action_id=plain.pk, actor=rita, decision="reject", reason="x")
    done = sample(stage2, "blind", status=S.EXPIRED)
    with pytest.raises(InvalidTransition, match="expired"):
        blind_answer_record(action_id=done.pk, actor=rita, decision="reject", reason="x")
    with pytest.raises(InvalidInput):
        blind_answer_record(action_id=plain.pk, actor=rita, decision="approve", payload=None)
    with pytest.raises(InvalidInput):
        blind_answer_record(action_id=plain.pk, actor=rita, decision="escalate")


def test_escalating_is_allowed_and_the_item_stays_blind_for_the_senior(stage2, rita):
    action = sample(stage2, "blind")
    proposed_action_escalate(action_id=action.pk, actor=rita, reason="not sure")
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[stage2]).user
    with pytest.raises(InvalidTransition, match="blind sample"):
        proposed_action_approve(action_id=action.pk, actor=senior)
    blind_answer_record(action_id=action.pk, actor=senior, decision="approve", payload=action.payload)
    assert proposed_action_approve(action_id=action.pk, actor=senior).status == S.APPROVED


def test_inputs_are_the_marked_payload_fields(stage2):
    action = sample(stage2, "blind", payload={"order": "A-9", "customer": {"id": "C-1", "tier": "gold"}, "amount": 5})
    assert blind_inputs(action) == [("order", "A-9"), ("customer.id", "C-1")]
    action.payload = {"amount": 5}
    assert blind_inputs(action) == [("order", None), ("customer.id", None)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1e400}', "out of range"),
        ('{"a": "\\u0000"}', "NUL"),
        ('{"a": "\\ud800"}', "surrogate"),
        ('{"\\ud800": 1}', "surrogate"),
        ('{"a": ' * 900 + "1" + "}" * 900, "nested"),
        ('{"a": ' + "[" * 900 + "]" * 900 + "}", "nested"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nested"),
        ('{"a": 99999999999999999999999}', "64 bits"),
        ('"a string"', "JSON object"),
        ("[1, 2]", "JSON object"),
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"a": "' + "x" * 70000 + '"}', "larger"),
    ],
)
def test_hostile_answers_are_refused_with_a_reason(raw, message):
    with pytest.raises(InvalidInput, match=message):
        answer_payload_parse(raw)


def test_a_good_answer_parses():
    assert answer_payload_parse('{"order": "A-1", "amount_cents": 1200, "tags": ["x"], "r": 0.5}') == {
        "order": "A-1",
        "amount_cents": 1200,
        "tags": ["x"],
        "r": 0.5,
    }
