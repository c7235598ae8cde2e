"""Double review (issue 17 item 2): two independent decisions, the senior's tie-break, the
baseline counters written with the second vote."""

import pytest

from deployments.counters import Metric
from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Member
from reviews.claims import proposed_action_claim_next
from reviews.humans.double import double_vote_record, double_votes_visible
from reviews.humans.models import DoubleVote
from reviews.models import Decision, ProposedAction
from reviews.services import (
    proposed_action_approve,
    proposed_action_decide,
    proposed_action_escalate,
    proposed_action_reject,
)
from tests.factories import DeploymentFactory, MemberFactory
from tests.humans.support import evidence, sample

pytestmark = pytest.mark.django_db
S = ProposedAction.Status
PAYLOAD = {"order": "A-1", "amount_cents": 1200, "note": "refund"}


@pytest.fixture
def d():
    # auto_min_confidence 0.8: the samples (confidence 0.9, risk 0.1) are ones stage 3 would auto-execute.
    return DeploymentFactory(stage="approval", double_review_rate=1.0, auto_max_risk=0.2, auto_min_confidence=0.8)


@pytest.fixture
def people(d):
    return [MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for _ in range(2)]


@pytest.fixture
def senior(d):
    return MemberFactory(role=Member.Role.SENIOR, deployments=[d]).user


def item(d, **kw):
    return sample(d, "double", payload=dict(PAYLOAD), risk_score=0.1, **kw)


def test_the_first_vote_leaves_the_action_pending_and_writes_no_evidence(d, people):
    action = item(d)
    after = proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    assert after.status == S.PENDING_REVIEW and after.claimed_by is None
    vote = DoubleVote.objects.get(action=action)
    assert (vote.round, vote.verb, vote.agrees_with_ai, vote.matches_first) == (1, "approve", True, None)
    assert not Decision.objects.filter(action=action).exists()
    assert evidence(d, Metric.DOUBLE_HH_SAME) + evidence(d, Metric.DECISION_APPROVE) == 0
    # Audited on the vote, not on the action (whose history the second reviewer reads).
    event = AuditEvent.objects.get(verb="reviews.action.double_vote")
    assert event.object_type == "reviews.doublevote" and event.data["action"] == action.pk
    assert not AuditEvent.objects.filter(object_type="reviews.proposedaction", object_id=str(action.pk)).exists()


def test_the_same_person_cannot_decide_twice_and_is_not_given_the_item_again(d, people):
    action = item(d)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    with pytest.raises(Conflict, match="second person"):
        proposed_action_decide(action_id=action.pk, actor=people[0], decision="reject", reason="x")
    assert proposed_action_claim_next(actor=people[0]) is None
    assert proposed_action_claim_next(actor=people[1]).pk == action.pk


def test_ordinary_decisions_are_refused_while_votes_are_open(d, people):
    action = item(d)
    with pytest.raises(InvalidTransition, match="double-review"):
        proposed_action_approve(action_id=action.pk, actor=people[0])
    with pytest.raises(InvalidTransition, match="double-review"):
        proposed_action_reject(action_id=action.pk, actor=people[0], reason="x")


def test_two_agreeing_approvals_execute_once_on_the_second_with_the_counters(d, people):
    action = item(d)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    after = proposed_action_decide(action_id=action.pk, actor=people[1], decision="approve")
    assert after.status == S.APPROVED and after.final_payload == PAYLOAD
    decision = Decision.objects.get(action=action)
    assert (decision.verb, decision.actor) == ("approve", people[1])
    assert evidence(d, Metric.DOUBLE_HH_SAME) == 1 and evidence(d, Metric.DOUBLE_HH_DIFFER) == 0
    assert evidence(d, Metric.DOUBLE_HH_AGREE_AGREE) == 1
    assert evidence(d, Metric.DOUBLE_AI_AUTO_AGREE) == 2  # one per person
    assert evidence(d, Metric.DECISION_APPROVE) == 1
    with pytest.raises(InvalidTransition):
        double_vote_record(action_id=action.pk, actor=people[1], decision="approve")


def test_two_matching_edits_carry_out_the_second_edit(d, people):
    d.comparison_rules = {"ignore": ["note"]}
    d.save()
    action = item(d)
    edited = {**PAYLOAD, "amount_cents": 1000}
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve", payload=edited)
    after = proposed_action_decide(
        action_id=action.pk, actor=people[1], decision="approve", payload={**edited, "note": "other words"}
    )
    assert after.status == S.APPROVED and after.final_payload["note"] == "other words"
    assert evidence(d, Metric.DOUBLE_HH_SAME) == 1 and evidence(d, Metric.DOUBLE_HH_CHANGE_CHANGE) == 1
    assert evidence(d, Metric.DOUBLE_AI_AUTO_CHANGE) == 2
    assert Decision.objects.get(action=action).verb == "edit"


def test_two_rejections_reject(d, people):
    action = item(d)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="reject", reason="fraud")
    after = proposed_action_decide(action_id=action.pk, actor=people[1], decision="reject", reason="looks off")
    assert after.status == S.REJECTED and after.reason == "looks off"
    assert evidence(d, Metric.DOUBLE_HH_SAME) == 1 and evidence(d, Metric.DECISION_REJECT) == 1


def test_a_disagreement_goes_to_a_senior_who_cast_no_vote(d, people, senior):
    action = item(d)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    after = proposed_action_decide(action_id=action.pk, actor=people[1], decision="reject", reason="no")
    assert after.status == S.PENDING_SENIOR and after.expires_at is not None
    assert not Decision.objects.filter(action=action).exists()  # nothing executed, no agent told
    assert evidence(d, Metric.DOUBLE_HH_DIFFER) == 1 and evidence(d, Metric.DOUBLE_HH_AGREE_CHANGE) == 1
    assert evidence(d, Metric.DOUBLE_AI_AUTO_AGREE) == 1 and evidence(d, Metric.DOUBLE_AI_AUTO_CHANGE) == 1
    assert AuditEvent.objects.filter(verb="reviews.action.double_review_disagreed", object_id=str(action.pk)).exists()
    other_senior = MemberFactory(role=Member.Role.SENIOR, deployments=[d]).user
    Member.objects.filter(user=people[1]).update(role=Member.Role.SENIOR)
    with pytest.raises(NotAllowed, match="neither vote"):
        proposed_action_approve(action_id=action.pk, actor=people[1])
    settled = proposed_action_reject(action_id=action.pk, actor=other_senior, reason="second reviewer was right")
    assert settled.status == S.REJECTED
    assert [v.verb for v in double_votes_visible(settled, senior)] == ["approve", "reject"]


def test_the_ai_label_is_hold_when_stage_3_would_not_auto_execute(d, people):
    action = item(d, confidence=0.5)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    proposed_action_decide(action_id=action.pk, actor=people[1], decision="approve")
    assert evidence(d, Metric.DOUBLE_AI_HOLD_AGREE) == 2 and evidence(d, Metric.DOUBLE_AI_AUTO_AGREE) == 0


def test_votes_are_hidden_from_everyone_but_their_author_while_open(d, people, senior):
    action = item(d)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    action.refresh_from_db()
    assert double_votes_visible(action, people[1]) == []
    assert double_votes_visible(action, senior) == []
    assert [v.actor for v in double_votes_visible(action, people[0])] == [people[0]]


def test_escalating_leaves_the_double_review(d, people, senior):
    action = item(d)
    proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    proposed_action_escalate(action_id=action.pk, actor=people[1], reason="needs a senior")
    assert proposed_action_approve(action_id=action.pk, actor=senior).status == S.APPROVED
    assert evidence(d, Metric.DOUBLE_HH_SAME) + evidence(d, Metric.DOUBLE_HH_DIFFER) == 0


def test_a_rejection_needs_a_reason_and_an_outsider_cannot_vote(d, people):
    action = item(d)
    with pytest.raises(InvalidInput, match="reason"):
        double_vote_record(action_id=action.pk, actor=people[0], decision="reject")
    with pytest.raises(NotAllowed):
        double_vote_record(action_id=action.pk, actor=MemberFactory().user, decision="approve")
    with pytest.raises(InvalidTransition):
        double_vote_record(action_id=sample(d, "").pk, actor=people[0], decision="approve")
    assert not DoubleVote.objects.exists()
