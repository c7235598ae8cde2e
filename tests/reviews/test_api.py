"""The agent API of SPEC §5: shapes, codes, auth, idempotency and bad input."""

import json

import pytest

from deployments.services import api_key_create, api_key_revoke
from reviews.canonical import payload_sha256
from reviews.models import ProposedAction
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db

FIELDS = {
    "id",
    "deployment",
    "action_type",
    "external_id",
    "status",
    "route",
    "stage",
    "decision",
    "payload",
    "final_payload",
    "payload_sha256",
    "risk_score",
    "confidence",
    "reason",
    "created_at",
    "decided_at",
}


def test_propose_auto_in_supervised(api, deployment):
    r = api.post("/api/v1/actions", proposal())
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) >= FIELDS
    assert (body["route"], body["decision"], body["status"], body["stage"]) == (
        "auto",
        "execute",
        "approved",
        "supervised",
    )
    assert body["deployment"] == deployment.slug
    assert body["payload_sha256"] == payload_sha256(body["final_payload"])


@pytest.mark.parametrize("overrides", [{}, {"risk_score": 0.5}, {"risk_score": 0.9, "external_id": "E-1"}])
def test_the_201_is_exactly_the_declared_action_shape(api, overrides):
    """The POST answer skips django-ninja's response validation: it must be ActionOut exactly."""
    from reviews.api import ActionOut

    body = api.post("/api/v1/actions", proposal(**overrides)).json()
    assert set(body) == set(ActionOut.model_fields)
    assert ActionOut.model_validate(body).model_dump(mode="json") == body


def test_propose_wait_and_get_back(api):
    r = api.post("/api/v1/actions", proposal(risk_score=0.5, external_id="T-9", rationale="because"))
    assert r.json()["decision"] == "wait"
    got = api.get(f"/api/v1/actions/{r.json()['id']}")
    assert got.status_code == 200
    assert got.json()["id"] == r.json()["id"] and got.json()["external_id"] == "T-9"
    assert got.json()["final_payload"] is None


def test_shadow_answers_shadow():
    deployment = DeploymentFactory(stage="shadow")
    _, raw = api_key_create(deployment=deployment)
    body = ApiClient(raw).post("/api/v1/actions", proposal()).json()
    assert (body["route"], body["decision"], body["status"]) == ("shadow", "shadow", "logged")
    assert "comparison" in body


def test_sha256_is_of_canonical_json(api):
    payload = {"b": [1, 2], "a": "é", "c": {"z": 1, "y": None}}
    body = api.post("/api/v1/actions", proposal(payload=payload)).json()
    canonical = '{"a":"é","b":[1,2],"c":{"y":null,"z":1}}'.encode()
    import hashlib

    assert body["payload_sha256"] == hashlib.sha256(canonical).hexdigest()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"risk_score": 2}, "risk_score"),
        ({"risk_score": -0.1}, "risk_score"),
        ({"confidence": 1.01}, "confidence"),
        ({"risk_score": "high"}, "risk_score"),
        ({"payload": [1, 2]}, "payload"),
        ({"payload": "text"}, "payload"),
        ({"action_type": ""}, "action_type"),
        ({"action_type": "has spaces <b>"}, "action_type"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"payload": {"note": "nul\u0000byte"}}, "payload"),
        ({"external_id": "x" * 201}, "external_id"),
    ],
)
def test_bad_fields_are_422_naming_the_field(api, change, field):
    r = api.post("/api/v1/actions", proposal(**change))
    assert r.status_code == 422, r.content
    body = r.json()
    assert body["error"] == "validation_error"
    assert field in body["detail"]
    assert ProposedAction.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost:8000/hook",
        "https://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",  # 127.0.0.1 written as one number
    ],
)
def test_a_callback_url_to_a_non_public_host_is_422(api, settings, url):
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = False
    r = api.post("/api/v1/actions", proposal(callback_url=url))
    assert r.status_code == 422, r.content
    body = r.json()
    assert body["error"] == "validation_error" and body["detail"].startswith("callback_url: ")
    assert "public" in body["detail"]
    assert ProposedAction.objects.count() == 0


@pytest.mark.parametrize(
    ("allow_private", "url"),
    [
        (False, "https://hooks.example.com/trustladder"),  # a name: checked when the worker connects
        (False, "https://8.8.8.8/hook"),
        (True, "http://127.0.0.1:8000/hook"),
        (True, "http://localhost:8000/hook"),
    ],
)
def test_a_callback_url_the_worker_may_reach_is_accepted(api, settings, allow_private, url):
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = allow_private
    r = api.post("/api/v1/actions", proposal(callback_url=url))
    assert r.status_code == 201, r.content
    assert ProposedAction.objects.get().callback_url == url


@pytest.mark.parametrize("missing", ["action_type", "payload", "risk_score", "confidence"])
def test_missing_fields_are_422(api, missing):
    body = proposal()
    del body[missing]
    r = api.post("/api/v1/actions", body)
    assert r.status_code == 422 and missing in r.json()["detail"]


@pytest.mark.parametrize("raw", ["{not json", '{"risk_score": NaN}', "", b"\xff\xfe", "[" * 5000])
def test_malformed_json_is_400(api, raw):
    r = api.post("/api/v1/actions", raw=raw)
    assert r.status_code in (400, 422), r.content
    assert "error" in r.json()


def test_malformed_json_is_400_exactly(api):
    r = api.post("/api/v1/actions", raw="{not json")
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_body_over_256_kib_is_413(api):
    big = proposal(payload={"blob": "x" * (256 * 1024)})
    r = api.post("/api/v1/actions", big)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    assert ProposedAction.objects.count() == 0


@pytest.mark.parametrize("key", [None, "tl_unknown", "garbage", "Basic abc"])
def test_missing_or_unknown_key_is_401(db, key):
    r = ApiClient(key).post("/api/v1/actions", proposal())
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert r["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401(deployment):
    key, raw = api_key_create(deployment=deployment)
    api_key_revoke(key_id=key.pk)
    assert ApiClient(raw).get("/api/v1/deployment").status_code == 401


def test_other_deployments_action_is_404(api):
    other = DeploymentFactory()
    _, raw = api_key_create(deployment=other)
    action_id = ApiClient(raw).post("/api/v1/actions", proposal()).json()["id"]
    r = api.get(f"/api/v1/actions/{action_id}")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = api.post(f"/api/v1/actions/{action_id}/result", {"status": "executed", "payload_sha256": "0" * 64})
    assert r.status_code == 404


@pytest.mark.parametrize("action_id", ["99999999", "99999999999999999999999", "abc", "-1"])
def test_unknown_or_odd_ids_are_4xx(api, action_id):
    assert api.get(f"/api/v1/actions/{action_id}").status_code in (404, 422)


def test_result_with_wrong_hash_is_409_and_right_hash_executes(api):
    created = api.post("/api/v1/actions", proposal()).json()
    url = f"/api/v1/actions/{created['id']}/result"
    assert api.post(f"/api/v1/actions/{created['id']}/claim", {}).status_code == 200
    wrong = api.post(url, {"status": "executed", "payload_sha256": "a" * 64})
    assert wrong.status_code == 409 and wrong.json()["error"] == "conflict"
    ok = api.post(url, {"status": "executed", "payload_sha256": created["payload_sha256"]})
    assert ok.status_code == 200 and ok.json()["status"] == "executed"


def test_result_before_approval_is_409(api):
    created = api.post("/api/v1/actions", proposal(risk_score=0.5)).json()
    r = api.post(
        f"/api/v1/actions/{created['id']}/result",
        {"status": "executed", "payload_sha256": payload_sha256(created["payload"])},
    )
    assert r.status_code == 409 and r.json()["error"] == "invalid_transition"


def test_result_with_bad_status_is_422(api):
    created = api.post("/api/v1/actions", proposal()).json()
    r = api.post(f"/api/v1/actions/{created['id']}/result", {"status": "done", "payload_sha256": "a" * 64})
    assert r.status_code == 422 and "status" in r.json()["detail"]


def test_idempotency_replay_mismatch_and_scope(api, deployment):
    body = proposal()
    first = api.post("/api/v1/actions", body, headers={"Idempotency-Key": "k-1"})
    again = api.post("/api/v1/actions", body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert again.json() == first.json()
    other = api.post("/api/v1/actions", proposal(risk_score=0.2), headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert ProposedAction.objects.count() == 1
    # Keys are per deployment: the same key elsewhere is a different request.
    _, raw = api_key_create(deployment=DeploymentFactory())
    assert ApiClient(raw).post("/api/v1/actions", body, headers={"Idempotency-Key": "k-1"}).status_code == 201
    assert ProposedAction.objects.count() == 2


def test_a_key_sent_again_after_its_retention_is_422_not_500(api, deployment):
    """The claim is purged after IDEMPOTENCY_KEY_TTL; the action keeps the key for good."""
    from reviews.models import IdempotencyRecord

    first = api.post("/api/v1/actions", proposal(), headers={"Idempotency-Key": "k-old"})
    assert first.status_code == 201
    IdempotencyRecord.objects.filter(key="k-old").delete()  # as idempotency_purge does
    again = api.post("/api/v1/actions", proposal(), headers={"Idempotency-Key": "k-old"})
    assert again.status_code == 422, again.content
    assert again.json()["error"] == "idempotency_key_reused"
    assert ProposedAction.objects.filter(idempotency_key="k-old").count() == 1
    # The failed request gave its claim back: the key is not left in flight.
    assert not IdempotencyRecord.objects.filter(key="k-old").exists()


def test_idempotency_in_flight_is_409(api, deployment):
    from reviews.idempotency import idempotency_claim

    body = proposal()
    fields = {
        **body,
        "external_id": "",
        "model_version": "",
        "rationale": "",
        "needs_human": False,
        "callback_url": None,
    }
    idempotency_claim(deployment=deployment, key="k-2", fingerprint=payload_sha256(fields))
    r = api.post("/api/v1/actions", body, headers={"Idempotency-Key": "k-2"})
    assert r.status_code == 409 and r.json()["error"] == "idempotency_key_in_flight"


def test_failed_request_releases_its_idempotency_key(api, deployment, reviewer):
    deployment.stage = "approval"
    deployment.save()
    from reviews.services import proposed_action_reject

    first = api.post("/api/v1/actions", proposal(external_id="E"), headers={"Idempotency-Key": "a"}).json()
    proposed_action_reject(action_id=first["id"], actor=reviewer.user, reason="no")
    r1 = api.post("/api/v1/actions", proposal(external_id="E"), headers={"Idempotency-Key": "b"})
    r2 = api.post("/api/v1/actions", proposal(external_id="E"), headers={"Idempotency-Key": "b"})
    assert r1.status_code == r2.status_code == 409  # rejected stays rejected, and the key is not stuck


def test_deployment_endpoint(api, deployment):
    r = api.get("/api/v1/deployment")
    assert r.status_code == 200
    body = r.json()
    assert body["slug"] == deployment.slug and body["stage"] == "supervised" and body["next_stage"] == "autonomous"
    assert body["thresholds"] == {
        "auto_max_risk": 0.3,
        "auto_min_confidence": 0.95,
        "review_max_risk": 0.7,
        "audit_sample_rate": 0.05,
    }
    assert body["paused"] is False and body["breaker_tripped"] is False


def test_openapi_and_docs_are_served(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert {
        "/api/v1/actions",
        "/api/v1/actions/{action_id}",
        "/api/v1/actions/{action_id}/result",
        "/api/v1/deployment",
    } <= set(paths)
    assert client.get("/api/v1/docs").status_code == 200


def test_key_is_stored_hashed(deployment):
    key, raw = api_key_create(deployment=deployment)
    assert raw not in json.dumps(list(type(key).objects.values()), default=str)
    assert raw.startswith(key.prefix)
