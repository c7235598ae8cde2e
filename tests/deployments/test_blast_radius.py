"""Blast-radius limits (SPEC §1): at most N auto-executions and V of a payload field per window."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deployments.models import AuditEvent, BlastRadiusUse
from deployments.services import api_key_create, blast_radius_purge
from reviews.models import ProposedAction
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory, action_propose
from tests.reviews.test_concurrency import run_together


def propose(deployment, **overrides):
    body = proposal(**overrides)
    return action_propose(deployment, **body)


@pytest.mark.django_db
def test_past_the_count_limit_actions_go_to_the_reviewer_queue():
    d = DeploymentFactory(stage="autonomous", blast_max_auto=3)
    routes = [propose(d).route for _ in range(5)]
    assert routes == ["auto", "auto", "auto", "review", "review"]
    limited = AuditEvent.objects.filter(verb="reviews.action.proposed", data__route="review").first()
    assert "blast radius" in limited.data["limited"]
    # High-risk actions were never auto: they keep their senior route and use no budget.
    assert propose(d, risk_score=0.9).route == "senior"
    assert BlastRadiusUse.objects.filter(deployment=d).count() == 3


@pytest.mark.django_db
def test_value_budget_on_a_payload_field():
    d = DeploymentFactory(stage="supervised", blast_max_value=3000, blast_value_field="amount_cents")
    assert propose(d, payload={"amount_cents": 1200}).route == "auto"
    assert propose(d, payload={"amount_cents": 1200}).route == "auto"
    assert propose(d, payload={"amount_cents": 1200}).route == "review"  # 3600 > 3000
    assert propose(d, payload={"amount_cents": 600}).route == "auto"  # exactly 3000
    assert propose(d, payload={"note": "no amount"}).route == "auto"  # no field: costs nothing
    assert propose(d, payload={"amount_cents": "lots"}).route == "review"  # not a number: fail closed
    assert propose(d, payload={"amount_cents": True}).route == "review"


@pytest.mark.django_db
def test_the_window_rolls():
    d = DeploymentFactory(stage="autonomous", blast_max_auto=2, blast_window=timedelta(hours=1))
    old = timezone.now() - timedelta(hours=2)
    BlastRadiusUse.objects.bulk_create([BlastRadiusUse(deployment=d, at=old) for _ in range(5)])
    assert propose(d).route == "auto"
    assert propose(d).route == "auto"
    assert propose(d).route == "review"
    assert blast_radius_purge(deployment_id=d.pk, older_than=timezone.now() - d.blast_window) == 5
    assert blast_radius_purge(deployment_id=d.pk, older_than=timezone.now() - d.blast_window) == 0


@pytest.mark.django_db
def test_without_limits_nothing_is_recorded():
    d = DeploymentFactory(stage="autonomous")
    assert all(propose(d).route == "auto" for _ in range(3))
    assert not BlastRadiusUse.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_auto_eligible_proposals_against_a_limit_of_ten_execute_exactly_ten():
    assert connection.vendor == "postgresql"
    d = DeploymentFactory(stage="supervised", blast_max_auto=10)
    _, raw = api_key_create(deployment=d)

    def call(i):
        return lambda: ApiClient(raw).post("/api/v1/actions", proposal(external_id=f"race-{i}"))

    responses = run_together(*[call(i) for i in range(20)])
    assert all(getattr(r, "status_code", None) == 201 for r in responses), responses
    decisions = sorted(r.json()["decision"] for r in responses)
    assert decisions.count("execute") == 10 and decisions.count("wait") == 10
    assert ProposedAction.objects.filter(deployment=d, route="auto").count() == 10
    assert BlastRadiusUse.objects.filter(deployment=d).count() == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_failure_reports_trip_the_breaker_once_without_errors():
    from deployments.models import AuditEvent

    d = DeploymentFactory(stage="autonomous")
    _, raw = api_key_create(deployment=d)
    created = [ApiClient(raw).post("/api/v1/actions", proposal(external_id=f"f{i}")).json() for i in range(30)]
    for action in created:  # a result needs the execution claim (issue 15)
        assert ApiClient(raw).post(f"/api/v1/actions/{action['id']}/claim", {}).status_code == 200

    def report(action):
        body = {"status": "failed", "payload_sha256": action["payload_sha256"]}
        return lambda: ApiClient(raw).post(f"/api/v1/actions/{action['id']}/result", body)

    responses = run_together(*[report(a) for a in created])
    assert [getattr(r, "status_code", r) for r in responses] == [200] * 30
    assert AuditEvent.objects.filter(verb="deployments.breaker.tripped", deployment=d).count() == 1
    d.refresh_from_db()
    assert d.breaker_tripped
