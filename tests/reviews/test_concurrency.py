"""Races on real PostgreSQL: row locks make exactly one decision win, and one Idempotency-Key
make exactly one action. Threads with their own connections, as Django's select_for_update tests do."""

import threading

import pytest
from django.db import connection, connections

from deployments.errors import InvalidTransition
from deployments.services import api_key_create
from reviews.models import Decision, ProposedAction
from reviews.services import proposed_action_approve, proposed_action_reject
from tests.conftest import ApiClient, proposal
from tests.factories import ProposedActionFactory, action_propose

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(*functions) -> list:
    """Start the functions at the same instant in threads; return what each returned or raised."""
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def runner(i, fn):
        try:
            barrier.wait()
            results[i] = fn()
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_reviewers_deciding_at_once_exactly_one_wins(reviewer, senior):
    deployment = reviewer.deployments.first()
    for _ in range(50):
        action = ProposedActionFactory(deployment=deployment)
        results = run_together(
            lambda action=action: proposed_action_approve(action_id=action.pk, actor=reviewer.user),
            lambda action=action: proposed_action_reject(action_id=action.pk, actor=senior.user, reason="no"),
        )
        winners = [r for r in results if isinstance(r, ProposedAction)]
        losers = [r for r in results if isinstance(r, InvalidTransition)]
        assert len(winners) == 1 and len(losers) == 1, results
        stored = ProposedAction.objects.get(pk=action.pk)
        assert stored.status == winners[0].status
        assert Decision.objects.filter(action=action).count() == 1


def test_twenty_concurrent_identical_requests_create_one_action(deployment):
    assert connection.vendor == "postgresql"
    _, raw = api_key_create(deployment=deployment)
    body = proposal()

    def call():
        return ApiClient(raw).post("/api/v1/actions", body, headers={"Idempotency-Key": "same-key"})

    responses = run_together(*[call for _ in range(20)])
    codes = sorted(r.status_code for r in responses)
    assert ProposedAction.objects.filter(deployment=deployment).count() == 1
    assert set(codes) <= {201, 409}, codes
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert sum(1 for r in created if r.get("Idempotent-Replayed") != "true") == 1
    # After the race, every retry replays the one action.
    again = call()
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"


def test_two_execution_claims_at_once_exactly_one_wins(deployment):
    """Issue 15: a replay, a retried crash or a second process claiming at the same instant."""
    from reviews.execution import AlreadyClaimed, proposed_action_execution_claim

    for i in range(30):
        action = action_propose(
            deployment, action_type="refund.issue", payload={"i": i}, risk_score=0.1, confidence=0.99
        )
        results = run_together(
            *[
                lambda key=key, pk=action.pk: proposed_action_execution_claim(action_id=pk, claim_key=key)
                for key in ("process-a", "process-b")
            ]
        )
        winners = [r for r in results if isinstance(r, tuple)]
        losers = [r for r in results if isinstance(r, AlreadyClaimed)]
        assert len(winners) == 1 and len(losers) == 1, results
        stored = ProposedAction.objects.get(pk=action.pk)
        assert stored.execution_claims == 1 and stored.execution_claim_key == winners[0][0].execution_claim_key


def test_ten_agents_claiming_one_action_over_http_one_runs(deployment):
    _, raw = api_key_create(deployment=deployment)
    created = ApiClient(raw).post("/api/v1/actions", proposal()).json()
    url = f"/api/v1/actions/{created['id']}/claim"
    responses = run_together(*[lambda i=i: ApiClient(raw).post(url, {"claim_key": f"agent-{i}"}) for i in range(10)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 9, codes
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"already_claimed"}


def test_a_decision_and_the_last_sibling_of_a_held_run_release_each_action_once(reviewer, deployment):
    """Two gated siblings decided at once: whoever commits second releases the held ones,
    exactly once, and nothing deadlocks."""
    from deployments.models import AuditEvent

    def propose(run, **kw):
        fields = {"action_type": "refund.issue", "payload": {"n": 1}, "risk_score": 0.1, "confidence": 0.99}
        return action_propose(deployment, run_id=run, **{**fields, **kw})

    for i in range(10):
        run = f"race-{i}"
        a = propose(run, run_hold=True, risk_score=0.5)
        b = propose(run, risk_score=0.5)
        held = propose(run)
        results = run_together(
            *[lambda pk=x.pk: proposed_action_approve(action_id=pk, actor=reviewer.user) for x in (a, b)]
        )
        assert all(isinstance(r, ProposedAction) for r in results), results
        statuses = set(ProposedAction.objects.filter(run__key=run).values_list("status", flat=True))
        assert statuses == {"approved"}, statuses
        released = AuditEvent.objects.filter(verb="reviews.action.released", object_id=str(held.pk)).count()
        assert released == 1
