"""Issue 15 in the browser: cancelled, held and unknown actions on the action page, and an
admin's reconciliation of an unknown result."""

import pytest
from django.urls import reverse

from deployments.models import AuditEvent
from reviews.execution import proposed_action_cancel, proposed_action_execution_claim, proposed_action_report_result
from reviews.models import ProposedAction
from tests.factories import action_propose
from tests.reviews.test_views import client_for

pytestmark = pytest.mark.django_db


def propose(deployment, **kw) -> ProposedAction:
    fields = {"action_type": "refund.issue", "payload": {"amount_cents": 1}, "risk_score": 0.1, "confidence": 0.99}
    return action_propose(deployment, **{**fields, **kw})


def unknown_action(deployment) -> ProposedAction:
    action = propose(deployment)
    proposed_action_execution_claim(action_id=action.pk)
    return proposed_action_report_result(action_id=action.pk, status="unknown", payload_hash=action.payload_sha256)


def test_a_cancelled_action_says_so_and_a_decision_on_it_is_refused_with_a_message(reviewer, deployment):
    action = propose(deployment, risk_score=0.5)
    proposed_action_cancel(action_id=action.pk, reason="customer withdrew")
    rc = client_for(reviewer)
    page = rc.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    assert "withdrawn by the agent" in page and "customer withdrew" in page and 'id="approve-form"' not in page
    r = rc.post(reverse("reviews:decide", args=[action.pk]), {"decision": "approve"})
    assert r.status_code == 409 and "Nothing was changed" in r.content.decode()
    assert ProposedAction.objects.get(pk=action.pk).status == "cancelled"


def test_a_held_action_says_why(reviewer, deployment):
    propose(deployment, run_id="night", run_hold=True, risk_score=0.5)
    held = propose(deployment, run_id="night")
    page = client_for(reviewer).get(reverse("reviews:action_detail", args=[held.pk])).content.decode()
    assert "hold of run" in page and "run-wide hold" in page


def test_an_admin_reconciles_an_unknown_result_on_the_action_page(admin, deployment):
    action = unknown_action(deployment)
    ac = client_for(admin)
    url = reverse("reviews:action_detail", args=[action.pk])
    assert 'id="reconcile-form"' in ac.get(url).content.decode()
    refused = ac.post(reverse("reviews:reconcile", args=[action.pk]), {"committed": "0", "reason": ""})
    assert refused.status_code == 422 and ProposedAction.objects.get(pk=action.pk).status == "unknown"
    bad = ac.post(reverse("reviews:reconcile", args=[action.pk]), {"committed": "maybe", "reason": "x"})
    assert bad.status_code == 422
    ok = ac.post(reverse("reviews:reconcile", args=[action.pk]), {"committed": "0", "reason": "not in the ledger"})
    assert ok.status_code == 302
    stored = ProposedAction.objects.get(pk=action.pk)
    assert (stored.status, stored.decision) == ("approved", "execute")
    event = AuditEvent.objects.get(verb="reviews.action.reconciled", object_id=str(action.pk))
    assert event.actor == admin.user and event.reason == "not in the ledger"
    again = ac.post(reverse("reviews:reconcile", args=[action.pk]), {"committed": "1", "reason": "again"})
    assert again.status_code == 409 and "Nothing was changed" in again.content.decode()


def test_reviewers_neither_see_nor_post_the_reconcile_form(reviewer, deployment):
    action = unknown_action(deployment)
    rc = client_for(reviewer)
    assert 'id="reconcile-form"' not in rc.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    r = rc.post(reverse("reviews:reconcile", args=[action.pk]), {"committed": "1", "reason": "trust me"})
    assert r.status_code == 403 and ProposedAction.objects.get(pk=action.pk).status == "unknown"
