"""Shadow mode against real PostgreSQL, Redis and a Celery worker process.

Threads with their own connections race the services (as Django's select_for_update tests
do); one test starts `celery worker` as a subprocess on the pytest-django test database and
lets it do the comparisons that the API enqueues.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery_app import app
from deployments.errors import Conflict
from deployments.services import api_key_create
from reviews.models import ProposedAction
from reviews.shadow import services
from reviews.shadow.models import ShadowOutcome, ShadowRecompute
from tests.conftest import ApiClient, proposal
from tests.factories import ProposedActionFactory
from tests.reviews.test_concurrency import run_together
from tests.shadow.conftest import counters

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def make_pairs(deployment, n: int) -> list[int]:
    ids = []
    for i in range(n):
        a = ProposedActionFactory(
            deployment=deployment,
            external_id=f"E-{i}",
            payload={"i": i},
            route="shadow",
            stage="shadow",
            status="logged",
            expires_at=None,
        )
        ShadowOutcome.objects.create(
            deployment=deployment, external_id=f"E-{i}", action_type="refund.issue", payload={"i": i if i % 4 else -1}
        )
        ids.append(a.pk)
    return ids


def test_parallel_sweeps_compare_each_pair_exactly_once(deployment):
    make_pairs(deployment, 120)
    results = run_together(
        *[lambda: services.shadow_compare_sweep(deployment_id=deployment.pk, batch_size=10) for _ in range(3)]
    )
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 120
    assert ProposedAction.objects.filter(status="compared").count() == 120
    assert counters(deployment) == (90, 30)


def test_parallel_batches_over_the_same_ids_count_once(deployment):
    ids = make_pairs(deployment, 80)
    results = run_together(*[lambda: services.shadow_compare_actions(action_ids=ids) for _ in range(4)])
    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["compared"] for r in results) == 80
    assert counters(deployment) == (60, 20)


@pytest.mark.redis
@pytest.mark.broker
def test_two_recomputes_started_at_once_one_is_refused(deployment, admin):
    """Tasks go to Redis and no worker runs them here, so the first recompute stays running."""
    services.shadow_compare_actions(action_ids=make_pairs(deployment, 4))
    try:
        results = run_together(
            lambda: services.shadow_recompute_start(deployment_id=deployment.pk, actor=admin.user),
            lambda: services.shadow_recompute_start(deployment_id=deployment.pk, actor=admin.user),
        )
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "ShadowRecompute"], results
        assert ShadowRecompute.objects.filter(deployment=deployment).count() == 1
        with pytest.raises(Conflict):
            services.shadow_recompute_start(deployment_id=deployment.pk, actor=admin.user)
    finally:
        app.control.purge()


def test_the_database_allows_one_running_recompute_per_deployment(deployment):
    from django.db import IntegrityError, transaction

    ShadowRecompute.objects.create(deployment=deployment)
    with pytest.raises(IntegrityError), transaction.atomic():
        ShadowRecompute.objects.create(deployment=deployment)
    ShadowRecompute.objects.create(deployment=deployment, status="done")  # finished ones are history


@pytest.fixture
def celery_worker_process():
    """A real `celery worker` on the test database and our Redis db; killed at the end."""
    app.control.purge()  # nothing left over from earlier runs
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    if db.get("PASSWORD"):
        env["DATABASE_URL"] = env["DATABASE_URL"].replace(f"{db['USER']}@", f"{db['USER']}:{db['PASSWORD']}@")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "-P", "solo", "-l", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        app.control.purge()


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


@pytest.mark.redis
@pytest.mark.broker
def test_a_celery_worker_compares_what_the_api_enqueues(deployment, celery_worker_process):
    deployment.stage = "shadow"
    deployment.save()
    _, raw = api_key_create(deployment=deployment, scopes=["propose", "outcomes"])
    api = ApiClient(raw)
    ids = [api.post("/api/v1/actions", proposal(external_id=f"W-{i}")).json()["id"] for i in range(5)]
    outcomes = [
        {"external_id": f"W-{i}", "action_type": "refund.issue", "payload": {"amount_cents": 1200 + i, "order": "A-1"}}
        for i in range(5)
    ]
    assert api.post("/api/v1/outcomes", outcomes).status_code == 200
    done = wait_for(lambda: ProposedAction.objects.filter(pk__in=ids, status="compared").count() == 5)
    if not done:
        celery_worker_process.kill()
        output = celery_worker_process.stdout.read().decode(errors="replace")
        pytest.fail(f"the worker did not compare the pairs; its output:\n{output[-3000:]}")
    got = api.get(f"/api/v1/actions/{ids[3]}").json()
    assert got["status"] == "compared"
    assert got["comparison"] == {
        "agree": False,
        "diff": [{"path": "amount_cents", "kind": "changed", "ai": 1200, "human": 1203}],
    }
    assert counters(deployment) == (1, 4)
    # the other order: the outcome first, then the action; the worker pairs them too
    api.post("/api/v1/outcomes", {"external_id": "late", "action_type": "refund.issue", "payload": {}})
    late = api.post("/api/v1/actions", proposal(external_id="late", payload={})).json()["id"]
    assert wait_for(lambda: ProposedAction.objects.get(pk=late).status == "compared")
    assert counters(deployment) == (2, 4)


def test_the_same_new_outcome_sent_twice_at_once_is_stored_once(deployment):
    _, raw = api_key_create(deployment=deployment, scopes=["outcomes"])
    bodies = [
        {"external_id": "R-1", "action_type": "refund.issue", "payload": {"v": 1}},
        {"external_id": "R-1", "action_type": "refund.issue", "payload": {"v": 2}},
    ]
    responses = run_together(*[lambda b=b: ApiClient(raw).post("/api/v1/outcomes", b) for b in bodies])
    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(r.json()["results"][0]["result"] for r in responses) == ["conflict", "created"]
    stored = ShadowOutcome.objects.get(deployment=deployment, external_id="R-1")
    winner = [r.json()["created"] for r in responses].index(1)
    assert stored.payload == bodies[winner]["payload"]
    assert {r.json()["results"][0]["outcome_id"] for r in responses} == {stored.pk}
