"""Writes are counted too (STYLE.md): the browser decision, the result report and the outcome
post each run a bounded number of queries on PostgreSQL, whatever the history behind them."""

import pytest
from django.test import Client
from django.urls import reverse

from deployments.services import api_key_create
from reviews.claims import proposed_action_claim_next
from reviews.models import ProposedAction
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory, ProposedActionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

Status = ProposedAction.Status

# Measured on PostgreSQL under pytest (savepoints counted): 24 before issue 14 (31 with htmx),
# two row locks, the member read three times; 15 (21) after. The bound is 15. Issue 17
# adds one statement: the decider's own counters and approve streak (deployments.reviewers).
# Issue 15 one more: the read of the action's parent and run, locked before it (reviews.runs).
# Issue 16 one more: the decision's calibration counter (deployments.calibration), its own table.
DECISION_QUERIES = 15
# The htmx reply also renders the next item's page (its neighbours and history).
HTMX_PAGE_QUERIES = 6


@pytest.fixture
def rc(reviewer) -> Client:
    client = Client()
    client.force_login(reviewer.user)
    return client


@pytest.mark.parametrize("htmx", [False, True], ids=["redirect", "htmx"])
def test_browser_approval_with_the_next_item_claimed(rc, reviewer, deployment, htmx, django_assert_max_num_queries):
    first, following = (ProposedActionFactory(deployment=deployment, action_type="refund.issue") for _ in range(2))
    assert proposed_action_claim_next(actor=reviewer.user) == first  # the Review-next flow claims the next
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    with django_assert_max_num_queries(DECISION_QUERIES + (HTMX_PAGE_QUERIES if htmx else 0)):
        response = rc.post(reverse("reviews:decide", args=[first.pk]), {"decision": "approve"}, **headers)
    assert response.status_code in (200, 302), response.content
    first.refresh_from_db()
    following.refresh_from_db()
    assert first.status == Status.APPROVED
    assert following.claimed_by_id == reviewer.user_id  # the next item was claimed for them


def test_browser_rejection_is_bounded_too(rc, reviewer, deployment, django_assert_max_num_queries):
    action = ProposedActionFactory(deployment=deployment, action_type="refund.issue")
    ProposedActionFactory(deployment=deployment, action_type="refund.issue")
    with django_assert_max_num_queries(DECISION_QUERIES):
        response = rc.post(reverse("reviews:decide", args=[action.pk]), {"decision": "reject", "reason": "no"})
    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == Status.REJECTED


def test_result_report(api, deployment, django_assert_max_num_queries):
    deployment.stage = "autonomous"
    deployment.save()
    created = api.post("/api/v1/actions", proposal()).json()
    assert created["decision"] == "execute", created
    with django_assert_max_num_queries(8):
        claimed = api.post(f"/api/v1/actions/{created['id']}/claim", {"claim_key": "k"})
    assert claimed.status_code == 200, claimed.content
    body = {"status": "executed", "payload_sha256": created["payload_sha256"], "claim_key": "k"}
    with django_assert_max_num_queries(13):  # 12, and the result's calibration counter
        response = api.post(f"/api/v1/actions/{created['id']}/result", body)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "executed"


def test_outcome_post(api, deployment, django_assert_max_num_queries):
    deployment.stage = "shadow"
    deployment.save()
    for i in range(3):
        api.post("/api/v1/actions", proposal(external_id=f"T-{i}"))
    DeploymentFactory()  # someone else's deployment is never read
    outcomes = [
        {"external_id": f"T-{i}", "action_type": "refund.issue", "payload": {"amount_cents": 1200, "order": "A-1"}}
        for i in range(3)
    ]
    # Outcomes come from the system of record, with a key of scope `outcomes` (issue 16).
    recorder = ApiClient(api_key_create(deployment=deployment, scopes=["outcomes"])[1])
    recorder.post("/api/v1/outcomes", {**outcomes[0], "external_id": "warm-up"})  # its last_used_at written
    with django_assert_max_num_queries(8):
        response = recorder.post("/api/v1/outcomes", outcomes)
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 3
