"""Fire drills (issue 17 item 4): placed like any item, never executed, never seen by an agent,
caught or missed per reviewer, told at once."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deliveries.models import Delivery
from deployments.errors import InvalidTransition
from deployments.models import AuditEvent, EvidenceCount, Member, ReviewerCount
from deployments.services import api_key_create
from reviews.humans.drills import drill_maybe_place, drill_place
from reviews.humans.models import Drill, DrillTemplate
from reviews.models import Decision, ProposedAction
from reviews.services import (
    Proposal,
    proposed_action_approve,
    proposed_action_create,
    proposed_action_decide,
    proposed_action_escalate,
    proposed_action_expire,
)
from tests.conftest import ApiClient
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db
S = ProposedAction.Status
BAD = {"order": "ORD-1", "amount_cents": 9_999_999, "iban": "XX00 0000"}


@pytest.fixture
def d():
    return DeploymentFactory(stage="approval", drill_rate=1.0)


@pytest.fixture
def template(d):
    return DrillTemplate.objects.create(
        deployment=d, action_type="refund.issue", payload=BAD, what_is_wrong="The amount is 1000x the order."
    )


@pytest.fixture
def rita(d):
    return MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user


def test_a_drill_is_placed_with_a_reviewed_proposal_and_looks_like_any_item(d, template):
    proposed_action_create(
        deployment=d,
        proposal=Proposal(action_type="refund.issue", payload={"order": "A"}, risk_score=0.1, confidence=0.99),
    )
    drill = ProposedAction.objects.get(review_sample="drill")
    assert (drill.status, drill.route, drill.payload, drill.callback_url) == (S.PENDING_REVIEW, "review", BAD, "")
    assert drill.expires_at is not None and Drill.objects.get(action=drill).template == template
    assert not EvidenceCount.objects.filter(metric="proposed.review", n__gt=1).exists()  # one real proposal
    reviewer = Client()
    reviewer.force_login(MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user)
    html = reviewer.get(f"/actions/{drill.pk}/").content.decode()
    assert "drill" not in html.lower() and 'id="approve-button"' in html
    assert "drill" not in reviewer.get("/queue/").content.decode().lower()


def test_no_drill_without_a_template_of_the_type_or_at_rate_zero(d, template):
    assert drill_maybe_place(deployment=d, action_type="invoice.match") is None
    d.drill_rate = 0
    assert drill_maybe_place(deployment=d, action_type="refund.issue") is None
    d.drill_rate = 0.5
    assert drill_maybe_place(deployment=d, action_type="refund.issue", draw=lambda: 0.6) is None
    assert drill_maybe_place(deployment=d, action_type="refund.issue", draw=lambda: 0.4) is not None


def test_approving_a_drill_is_a_missed_drill_and_executes_nothing(d, template, rita):
    action = drill_place(template=template)
    before = set(EvidenceCount.objects.values_list("metric", "n"))
    after = proposed_action_decide(action_id=action.pk, actor=rita, decision="approve", payload={**BAD, "x": 1})
    assert after.status == S.REJECTED and after.final_payload is None and after.payload_sha256 == ""
    drill = Drill.objects.get(action=action)
    assert (drill.actor, drill.decision, drill.caught) == (rita, "approve", False)
    assert not Decision.objects.filter(action=action).exists()
    assert not Delivery.objects.exists()
    assert set(EvidenceCount.objects.values_list("metric", "n")) == before  # the gate never sees it
    assert ReviewerCount.objects.get(user=rita, metric="drill.missed").n == 1
    assert AuditEvent.objects.filter(verb="reviews.drill.missed", object_id=str(action.pk)).exists()
    with pytest.raises(InvalidTransition):
        proposed_action_decide(action_id=action.pk, actor=rita, decision="approve")


@pytest.mark.parametrize("decision", ["reject", "escalate"])
def test_rejecting_or_escalating_catches_it(d, template, rita, decision):
    action = drill_place(template=template)
    after = proposed_action_decide(action_id=action.pk, actor=rita, decision=decision, reason="looks wrong")
    assert after.status == S.REJECTED
    assert Drill.objects.get(action=action).caught is True
    assert ReviewerCount.objects.get(user=rita, metric="drill.caught").n == 1


def test_other_paths_cannot_decide_it_and_expiry_closes_it_without_evidence(d, template, rita):
    action = drill_place(template=template)
    with pytest.raises(InvalidTransition):
        proposed_action_approve(action_id=action.pk, actor=rita)
    with pytest.raises(InvalidTransition):
        proposed_action_escalate(action_id=action.pk, actor=rita, reason="x")
    later = timezone.now() + timedelta(days=3)
    assert proposed_action_expire(action_id=action.pk, now=later).status == S.EXPIRED
    assert Drill.objects.get(action=action).caught is None
    assert not EvidenceCount.objects.filter(metric="decision.expire").exists()


def test_the_agent_api_never_sees_a_drill(d, template):
    action = drill_place(template=template)
    _, raw = api_key_create(deployment=d)
    api = ApiClient(raw)
    assert api.get(f"/api/v1/actions/{action.pk}").status_code == 404
    result = api.post(f"/api/v1/actions/{action.pk}/result", {"status": "executed", "payload_sha256": "0" * 64})
    assert result.status_code == 404


def test_the_reviewer_is_told_at_once_and_the_quality_page_shows_the_catch_rate(d, template, rita):
    c = Client()
    c.force_login(rita)
    missed = drill_place(template=template)
    page = c.post(f"/actions/{missed.pk}/decide", {"decision": "approve"}, follow=True).content.decode()
    assert "fire drill" in page and "missed drill" in page and "1000x" in page
    caught = drill_place(template=template)
    page = c.post(f"/actions/{caught.pk}/decide", {"decision": "reject", "reason": "bad"}, follow=True)
    assert "Well caught" in page.content.decode()
    senior = Client()
    senior.force_login(MemberFactory(role=Member.Role.SENIOR, deployments=[d]).user)
    html = senior.get(f"/deployments/{d.slug}/reviewers/").content.decode()
    assert "Drills caught" in html and "50.0%" in html
