"""Quorum approvals (issue 17 item 5, reviews/quorum.py): a payload rule's
`approvals_required: N` makes N different people approve; the first approvals leave the
action pending, only the last carries it out (one Decision, one webhook, evidence once)."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deliveries.models import Delivery
from deployments.counters import Metric
from deployments.delegations import delegation_create
from deployments.errors import Conflict, InvalidInput
from deployments.models import AuditEvent, Member
from deployments.rules import payload_rules_errors, rules_change_raises_only
from deployments.settings_changes import lowering_fields
from reviews.claims import proposed_action_claim_next
from reviews.humans.drills import drill_place
from reviews.humans.models import Drill, DrillTemplate
from reviews.models import Decision, ProposedAction, QuorumApproval
from reviews.representation import action_representation
from reviews.services import proposed_action_approve, proposed_action_decide
from tests.factories import DeploymentFactory, MemberFactory, action_propose
from tests.humans.support import evidence
from tests.reviews.test_query_counts import DECISION_QUERIES

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
S = ProposedAction.Status
RULE = {"name": "big refunds", "expression": "payload.amount_cents >= 50000", "effect": "review"}
QUORUM = {"refund.issue": [{**RULE, "approvals_required": 2}]}
BIG = {"order": "A-1", "amount_cents": 90000}


@pytest.fixture
def d():
    return DeploymentFactory(stage="supervised", payload_rules=QUORUM, double_review_rate=1.0)


@pytest.fixture
def people(d):
    return [MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for _ in range(3)]


def propose(d, payload=None, **kw):
    kw.setdefault("callback_url", "https://agent.example/hook")
    return action_propose(
        d, action_type="refund.issue", payload=dict(payload or BIG), risk_score=0.1, confidence=0.99, **kw
    )


def test_a_matching_rule_records_its_quorum_at_ingest_and_shows_it_everywhere(d):
    action = propose(d)
    small = propose(d, {"order": "A-2", "amount_cents": 100})
    assert (action.route, action.approvals_required, action.approvals_given) == ("review", 2, 0)
    assert small.approvals_required == 1 and small.route == "auto"  # the rule did not match
    # Never a double-review sample (the deployment samples every other review item).
    assert action.review_sample == ""
    body = action_representation(action)
    assert (body["approvals_required"], body["approvals"]) == (2, 0)
    why = AuditEvent.objects.get(verb="reviews.action.proposed", object_id=str(action.pk)).data["why"]
    assert any("2 approvals required" in w["text"] for w in why)


def test_shadow_actions_have_no_quorum(d):
    d.stage = "shadow"
    d.save()
    assert propose(d).approvals_required == 1


def test_the_first_approval_leaves_it_pending_and_tells_nobody(d, people):
    action = propose(d)
    after = proposed_action_decide(action_id=action.pk, actor=people[0], decision="approve")
    assert after.status == S.PENDING_REVIEW and after.approvals_given == 1 and after.quorum_label == "1 of 2 approvals"
    assert QuorumApproval.objects.filter(action=action, actor=people[0], number=1).exists()
    assert not Decision.objects.filter(action=action).exists()
    assert evidence(d, Metric.DECISION_APPROVE) == 0  # the gate counts the action once, when carried out
    assert not Delivery.objects.filter(object_id=str(action.pk)).exists()  # the agent keeps waiting
    event = AuditEvent.objects.get(verb="reviews.action.quorum_approval")
    assert event.actor_id == people[0].pk and event.data == {"approval": 1, "of": 2}
    assert action_representation(ProposedAction.objects.get(pk=action.pk))["approvals"] == 1


def test_the_same_person_cannot_approve_twice(d, people):
    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    with pytest.raises(Conflict, match="already approved"):
        proposed_action_approve(action_id=action.pk, actor=people[0])
    assert QuorumApproval.objects.filter(action=action).count() == 1


def test_a_delegate_cannot_approve_again_for_someone_who_already_approved(d, people):
    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    outsider = MemberFactory(role=Member.Role.REVIEWER)  # on no deployment: works d only for people[0]
    now = timezone.now()
    delegation_create(
        actor=people[0],
        delegator_id=people[0].member.pk,
        delegate_id=outsider.pk,
        starts_at=now,
        ends_at=now + timezone.timedelta(days=3),
    )
    with pytest.raises(Conflict, match="someone for you"):
        proposed_action_approve(action_id=action.pk, actor=outsider.user)
    assert ProposedAction.objects.get(pk=action.pk).approvals_given == 1


def test_the_last_approval_carries_it_out_once(d, people):
    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    done = proposed_action_approve(action_id=action.pk, actor=people[1], reason="checked")
    assert done.status == S.APPROVED and done.approvals_given == 2 and done.decision == "execute"
    decision = Decision.objects.get(action=action)
    assert (decision.verb, decision.actor_id) == ("approve", people[1].pk)
    assert evidence(d, Metric.DECISION_APPROVE) == 1
    assert Delivery.objects.filter(object_id=str(action.pk), event_type="action.approved").count() == 1
    event = AuditEvent.objects.get(verb="reviews.action.approved", object_id=str(action.pk))
    assert event.data["approvals"] == "2 of 2"
    with pytest.raises(Exception, match="only pending"):
        proposed_action_approve(action_id=action.pk, actor=people[2])


def test_a_reject_by_anyone_rejects_even_after_an_approval(d, people):
    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    rejected = proposed_action_decide(action_id=action.pk, actor=people[1], decision="reject", reason="too much")
    assert rejected.status == S.REJECTED
    assert Delivery.objects.filter(object_id=str(action.pk), event_type="action.rejected").count() == 1


def test_edits_are_refused_on_a_quorum_item_and_nothing_is_stored(d, people):
    action = propose(d)
    with pytest.raises(InvalidInput, match="not edited"):
        proposed_action_approve(action_id=action.pk, actor=people[0], payload={**BIG, "amount_cents": 1})
    assert not QuorumApproval.objects.filter(action=action).exists()
    assert ProposedAction.objects.get(pk=action.pk).status == S.PENDING_REVIEW
    # The unchanged payload sent back is an approval, not an edit.
    assert proposed_action_approve(action_id=action.pk, actor=people[0], payload=dict(BIG)).approvals_given == 1


def test_review_next_skips_items_the_reviewer_already_approved(d, people):
    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    assert proposed_action_claim_next(actor=people[0]) is None
    assert proposed_action_claim_next(actor=people[1]) == action


def test_approvals_survive_an_escalation_and_a_senior_completes_it(d, people):
    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    proposed_action_decide(action_id=action.pk, actor=people[1], decision="escalate", reason="large")
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[d]).user
    assert proposed_action_approve(action_id=action.pk, actor=senior).status == S.APPROVED


def test_a_drill_takes_the_quorum_of_its_template_and_its_first_approval_is_a_miss(d, people):
    template = DrillTemplate.objects.create(
        deployment=d, action_type="refund.issue", payload=dict(BIG), what_is_wrong="refund to a closed order"
    )
    drill = drill_place(template=template)
    assert drill.approvals_required == 2 and drill.quorum_label == "0 of 2 approvals"
    proposed_action_decide(action_id=drill.pk, actor=people[0], decision="approve")
    assert Drill.objects.get(action=drill).caught is False
    assert ProposedAction.objects.get(pk=drill.pk).status == S.REJECTED  # closed, never executed


@pytest.mark.parametrize("value", [1, 6, True, "2", 2.5, None])
def test_approvals_required_must_be_a_whole_number_from_2_to_5(value):
    rules = {"refund.issue": [{"name": "q", "expression": "true", "effect": "review", "approvals_required": value}]}
    assert any("approvals_required" in e for e in payload_rules_errors(rules))


def test_a_refuse_rule_cannot_ask_for_a_quorum():
    rules = {"refund.issue": [{"name": "q", "expression": "true", "effect": "refuse", "approvals_required": 2}]}
    assert any("needs effect review or senior" in e for e in payload_rules_errors(rules))


def test_adding_or_raising_a_quorum_raises_oversight_lowering_or_removing_it_lowers_it(d):
    plain = {"refund.issue": [RULE]}
    three = {"refund.issue": [{**QUORUM["refund.issue"][0], "approvals_required": 3}]}
    assert rules_change_raises_only(plain, QUORUM) and rules_change_raises_only(QUORUM, three)
    assert not rules_change_raises_only(QUORUM, plain) and not rules_change_raises_only(three, QUORUM)
    # Through the settings' governance: lowering is a change request, raising applies at once.
    assert lowering_fields(d, {"payload_rules": plain}) == ["payload_rules"]
    assert lowering_fields(d, {"payload_rules": three}) == []


def test_the_browser_shows_1_of_2_and_the_decision_stays_bounded(d, people, django_assert_max_num_queries):
    # Without a callback URL, as tests/reviews/test_query_counts.py's bound (a webhook's outbox row is 3 more).
    action = propose(d, callback_url="")
    first, second = Client(), Client()
    first.force_login(people[0])
    second.force_login(people[1])
    with django_assert_max_num_queries(DECISION_QUERIES):
        response = first.post(reverse("reviews:decide", args=[action.pk]), {"decision": "approve"}, follow=False)
    assert response.status_code == 302
    page = first.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    assert "1 of 2 approvals" in page and "approved so far by" in page
    assert "1 of 2 approvals" in second.get(reverse("reviews:queue")).content.decode()
    edited = second.post(
        reverse("reviews:decide", args=[action.pk]),
        {"decision": "approve", "payload": '{"order": "A-1", "amount_cents": 1}'},
    )
    assert edited.status_code == 422 and "not edited" in edited.content.decode()
    with django_assert_max_num_queries(DECISION_QUERIES):
        second.post(reverse("reviews:decide", args=[action.pk]), {"decision": "approve"})
    assert ProposedAction.objects.get(pk=action.pk).status == S.APPROVED


def test_the_slack_message_says_how_many_approvals(d, people):
    from integrations.slack.blocks import action_message

    action = propose(d)
    proposed_action_approve(action_id=action.pk, actor=people[0])
    _, blocks = action_message(ProposedAction.objects.select_related("deployment").get(pk=action.pk))
    assert {"type": "mrkdwn", "text": "*Approvals*\n1 of 2 approvals"} in blocks[1]["fields"]
