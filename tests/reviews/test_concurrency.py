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
from tests.factories import ProposedActionFactory

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
