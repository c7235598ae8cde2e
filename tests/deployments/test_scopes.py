"""API key scopes (issue 16 item 5): `propose` for the agent, `outcomes` for the system of record."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from deployments.errors import InvalidInput
from deployments.models import ApiKey, AuditEvent
from deployments.services import api_key_create
from reviews.shadow.models import ShadowOutcome
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db

OUTCOME = {"external_id": "T-1", "action_type": "refund.issue", "payload": {"amount_cents": 1}}


@pytest.fixture
def shadow():
    return DeploymentFactory(stage="shadow")


def _key(deployment, *scopes: str) -> str:
    return api_key_create(deployment=deployment, scopes=scopes or ["propose"])[1]


def test_a_new_key_may_only_propose_by_default(shadow):
    key, _ = api_key_create(deployment=shadow)
    assert key.scopes == ["propose"]
    assert AuditEvent.objects.get(verb="deployments.api_key.created").data["scopes"] == ["propose"]


@pytest.mark.parametrize("scopes", [[], ["admin"], ["propose", "everything"]])
def test_unknown_or_no_scopes_are_refused(shadow, scopes):
    with pytest.raises(InvalidInput):
        api_key_create(deployment=shadow, scopes=scopes)
    assert not ApiKey.objects.exists()


def test_scopes_are_stored_once_each_in_canonical_order(shadow):
    key, _ = api_key_create(deployment=shadow, scopes=["outcomes", "propose", "outcomes"])
    assert key.scopes == ["propose", "outcomes"]


def test_a_propose_key_is_refused_outcomes_with_403(shadow):
    api = ApiClient(_key(shadow, "propose"))
    r = api.post("/api/v1/outcomes", OUTCOME)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden" and "outcomes" in r.json()["detail"]
    assert not ShadowOutcome.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/v1/actions"), ("get", "/api/v1/deployment"), ("get", "/api/v1/deployment/evidence")],
)
def test_an_outcomes_key_is_refused_the_agents_operations_with_403(shadow, method, path):
    api = ApiClient(_key(shadow, "outcomes"))
    r = api.post(path, proposal()) if method == "post" else api.get(path)
    assert r.status_code == 403, r.content
    assert "propose" in r.json()["detail"]
    assert not shadow.actions.exists()


def test_an_outcomes_key_is_refused_reading_and_reporting_on_actions(shadow):
    created = ApiClient(_key(shadow, "propose")).post("/api/v1/actions", proposal()).json()
    recorder = ApiClient(_key(shadow, "outcomes"))
    assert recorder.get(f"/api/v1/actions/{created['id']}").status_code == 403
    r = recorder.post(f"/api/v1/actions/{created['id']}/result", {"status": "executed"})
    assert r.status_code == 403


def test_each_key_does_its_own_and_the_outcome_names_its_key(shadow):
    agent, recorder = ApiClient(_key(shadow, "propose")), ApiClient(_key(shadow, "outcomes"))
    assert agent.post("/api/v1/actions", proposal(external_id="T-1")).status_code == 201
    assert recorder.post("/api/v1/outcomes", OUTCOME).status_code == 200
    outcome = ShadowOutcome.objects.get()
    assert outcome.api_key.scopes == ["outcomes"]
    event = AuditEvent.objects.get(verb="reviews.shadow.outcomes_received")
    assert event.data["api_key"] == outcome.api_key.prefix


def test_a_key_with_both_scopes_may_do_both(shadow):
    both = ApiClient(_key(shadow, "propose", "outcomes"))
    assert both.post("/api/v1/actions", proposal(external_id="T-1")).status_code == 201
    assert both.post("/api/v1/outcomes", OUTCOME).status_code == 200


def test_the_openapi_document_declares_403_on_authenticated_operations():
    schema = ApiClient(None).get("/api/v1/openapi.json").json()
    for methods in schema["paths"].values():
        for operation in methods.values():
            if operation.get("security"):
                assert "403" in operation["responses"], operation["operationId"]


def test_create_api_key_command_takes_scopes(shadow, capsys):
    call_command("create_api_key", shadow.slug, "--scope", "outcomes")
    assert ApiKey.objects.get().scopes == ["outcomes"]
    call_command("create_api_key", shadow.slug, "--scope", "propose", "--scope", "outcomes")
    assert "Warning" in capsys.readouterr().err
    call_command("create_api_key", shadow.slug)
    assert sorted(k.scopes for k in ApiKey.objects.all()) == [["outcomes"], ["propose"], ["propose", "outcomes"]]
    with pytest.raises(CommandError):
        call_command("create_api_key", shadow.slug, "--scope", "nope")


def test_the_shadow_report_names_the_reporting_key_and_warns_on_both(client, shadow):
    admin = MemberFactory(role="admin")
    client.force_login(admin.user)
    recorder_key, recorder = api_key_create(deployment=shadow, name="crm", scopes=["outcomes"])
    ApiClient(recorder).post("/api/v1/outcomes", OUTCOME)
    page = client.get(reverse("shadow:report", args=[shadow.slug])).content.decode()
    assert f"{recorder_key.prefix}…" in page and "crm" in page
    assert 'data-testid="scope-warning"' not in page
    both, _ = api_key_create(deployment=shadow, name="lazy", scopes=["propose", "outcomes"])
    page = client.get(reverse("shadow:report", args=[shadow.slug])).content.decode()
    assert 'data-testid="scope-warning"' in page and f"{both.prefix}…" in page
