"""Payload rules in CEL (issue 16 item 3): checked when saved, evaluated at ingest, only ever
raising oversight."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from deployments.models import AuditEvent, Deployment
from deployments.policy import OVERSIGHT, Route, Stage, Thresholds, route_for
from deployments.rules import (
    Effect,
    Match,
    Rule,
    payload_rules_errors,
    route_with_rules,
    rules_change_raises_only,
    rules_match,
    stricter,
)
from reviews.models import ProposedAction
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory

BIG = {"name": "big refunds", "expression": "payload.amount_cents >= 50000", "effect": "senior"}


def _doc(*rules, action_type="refund.issue"):
    return {action_type: list(rules)}


def _fields(**over):
    fields = {
        "payload": {"amount_cents": 1200},
        "action_type": "refund.issue",
        "risk_score": 0.1,
        "confidence": 0.99,
        "needs_human": False,
        "external_id": "",
        "model_version": "",
        "rationale": "",
    }
    fields.update(over)
    return fields


# -- checked when saved ------------------------------------------------------------------


def test_a_valid_document_has_no_errors():
    assert (
        payload_rules_errors(_doc(BIG, {"name": "vip", "expression": "'vip' in payload.tags", "effect": "review"}))
        == []
    )
    assert payload_rules_errors({}) == []
    exists = {"name": "odd", "expression": "payload.items.exists(i, i.sku.startsWith('X-'))", "effect": "review"}
    assert payload_rules_errors(_doc(exists)) == []


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({**BIG, "expression": "payload.amount_cents >="}, "syntax"),
        ({**BIG, "expression": "amount_cents > 5"}, "unknown field(s) amount_cents"),
        ({**BIG, "expression": "nosuch(payload.note, 'x')"}, "unknown function(s) nosuch"),
        ({**BIG, "expression": "payload.note.startswith('x')"}, "unknown function(s) startswith"),
        ({**BIG, "expression": "risk_score + 1.0"}, "must be true or false"),
        ({**BIG, "effect": "auto"}, "effect must be review, senior or refuse"),
        ({**BIG, "name": ""}, "name must be"),
        ({**BIG, "expression": ""}, "expression must be"),
        ({**BIG, "expression": "x" * 3000}, "expression must be"),
        ({**BIG, "extra": 1}, "exactly name, expression and effect"),
        ("payload.x > 1", "exactly name, expression and effect"),
        ({**BIG, "expression": "payload.a\x00 > 1"}, "NUL"),
    ],
)
def test_invalid_rules_are_refused_naming_the_problem(rule, expected):
    errors = payload_rules_errors(_doc(rule))
    assert errors and expected in errors[0], errors


def test_document_shape_and_duplicate_names_are_refused():
    assert payload_rules_errors([BIG])
    assert payload_rules_errors({"refund.issue": BIG})
    assert payload_rules_errors({"bad type!": [BIG]})
    assert "used twice" in payload_rules_errors(_doc(BIG, BIG))[0]


@pytest.mark.django_db
def test_the_model_checks_rules_when_saved():
    deployment = DeploymentFactory()
    deployment.payload_rules = _doc({**BIG, "expression": "payload.amount_cents >"})
    with pytest.raises(ValidationError) as info:
        deployment.full_clean()
    assert "payload_rules" in info.value.message_dict


# -- evaluated ---------------------------------------------------------------------------


def _rules(*docs):
    return tuple(Rule(name=d["name"], expression=d["expression"], effect=Effect(d["effect"])) for d in docs)


def test_matching_rules_are_returned_in_order():
    rules = _rules(
        BIG,
        {"name": "risky", "expression": "risk_score > 0.05", "effect": "review"},
        {"name": "never", "expression": "false", "effect": "refuse"},
    )
    matches = rules_match(rules, _fields(payload={"amount_cents": 60000}))
    assert [m.name for m in matches] == ["big refunds", "risky"]
    assert rules_match(rules, _fields(payload={"amount_cents": 10}, risk_score=0.01)) == []


def test_a_rule_that_cannot_be_evaluated_counts_as_matching():
    rules = _rules(BIG, {"name": "ok", "expression": "risk_score > 0.05", "effect": "review"})
    matches = rules_match(rules, _fields(payload={"other": 1}))
    assert [m.name for m in matches] == ["big refunds", "ok"]
    assert matches[0].error and not matches[1].error
    wrong_type = rules_match(_rules(BIG), _fields(payload={"amount_cents": "lots"}))
    assert wrong_type[0].error


def test_has_makes_a_field_optional():
    rule = _rules({**BIG, "expression": "has(payload.amount_cents) && payload.amount_cents >= 50000"})
    assert rules_match(rule, _fields(payload={})) == []


ROUTES = st.sampled_from(list(Route))
EFFECTS = st.lists(st.sampled_from(list(Effect)), max_size=6)


@given(route=ROUTES, effects=EFFECTS)
def test_a_rule_never_lowers_the_route(route, effects):
    result = route_with_rules(route, [Match(name=f"r{i}", effect=e) for i, e in enumerate(effects)])
    if route is Route.SHADOW:
        assert result is Route.SHADOW
    else:
        assert OVERSIGHT[result] >= OVERSIGHT[route]
        for e in effects:
            if e is not Effect.REFUSE:
                assert OVERSIGHT[result] >= OVERSIGHT[stricter(Route.AUTO, e)]


@given(
    stage=st.sampled_from(list(Stage)),
    risk=st.floats(0, 1),
    confidence=st.floats(0, 1),
    needs_human=st.booleans(),
    fail_closed=st.booleans(),
    effects=EFFECTS,
)
def test_the_route_is_the_stricter_of_the_policys_and_every_rules(
    stage, risk, confidence, needs_human, fail_closed, effects
):
    policy = route_for(
        stage=stage,
        thresholds=Thresholds(),
        risk=risk,
        confidence=confidence,
        needs_human=needs_human,
        fail_closed=fail_closed,
    )
    result = route_with_rules(policy, [Match(name=str(i), effect=e) for i, e in enumerate(effects)])
    if policy is Route.SHADOW:
        assert result is Route.SHADOW
        return
    wanted = max([OVERSIGHT[policy]] + [OVERSIGHT[stricter(Route.AUTO, e)] for e in effects if e is not Effect.REFUSE])
    assert OVERSIGHT[result] == wanted


def test_rule_changes_that_only_raise_oversight():
    senior = {**BIG, "effect": "senior"}
    assert rules_change_raises_only({}, _doc(senior))
    assert rules_change_raises_only(_doc({**BIG, "effect": "review"}), _doc(senior))
    assert rules_change_raises_only(_doc(senior), _doc({**BIG, "effect": "refuse"}))
    assert not rules_change_raises_only(_doc(senior), {})
    assert not rules_change_raises_only(_doc(senior), _doc({**BIG, "effect": "review"}))
    assert not rules_change_raises_only(_doc(senior), _doc({**BIG, "expression": "payload.amount_cents > 1e9"}))


# -- at ingest ---------------------------------------------------------------------------


@pytest.fixture
def ruled(db):
    deployment = DeploymentFactory(stage="autonomous")
    deployment.payload_rules = _doc(
        BIG,
        {"name": "no crypto", "expression": "payload.currency == 'BTC'", "effect": "refuse"},
        {"name": "vip", "expression": "has(payload.vip) && payload.vip", "effect": "review"},
    )
    deployment.full_clean()
    deployment.save()
    return deployment


@pytest.fixture
def agent(ruled):
    from deployments.services import api_key_create

    return ApiClient(api_key_create(deployment=ruled)[1])


def _propose(agent, **payload):
    return agent.post("/api/v1/actions", proposal(payload={"amount_cents": 1200, "currency": "EUR", **payload}))


def test_a_refuse_rule_is_a_422_naming_the_rule_and_nothing_is_stored(agent, ruled):
    r = _propose(agent, currency="BTC")
    assert r.status_code == 422, r.content
    assert r.json()["error"] == "refused_by_rule" and "no crypto" in r.json()["detail"]
    assert not ProposedAction.objects.exists()
    event = AuditEvent.objects.get(verb="reviews.action.refused_by_rule")
    assert event.data["name"] == "no crypto" and event.deployment_id == ruled.pk


def test_rules_raise_the_route_and_say_why(agent, client):
    assert _propose(agent).json()["decision"] == "execute"
    big = _propose(agent, amount_cents=90000).json()
    vip = _propose(agent, vip=True).json()
    assert ProposedAction.objects.get(pk=big["id"]).route == "senior"
    assert ProposedAction.objects.get(pk=vip["id"]).route == "review"
    event = AuditEvent.objects.get(object_id=str(big["id"]), verb="reviews.action.proposed")
    assert event.data["rules"] == [{"name": "big refunds", "effect": "senior"}]
    from tests.factories import MemberFactory

    client.force_login(MemberFactory(role="admin").user)
    page = client.get(f"/actions/{big['id']}/").content.decode()
    assert 'data-testid="route-why"' in page and "payload rule &#x27;big refunds&#x27;: senior" in page


def test_the_batch_endpoint_applies_the_rules_too(agent):
    def item(**payload):
        return proposal(payload={"amount_cents": 1200, "currency": "EUR", **payload})

    r = agent.post("/api/v1/actions/batch", {"actions": [item(), item(currency="BTC")]})
    assert r.status_code == 422 and "no crypto" in r.json()["detail"], r.content
    assert not ProposedAction.objects.exists()  # the list is stored all or none
    r = agent.post("/api/v1/actions/batch", {"actions": [item(), item(amount_cents=90000)]})
    assert r.status_code == 201, r.content
    plain, big = r.json()["actions"]
    assert plain["decision"] == "execute" and ProposedAction.objects.get(pk=big["id"]).route == "senior"
    event = AuditEvent.objects.get(object_id=str(big["id"]), verb="reviews.action.proposed")
    assert event.data["rules"] == [{"name": "big refunds", "effect": "senior"}]
    assert any(w["kind"] == "rule" for w in event.data["why"])


def test_a_missing_field_fails_closed_at_ingest(agent):
    r = agent.post("/api/v1/actions", proposal(payload={"order": "A-1"}))
    # "big refunds" and "no crypto" cannot be evaluated without their fields: refuse wins.
    assert r.status_code == 422 and "no crypto" in r.json()["detail"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_rules_change_applies_from_the_next_proposal_even_with_a_cached_key(agent, ruled):
    assert _propose(agent).json()["decision"] == "execute"
    assert _propose(agent).json()["decision"] == "execute"  # the key now comes from the cache
    Deployment.objects.filter(pk=ruled.pk).update(
        payload_rules=_doc({"name": "all", "expression": "true", "effect": "review"})
    )
    assert _propose(agent).json()["decision"] == "wait"


def test_the_why_of_thresholds_caps_and_pause(db):
    from deployments.rules import route_why

    t = Thresholds()
    common = {"thresholds": t, "needs_human": False, "breaker_reason": None}
    auto = route_why(
        deployment_stage="supervised", stage="supervised", risk=0.1, confidence=0.99, paused=False, **common
    )
    assert auto[0]["kind"] == "threshold" and "auto" in auto[0]["text"]
    low = route_why(deployment_stage="supervised", stage="supervised", risk=0.1, confidence=0.5, paused=False, **common)
    assert "confidence 0.5 ≤ auto_min_confidence 0.95" in low[0]["text"]
    capped = route_why(
        deployment_stage="autonomous", stage="approval", risk=0.1, confidence=0.99, paused=False, **common
    )
    assert [w["kind"] for w in capped] == ["cap", "stage"]
    paused = route_why(
        deployment_stage="autonomous", stage="autonomous", risk=0.1, confidence=0.99, paused=True, **common
    )
    assert paused[0]["kind"] == "pause"
    limited = route_why(
        deployment_stage="autonomous",
        stage="autonomous",
        risk=0.1,
        confidence=0.99,
        paused=False,
        limited="3/3",
        **common,
    )
    assert limited[-1]["kind"] == "blast_radius"
