"""The blind page and endpoint, and double review through the ordinary decide endpoint."""

import pytest
from django.test import Client

from deployments.counters import Metric
from deployments.models import Member
from reviews.humans.models import BlindAnswer, DoubleVote
from reviews.models import ProposedAction
from tests.factories import DeploymentFactory, MemberFactory
from tests.humans.support import evidence, sample

pytestmark = pytest.mark.django_db
S = ProposedAction.Status
SECRET = "SECRET-PROPOSAL-VALUE"


@pytest.fixture
def d():
    return DeploymentFactory(stage="approval", blind_input_fields=["order"], comparison_rules={"ignore": ["note"]})


def signed_in(d, role=Member.Role.REVIEWER) -> Client:
    c = Client()
    c.force_login(MemberFactory(role=role, deployments=[d]).user)
    return c


def blind_item(d):
    return sample(
        d,
        "blind",
        payload={"order": "A-7", "amount_cents": 4242, "note": SECRET},
        rationale="because " + SECRET,
        confidence=0.8765,
    )


def test_the_blind_page_hides_the_proposal_and_shows_the_inputs(d):
    action = blind_item(d)
    c = signed_in(d)
    html = c.get(f"/actions/{action.pk}/").content.decode()
    assert "blind sample" in html and "A-7" in html
    for hidden in (SECRET, "4242", "0.877", "reviews.action.proposed", 'id="payload-editor"'):
        assert hidden not in html
    queue = c.get("/queue/").content.decode()
    assert "blind sample" in queue and SECRET not in queue and "0.88" not in queue
    # The htmx partial hides it too.
    partial = c.get(f"/actions/{action.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert SECRET not in partial and 'id="blind-payload"' in partial


def test_answering_reveals_the_proposal_then_the_reviewer_decides(d):
    action = blind_item(d)
    c = signed_in(d)
    refused = c.post(f"/actions/{action.pk}/decide", {"decision": "approve"})
    assert refused.status_code == 409 and "blind sample" in refused.content.decode()
    answer = '{"order": "A-7", "amount_cents": 4242}'
    r = c.post(f"/actions/{action.pk}/blind", {"decision": "approve", "payload": answer})
    assert r.status_code == 200
    html = r.content.decode()
    assert SECRET in html and "agrees with the AI" in html and "Your answer is recorded" in html
    assert evidence(d, Metric.BLIND_AGREE) == 1
    again = c.post(f"/actions/{action.pk}/blind", {"decision": "reject", "reason": "no"})
    assert again.status_code == 409 and "cannot be changed" in again.content.decode()
    assert c.post(f"/actions/{action.pk}/decide", {"decision": "approve"}).status_code == 302
    action.refresh_from_db()
    assert action.status == S.APPROVED


@pytest.mark.parametrize(
    "raw",
    ['{"a": NaN}', '{"a": 1e400}', '{"a": "\\u0000"}', '{"a": "\\ud800"}', '{"a": ' * 900 + "1" + "}" * 900, "[]", "x"],
)
def test_hostile_answers_are_a_4xx_with_a_message_and_store_nothing(d, raw):
    action = blind_item(d)
    r = signed_in(d).post(f"/actions/{action.pk}/blind", {"decision": "approve", "payload": raw})
    assert r.status_code == 422
    assert "Nothing was changed" in r.content.decode() and SECRET not in r.content.decode()
    assert not BlindAnswer.objects.exists()


def test_a_rejection_needs_a_reason_and_an_unknown_decision_is_refused(d):
    action = blind_item(d)
    c = signed_in(d)
    assert c.post(f"/actions/{action.pk}/blind", {"decision": "reject"}).status_code == 422
    assert c.post(f"/actions/{action.pk}/blind", {"decision": "escalate"}).status_code == 422
    assert c.post(f"/actions/{action.pk}/blind", {"decision": "reject", "reason": "fraud"}).status_code == 200
    assert BlindAnswer.objects.get().decision == "reject"


def test_the_endpoint_needs_a_member_of_the_deployment_and_post_and_csrf(d):
    action = blind_item(d)
    assert Client().post(f"/actions/{action.pk}/blind", {"decision": "reject", "reason": "x"}).status_code == 302
    outsider = Client()
    outsider.force_login(MemberFactory(role=Member.Role.REVIEWER).user)
    assert outsider.post(f"/actions/{action.pk}/blind", {"decision": "reject", "reason": "x"}).status_code == 404
    c = signed_in(d)
    assert c.get(f"/actions/{action.pk}/blind").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user)
    assert strict.post(f"/actions/{action.pk}/blind", {"decision": "reject", "reason": "x"}).status_code == 403
    assert not BlindAnswer.objects.exists()


def test_double_review_through_the_decide_endpoint(d):
    action = sample(d, "double", payload={"order": "A-1", "amount_cents": 100})
    first, second = signed_in(d), signed_in(d)
    r = first.post(f"/actions/{action.pk}/decide", {"decision": "approve"}, follow=True)
    assert "1 of 2" in r.content.decode()
    page = first.get(f"/actions/{action.pk}/").content.decode()
    assert "You gave yours" in page and 'id="approve-button"' not in page
    other_view = second.get(f"/actions/{action.pk}/").content.decode()
    assert "1 of 2" in other_view and "You gave yours" not in other_view and 'id="double-votes"' not in other_view
    r = second.post(f"/actions/{action.pk}/decide", {"decision": "reject", "reason": "wrong order"}, follow=True)
    assert "a senior settles it" in r.content.decode()
    action.refresh_from_db()
    assert action.status == S.PENDING_SENIOR and DoubleVote.objects.count() == 2
    senior_page = signed_in(d, Member.Role.SENIOR).get(f"/actions/{action.pk}/").content.decode()
    assert 'id="double-votes"' in senior_page and "wrong order" in senior_page
