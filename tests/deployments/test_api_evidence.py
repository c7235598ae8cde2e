"""GET /api/v1/deployment/evidence: the gate for the next stage, the gate page's numbers."""

import pytest
from django.test import Client

from deployments.gate import gate_evaluate
from deployments.services import api_key_create
from deployments.templatetags.ui import measure
from tests.conftest import ApiClient
from tests.deployments.test_gate import add, make

pytestmark = pytest.mark.django_db


def key_for(deployment) -> ApiClient:
    _, raw = api_key_create(deployment=deployment)
    return ApiClient(raw)


def test_shadow_evidence_shape_and_numbers():
    d = make("shadow")
    add(d, "shadow.agree", 190, "ticket.route")
    add(d, "shadow.disagree", 10, "ticket.route")
    add(d, "shadow.agree", 9, "ticket.close")
    add(d, "shadow.disagree", 1, "ticket.close")
    r = key_for(d).get("/api/v1/deployment/evidence")
    assert r.status_code == 200
    body = r.json()
    assert (body["stage"], body["next_stage"], body["outcome"]) == ("shadow", "approval", "pass")
    first = body["criteria"][0]
    assert set(first) >= {"name", "met", "value", "lower", "upper", "n", "threshold"}
    agreement = next(c for c in body["criteria"] if c["name"] == "agreement_lower")
    assert agreement["n"] == 210 and agreement["value"] == pytest.approx(199 / 210, abs=1e-6)
    # 9/10 by hand: [0.595850, 0.982124]
    close = body["by_action_type"]["ticket.close"]
    assert close == {
        "n": 10,
        "agreement": 0.9,
        "lower": pytest.approx(0.59585, abs=1e-5),
        "upper": pytest.approx(0.982124, abs=1e-5),
    }
    # The same numbers as the gate (and so the gate page).
    expected = gate_evaluate(deployment=d).as_dict()
    assert body["criteria"] == expected["criteria"]
    assert body["by_action_type"] == expected["by_action_type"]


def test_evidence_of_a_capped_action_type_and_bad_input():
    d = make("supervised", stage_caps={"refund.issue": "approval"})
    api = key_for(d)
    body = api.get("/api/v1/deployment/evidence?action_type=refund.issue").json()
    assert (body["stage"], body["next_stage"], body["action_type"]) == ("approval", "supervised", "refund.issue")
    assert api.get("/api/v1/deployment/evidence?action_type=" + "x" * 101).status_code == 422
    assert ApiClient(None).get("/api/v1/deployment/evidence").status_code == 401


def test_evidence_matches_the_gate_page(admin):
    d = make("approval")
    add(d, "decision.approve", 300)
    add(d, "decision.reject", 7)
    body = key_for(d).get("/api/v1/deployment/evidence").json()
    page = Client()
    page.force_login(admin.user)
    html = page.get(f"/deployments/{d.slug}/gate/").content.decode()
    unchanged = next(c for c in body["criteria"] if c["name"] == "approved_unchanged_lower")
    assert unchanged["n"] == 307
    # The page shows the API's numbers for people (percentages, issue 19).
    assert measure(unchanged, "lower") in html and measure(unchanged, "upper") in html
    assert "%" in measure(unchanged, "lower")
