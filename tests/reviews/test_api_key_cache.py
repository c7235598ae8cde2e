"""POST /api/v1/actions may take its API key from the process's cache; its one statement then
checks that the key is still active and its deployment unchanged (deployments.models.KeyCheck).
Whatever the cache holds, an agent gets the answer a key read afresh would have got."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import ApiKey, Deployment
from deployments.services import api_key_revoke
from reviews.models import IdempotencyRecord, ProposedAction
from tests.conftest import proposal

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _cache(api) -> None:
    """A first request: the key is read, and cached."""
    r = api.post("/api/v1/actions", proposal(external_id="first"), headers={"Idempotency-Key": "first"})
    assert r.status_code == 201, r.content


def _everything() -> tuple[int, int]:
    return ProposedAction.objects.count(), IdempotencyRecord.objects.count()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(proposal(external_id="X-2"), {"Idempotency-Key": "k-2"}, id="a new proposal"),
        pytest.param(proposal(external_id="X-3"), {}, id="without an Idempotency-Key"),
        pytest.param(proposal(external_id="first"), {"Idempotency-Key": "first"}, id="a replay"),
        pytest.param(proposal(risk_score=7), {}, id="an invalid body (422 otherwise)"),
        pytest.param(proposal(external_id="X-4"), {"Idempotency-Key": "x" * 300}, id="an invalid header"),
    ],
)
def test_a_key_revoked_after_it_was_cached_is_401(api, deployment, body, headers):
    _cache(api)
    api_key_revoke(key_id=ApiKey.objects.get(deployment=deployment).pk)
    before = _everything()
    r = api.post("/api/v1/actions", body, headers=headers)
    assert r.status_code == 401, r.content
    assert r.json()["error"] == "unauthorized"
    assert _everything() == before
    # And the key is gone from the cache: the next request reads it (and finds it revoked).
    assert api.post("/api/v1/actions", proposal(external_id="X-9")).status_code == 401


def test_malformed_json_with_a_revoked_cached_key_is_401(api, deployment):
    _cache(api)
    api_key_revoke(key_id=ApiKey.objects.get(deployment=deployment).pk)
    assert api.post("/api/v1/actions", raw=b"{nope").status_code == 401


def test_other_operations_never_use_the_cache(api, deployment):
    _cache(api)
    api_key_revoke(key_id=ApiKey.objects.get(deployment=deployment).pk)
    assert api.get("/api/v1/deployment").status_code == 401
    assert api.get(f"/api/v1/actions/{ProposedAction.objects.get().pk}").status_code == 401


@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_a_deployment_changed_after_its_key_was_cached_routes_by_the_change(api, deployment):
    """supervised, low risk: auto-approved; paused meanwhile: a person decides."""
    _cache(api)
    assert ProposedAction.objects.get().route == "auto"
    Deployment.objects.filter(pk=deployment.pk).update(paused=True)
    with CaptureQueriesContext(connection) as queries:
        r = api.post("/api/v1/actions", proposal(external_id="X-2"), headers={"Idempotency-Key": "k-2"})
    assert r.status_code == 201, r.content
    assert (r.json()["route"], r.json()["decision"]) == ("review", "wait")
    # The statement refused the cached key; the key read afresh; the statement again.
    assert len(queries) == 3, [q["sql"][:80] for q in queries]
    # Cached again, as read: the next proposal is one statement.
    with CaptureQueriesContext(connection) as queries:
        r = api.post("/api/v1/actions", proposal(external_id="X-3"), headers={"Idempotency-Key": "k-3"})
    assert r.status_code == 201 and r.json()["route"] == "review"
    assert len(queries) == 1, [q["sql"][:80] for q in queries]


def test_a_replay_from_the_cache_is_the_original_reply(api, deployment):
    _cache(api)
    first = api.post("/api/v1/actions", proposal(external_id="X-2"), headers={"Idempotency-Key": "k-2"})
    again = api.post("/api/v1/actions", proposal(external_id="X-2"), headers={"Idempotency-Key": "k-2"})
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert ProposedAction.objects.filter(external_id="X-2").count() == 1
