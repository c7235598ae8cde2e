"""Issue 15 item 5: one canonical JSON (RFC 8785) for payload_sha256 and the proposal identity,
and the input limits (core.jsonlimits) on every API operation and in the edit form."""

import hashlib
import importlib
import json

import pytest
import rfc8785
from django.apps import apps
from trustladder_client import payload_sha256 as client_sha256

from core.jsonlimits import MAX_DEPTH, MAX_SAFE_INTEGER
from deployments.models import Member
from deployments.services import api_key_create
from reviews.canonical import canonical_json, payload_sha256
from reviews.claims import proposed_action_claim
from reviews.models import Decision, ProposedAction
from reviews.services import proposed_action_approve, proposed_action_reject
from reviews.shadow.models import ShadowOutcome
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db


def nested(depth: int, leaf=1) -> dict:
    """A payload of `depth` levels: {"a": {"a": ... leaf}} with `depth` objects."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def jcs_sha256(value) -> str:
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


@pytest.fixture
def approval_api():
    deployment = DeploymentFactory(stage="approval")
    _, raw = api_key_create(deployment=deployment)
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    return ApiClient(raw), reviewer


# -- the canonical form ------------------------------------------------------------------


def test_canonical_json_is_rfc8785():
    assert (
        canonical_json({"b": 100.0, "a": [-0.0, 1e16, 1e300, "é"]})
        == '{"a":[0,10000000000000000,1e+300,"é"],"b":100}'.encode()
    )
    assert payload_sha256({"amount": 100}) == payload_sha256({"amount": 100.0})
    # An integral double stored by PostgreSQL as an integer hashes as the double it is.
    assert payload_sha256({"x": 10**16}) == payload_sha256({"x": 1e16})
    with pytest.raises(ValueError):
        canonical_json({"x": 2**53 + 1})  # no double holds it


@pytest.mark.postgres
@pytest.mark.parametrize("number", [-0.0, 1e16, 1e300, 0.1, 2.5e-300, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])
def test_the_served_hash_is_the_jcs_hash_of_the_served_final_payload(api, number):
    created = api.post(
        "/api/v1/actions", proposal(payload={"amount_micros": number}), headers={"Idempotency-Key": "k1"}
    )
    assert created.status_code == 201, created.content
    replay = api.post("/api/v1/actions", proposal(payload={"amount_micros": number}), headers={"Idempotency-Key": "k1"})
    read = api.get(f"/api/v1/actions/{created.json()['id']}")
    for response in (created, replay, read):
        # As any client would: parse the text it received, hash the JCS of final_payload.
        body = json.loads(response.content)
        assert body["decision"] == "execute"
        assert (
            body["payload_sha256"]
            == client_sha256(body["final_payload"])
            == jcs_sha256(json.loads(response.content, parse_int=float)["final_payload"])
        )
        assert body["final_payload"]["amount_micros"] == number  # the same number, served as a double


@pytest.mark.postgres
def test_a_reviewers_edit_to_1e16_is_served_with_a_hash_the_client_accepts(approval_api):
    api, reviewer = approval_api
    action_id = api.post("/api/v1/actions", proposal(payload={"amount_micros": 5})).json()["id"]
    proposed_action_approve(action_id=action_id, actor=reviewer.user, payload={"amount_micros": 1e16})
    body = json.loads(api.get(f"/api/v1/actions/{action_id}").content)
    assert body["final_payload"] == {"amount_micros": 1e16}
    assert body["payload_sha256"] == client_sha256(body["final_payload"])
    # The served hash is the one the claim and the result are bound to (issue 15: claim first).
    claim = api.post(f"/api/v1/actions/{action_id}/claim", {"payload_sha256": body["payload_sha256"]})
    assert claim.status_code == 200, claim.content
    r = api.post(
        f"/api/v1/actions/{action_id}/result", {"status": "executed", "payload_sha256": body["payload_sha256"]}
    )
    assert r.status_code == 200, r.content


def test_rejected_stays_rejected_across_number_spellings(approval_api):
    api, reviewer = approval_api
    first = api.post("/api/v1/actions", proposal(external_id="T-1", payload={"amount": 100}))
    proposed_action_reject(action_id=first.json()["id"], actor=reviewer.user, reason="no")
    again = api.post("/api/v1/actions", proposal(external_id="T-1", payload={"amount": 100.0}))
    assert again.status_code == 409, again.content
    assert "already rejected" in again.json()["detail"]
    assert ProposedAction.objects.count() == 1


# -- refused input ------------------------------------------------------------------------

HOSTILE_PAYLOADS = [
    ('{"x": NaN}', "payload.x", 400),  # not JSON at all
    ('{"x": Infinity}', "payload.x", 400),
    ('{"x": 1e400}', "payload.x", 422),
    ('{"x": -1e400}', "payload.x", 422),
    ('{"x": "\\ud800"}', "payload.x", 422),
    ('{"x": ["ok", "\\udfff tail"]}', "payload.x[1]", 422),
    ('{"\\ud800": 1}', "payload", 422),
    ('{"x": "a\\u0000b"}', "payload.x", 422),
    ('{"x\\u0000": 1}', "payload", 422),
    (f'{{"x": {2**53}}}', "payload.x", 422),
    (f'{{"x": {-(2**53)}}}', "payload.x", 422),
    (f'{{"x": {10**400}}}', "payload.x", 422),
    (json.dumps(nested(MAX_DEPTH + 1)), "payload." + ".".join(["a"] * MAX_DEPTH), 422),
    (json.dumps(nested(899)), "payload", 422),  # too deep for the parser: the top-level field is named
    ("[" * 5000 + "]" * 5000, "payload", 422),
]


@pytest.mark.parametrize(("payload", "field", "status"), HOSTILE_PAYLOADS)
def test_hostile_payloads_are_refused_naming_the_field(api, payload, field, status):
    body = '{"action_type": "refund.issue", "risk_score": 0.1, "confidence": 0.99, "payload": ' + payload + "}"
    r = api.post("/api/v1/actions", raw=body)
    assert r.status_code == status, r.content
    if status == 422:
        assert r.json()["error"] == "validation_error"
        assert r.json()["detail"].startswith(f"{field}: "), r.json()["detail"]
    assert ProposedAction.objects.count() == 0


def test_the_deepest_payload_allowed_is_stored_and_served(api):
    deepest = nested(MAX_DEPTH)  # the payload object itself is level 1
    r = api.post("/api/v1/actions", proposal(payload=deepest))
    assert r.status_code == 201, r.content
    assert api.get(f"/api/v1/actions/{r.json()['id']}").json()["payload"] == deepest


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"risk_score": True}, "risk_score"),
        ({"risk_score": "0.9"}, "risk_score"),
        ({"confidence": "1"}, "confidence"),
        ({"confidence": False}, "confidence"),
        ({"needs_human": "yes"}, "needs_human"),
        ({"needs_human": 1}, "needs_human"),
        ({"needs_human": "true"}, "needs_human"),
        ({"external_id": 7}, "external_id"),
        ({"rationale": "\ud800"}, "rationale"),
        ({"model_version": "v\u00001"}, "model_version"),
    ],
)
def test_strict_types_no_string_or_boolean_for_a_number_or_a_boolean(api, change, field):
    r = api.post("/api/v1/actions", proposal(**change))
    assert r.status_code == 422, r.content
    assert field in r.json()["detail"]
    assert ProposedAction.objects.count() == 0


def test_an_integer_is_a_number(api):
    assert api.post("/api/v1/actions", proposal(risk_score=0, confidence=1)).status_code == 201


@pytest.mark.parametrize(("error", "field"), [("\ud800", "error"), ("a\u0000b", "error"), ("x" * 20_001, "error")])
def test_results_refuse_the_same(api, error, field):
    action_id = api.post("/api/v1/actions", proposal()).json()["id"]
    sha = ProposedAction.objects.get().payload_sha256
    r = api.post(f"/api/v1/actions/{action_id}/result", {"status": "failed", "payload_sha256": sha, "error": error})
    assert r.status_code == 422, r.content
    assert r.json()["detail"].startswith(f"{field}: ")
    assert ProposedAction.objects.get().status == "approved"


@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        ('{"external_id": "e1", "action_type": "t", "payload": {"x": 1e400}}', "payload.x"),
        ('{"external_id": "e1", "action_type": "t", "payload": {"x": "\\ud800"}}', "payload.x"),
        (
            '[{"external_id": "e1", "action_type": "t", "payload": {"x": 1}}, '
            '{"external_id": "e2", "action_type": "t", "payload": {"x": "\\u0000"}}]',
            "[1].payload.x",
        ),
        ('{"external_id": "\\udc00", "action_type": "t", "payload": {}}', "external_id"),
        ('{"external_id": "e1", "action_type": "t", "payload": ' + json.dumps(nested(MAX_DEPTH + 1)) + "}", "payload"),
    ],
)
def test_outcomes_refuse_the_same(deployment, outcome, field):
    recorder = ApiClient(api_key_create(deployment=deployment, scopes=["outcomes"])[1])  # issue 16: its own scope
    r = recorder.post("/api/v1/outcomes", raw=outcome)
    assert r.status_code == 422, r.content
    assert r.json()["detail"].startswith(field), r.json()["detail"]
    assert ShadowOutcome.objects.count() == 0


# -- the browser's edit form --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"x": 1e400}', "payload.x number is not a finite"),
        ('{"x": "\\ud800"}', "payload.x contains a lone surrogate"),
        ('{"x": "\\u0000"}', "payload.x contains a NUL character"),
        (f'{{"x": {2**60}}}', "payload.x integer outside"),
        ('{"x": NaN}', "NaN is not valid JSON"),
        (json.dumps(nested(MAX_DEPTH + 1)), "nested deeper than 64 levels"),
        ("[" * 5000 + "]" * 5000, "nested deeper than 64 levels"),
    ],
)
def test_the_edit_form_refuses_with_a_message_on_the_page(client, approval_api, text, message):
    api, reviewer = approval_api
    action_id = api.post("/api/v1/actions", proposal()).json()["id"]
    client.force_login(reviewer.user)
    r = client.post(f"/actions/{action_id}/decide", {"decision": "approve", "payload": text, "confirm": "1"})
    assert r.status_code == 422
    assert message in r.content.decode()
    assert ProposedAction.objects.get().status == "pending_review"
    assert not Decision.objects.exists()


def test_the_edit_form_takes_the_deepest_payload_and_the_pages_render_it(client, approval_api):
    api, reviewer = approval_api
    action_id = api.post("/api/v1/actions", proposal(payload=nested(MAX_DEPTH))).json()["id"]
    client.force_login(reviewer.user)
    assert client.get("/queue/").status_code == 200
    assert client.get(f"/actions/{action_id}/").status_code == 200
    edited = json.dumps(nested(MAX_DEPTH, leaf=2))
    confirm = client.post(f"/actions/{action_id}/decide", {"decision": "approve", "payload": edited})
    assert confirm.status_code == 200 and b"confirm" in confirm.content
    done = client.post(f"/actions/{action_id}/decide", {"decision": "approve", "payload": edited, "confirm": "1"})
    assert done.status_code == 302
    action = ProposedAction.objects.get()
    assert action.final_payload == nested(MAX_DEPTH, leaf=2)
    assert action.payload_sha256 == jcs_sha256(nested(MAX_DEPTH, leaf=2))
    assert client.get(f"/actions/{action_id}/").status_code == 200


# -- rows stored before ---------------------------------------------------------------------


def test_a_payload_stored_900_deep_before_the_limit_neither_breaks_nor_jams_the_queue(client, approval_api):
    api, reviewer = approval_api
    deep_id = api.post("/api/v1/actions", proposal(payload={"ok": 1})).json()["id"]
    other_id = api.post("/api/v1/actions", proposal(payload={"ok": 2})).json()["id"]
    ProposedAction.objects.filter(pk=deep_id).update(payload=nested(900))  # as the API once stored it
    client.force_login(reviewer.user)
    assert client.get(f"/actions/{deep_id}/").status_code == 200
    assert client.get("/queue/").status_code == 200
    # Deciding the other item in the Review-next flow (claimed) renders the next one: the deep one.
    proposed_action_claim(action_id=other_id, actor=reviewer.user)
    r = client.post(f"/actions/{other_id}/decide", {"decision": "reject", "reason": "no"}, follow=True)
    assert r.status_code == 200 and r.redirect_chain[-1][0] == f"/actions/{deep_id}/"
    # Approving it is refused with a message (it is outside the limits); rejecting it works.
    r = client.post(f"/actions/{deep_id}/decide", {"decision": "approve"})
    assert r.status_code == 422 and b"it can only be rejected" in r.content
    r = client.post(f"/actions/{deep_id}/decide", {"decision": "reject", "reason": "too deep"})
    assert r.status_code == 302
    assert ProposedAction.objects.get(pk=deep_id).status == "rejected"


def test_the_migration_recomputes_stored_hashes_as_jcs():
    deployment = DeploymentFactory(stage="supervised")
    _, raw = api_key_create(deployment=deployment)
    api = ApiClient(raw)
    api.post("/api/v1/actions", proposal(payload={"amount": 100.0, "ratio": 1e-7}))
    api.post("/api/v1/actions", proposal(payload={"plain": "text"}))

    def old(value) -> str:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    assert old({"amount": 100.0, "ratio": 1e-7}) != jcs_sha256({"amount": 100.0, "ratio": 1e-7})
    for action in ProposedAction.objects.all():
        ProposedAction.objects.filter(pk=action.pk).update(
            proposal_sha256=old(action.payload), payload_sha256=old(action.final_payload)
        )
    migration = importlib.import_module("reviews.migrations.0007_jcs_hashes_numbers_as_doubles")
    migration.recompute_hashes(apps, None)
    for action in ProposedAction.objects.all():
        assert action.proposal_sha256 == action.payload_sha256 == jcs_sha256(action.payload)
