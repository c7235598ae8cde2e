"""POST /api/v1/outcomes: validation, idempotency, batches, matching in both orders."""

import pytest

from deployments.models import EvidenceCount
from reviews.models import ProposedAction
from reviews.shadow.models import ShadowOutcome
from tests.conftest import proposal

pytestmark = pytest.mark.django_db


def outcome(**overrides) -> dict:
    body = {"external_id": "T-1", "action_type": "refund.issue", "payload": {"amount_cents": 1200, "order": "A-1"}}
    body.update(overrides)
    return body


def agree_count(deployment, metric="shadow.agree") -> int:
    return sum(EvidenceCount.objects.filter(deployment=deployment, metric=metric).values_list("n", flat=True))


def test_action_first_then_outcome_compares_and_get_shows_comparison(api, deployment):
    created = api.post("/api/v1/actions", proposal(external_id="T-1")).json()
    assert created["decision"] == "shadow" and created["status"] == "logged"
    r = api.post("/api/v1/outcomes", outcome(payload={"amount_cents": 1300, "order": "A-1"}))
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["created"] == 1 and body["results"][0]["matched_action_ids"] == [created["id"]]
    got = api.get(f"/api/v1/actions/{created['id']}").json()
    assert got["status"] == "compared"
    assert got["comparison"] == {
        "agree": False,
        "diff": [{"path": "amount_cents", "kind": "changed", "ai": 1200, "human": 1300}],
    }
    assert agree_count(deployment, "shadow.disagree") == 1 and agree_count(deployment) == 0


def test_outcome_first_then_action_compares(api, deployment):
    r = api.post("/api/v1/outcomes", [outcome()])
    assert r.json()["results"][0]["matched_action_ids"] == []
    created = api.post("/api/v1/actions", proposal(external_id="T-1")).json()
    got = api.get(f"/api/v1/actions/{created['id']}").json()
    assert got["status"] == "compared" and got["comparison"] == {"agree": True, "diff": []}
    assert agree_count(deployment) == 1


def test_outcomes_are_idempotent_per_external_id(api, deployment):
    api.post("/api/v1/actions", proposal(external_id="T-1"))
    first = api.post("/api/v1/outcomes", outcome()).json()
    again = api.post("/api/v1/outcomes", outcome()).json()
    other = api.post("/api/v1/outcomes", outcome(action_type="refund.deny")).json()
    assert first["created"] == 1
    assert again["results"][0]["result"] == "duplicate" and again["created"] == 0
    assert other["results"][0]["result"] == "conflict"
    stored = ShadowOutcome.objects.get(deployment=deployment, external_id="T-1")
    assert stored.action_type == "refund.issue"
    assert ShadowOutcome.objects.count() == 1
    assert agree_count(deployment) == 1  # compared once, counted once


def test_duplicates_inside_one_batch_keep_the_first(api, deployment):
    r = api.post("/api/v1/outcomes", [outcome(), outcome(), outcome(action_type="x.y")]).json()
    assert [x["result"] for x in r["results"]] == ["created", "duplicate", "conflict"]


def test_a_batch_of_1000_is_stored_and_matched(api, deployment):
    for i in range(5):
        api.post("/api/v1/actions", proposal(external_id=f"E-{i}"))
    batch = [outcome(external_id=f"E-{i}", payload={"amount_cents": 1200, "order": "A-1", "i": i}) for i in range(1000)]
    r = api.post("/api/v1/outcomes", batch)
    assert r.status_code == 200, r.content[:300]
    assert r.json()["created"] == 1000
    assert ShadowOutcome.objects.filter(deployment=deployment).count() == 1000
    assert ProposedAction.objects.filter(deployment=deployment, status="compared").count() == 5
    assert agree_count(deployment, "shadow.disagree") == 5  # the extra field "i" differs


def test_1001_outcomes_are_refused(api, deployment):
    r = api.post("/api/v1/outcomes", [outcome(external_id=f"E-{i}") for i in range(1001)])
    assert r.status_code == 422
    assert "at most 1000" in r.json()["detail"]
    assert ShadowOutcome.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action_type": "a", "payload": {}}, "external_id"),
        (outcome(payload=[1]), "payload"),
        (outcome(action_type="has space"), "action_type"),
        (outcome(decided_at="yesterday"), "decided_at"),
        (outcome(payload={"x": "nul\x00"}), "payload"),
        (outcome(extra=1), "extra"),
    ],
)
def test_invalid_outcomes_are_422_naming_the_field(api, body, field):
    r = api.post("/api/v1/outcomes", body)
    assert r.status_code == 422, r.content
    assert field in r.json()["detail"]


def test_invalid_item_in_a_list_names_its_index(api):
    r = api.post("/api/v1/outcomes", [outcome(), outcome(external_id="")])
    assert r.status_code == 422
    assert "[1].external_id" in r.json()["detail"]
    assert ShadowOutcome.objects.count() == 0


@pytest.mark.parametrize("raw", ["{not json", "[1,", "NaN", ""])
def test_bad_json_is_400(api, raw):
    r = api.post("/api/v1/outcomes", raw=raw)
    assert r.status_code in (400, 422) if raw == "" else r.status_code == 400
    assert "error" in r.json()


def test_scalar_or_empty_bodies_are_422(api):
    assert api.post("/api/v1/outcomes", 5).status_code == 422
    assert api.post("/api/v1/outcomes", []).status_code == 422


def test_outcomes_need_a_key():
    from tests.conftest import ApiClient

    assert ApiClient(None).post("/api/v1/outcomes", outcome()).status_code == 401


def test_outcomes_of_another_deployment_do_not_match(api, deployment):
    from deployments.services import api_key_create
    from tests.conftest import ApiClient
    from tests.factories import DeploymentFactory

    other = DeploymentFactory(stage="shadow")
    _, raw = api_key_create(deployment=other, scopes=["outcomes"])
    created = api.post("/api/v1/actions", proposal(external_id="T-1")).json()
    assert ApiClient(raw).post("/api/v1/outcomes", outcome()).status_code == 200
    assert api.get(f"/api/v1/actions/{created['id']}").json()["status"] == "logged"


def test_decided_at_and_by_are_stored(api, deployment):
    api.post("/api/v1/outcomes", outcome(decided_by="alice", decided_at="2026-11-01T10:00:00"))
    stored = ShadowOutcome.objects.get()
    assert stored.decided_by == "alice" and stored.decided_at.isoformat() == "2026-11-01T10:00:00+00:00"


def test_openapi_documents_outcomes(api):
    doc = api.get("/api/v1/openapi.json").json()
    body = doc["paths"]["/api/v1/outcomes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1]["maxItems"] == 1000
