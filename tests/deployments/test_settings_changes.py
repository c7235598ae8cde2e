"""Governed settings (issue 16 item 1): raising oversight applies at once, lowering it needs a
second admin."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Deployment, Member, SettingsChangeRequest
from deployments.settings_changes import (
    GOVERNED,
    deployment_settings_change,
    lowering_fields,
    settings_change_approve,
    settings_change_reject,
)
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db

RULE = {"name": "big", "expression": "payload.amount_cents >= 50000", "effect": "senior"}


@pytest.fixture
def dep(db):
    return DeploymentFactory(stage="supervised", auto_max_risk=0.3, auto_min_confidence=0.95)


@pytest.fixture
def alice(db):
    return MemberFactory(role=Member.Role.ADMIN).user


@pytest.fixture
def bob(db):
    return MemberFactory(role=Member.Role.ADMIN).user


def change(dep, actor, reason="because", **changes):
    return deployment_settings_change(deployment_id=dep.pk, actor=actor, changes=changes, reason=reason)


def test_a_change_that_only_raises_oversight_applies_at_once_audited(dep, alice):
    outcome = change(dep, alice, auto_max_risk=0.2, auto_min_confidence=0.97, audit_sample_rate=0.5)
    assert outcome.applied and outcome.request is None
    dep.refresh_from_db()
    assert (dep.auto_max_risk, dep.auto_min_confidence, dep.audit_sample_rate) == (0.2, 0.97, 0.5)
    event = AuditEvent.objects.get(verb="deployments.settings.changed")
    assert event.data["before"]["auto_max_risk"] == 0.3 and event.data["after"]["auto_max_risk"] == 0.2
    assert event.actor == alice and event.reason == "because"


def test_a_change_that_lowers_oversight_is_a_request_until_another_admin_approves(dep, alice, bob):
    outcome = change(dep, alice, auto_max_risk=0.5)
    assert not outcome.applied
    request = outcome.request
    assert request.before == {"auto_max_risk": 0.3} and request.after == {"auto_max_risk": 0.5}
    assert request.lowering == ["auto_max_risk"]
    dep.refresh_from_db()
    assert dep.auto_max_risk == 0.3
    assert AuditEvent.objects.filter(verb="deployments.settings.change_requested").exists()
    with pytest.raises(NotAllowed, match="four-eyes"):
        settings_change_approve(request_id=request.pk, actor=alice, reason="mine")
    with pytest.raises(InvalidInput, match="reason"):
        settings_change_approve(request_id=request.pk, actor=bob, reason=" ")
    settings_change_approve(request_id=request.pk, actor=bob, reason="looked at the replay")
    dep.refresh_from_db()
    request.refresh_from_db()
    assert dep.auto_max_risk == 0.5 and request.status == "approved" and request.decided_by == bob
    assert AuditEvent.objects.get(verb="deployments.settings.change_approved").data["requested_by"] == alice.username
    with pytest.raises(InvalidTransition):  # safe to repeat: decided once
        settings_change_approve(request_id=request.pk, actor=bob, reason="again")


def test_a_rejected_request_changes_nothing(dep, alice):
    request = change(dep, alice, auto_min_confidence=0.5).request
    settings_change_reject(request_id=request.pk, actor=alice, reason="withdrawn")
    dep.refresh_from_db()
    assert dep.auto_min_confidence == 0.95
    assert SettingsChangeRequest.objects.get().status == "rejected"


def test_one_open_request_per_deployment(dep, alice, bob):
    change(dep, alice, auto_max_risk=0.5)
    with pytest.raises(InvalidTransition, match="already open"):
        change(dep, bob, audit_sample_rate=0.0)
    # Raising changes still apply meanwhile.
    assert change(dep, bob, review_sla=timedelta(hours=48)).applied
    with pytest.raises(IntegrityError), transaction.atomic():
        SettingsChangeRequest.objects.create(deployment=dep, before={}, after={}, requested_by=bob, request_reason="x")


def test_a_request_whose_settings_moved_meanwhile_cannot_be_approved(dep, alice, bob):
    request = change(dep, alice, auto_max_risk=0.5).request
    change(dep, bob, auto_max_risk=0.1)  # raises: applies at once
    with pytest.raises(InvalidTransition, match="changed since"):
        settings_change_approve(request_id=request.pk, actor=bob, reason="ok")


def test_only_admins_change_settings(dep):
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[dep]).user
    with pytest.raises(NotAllowed):
        change(dep, reviewer, auto_max_risk=0.1)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"auto_max_risk": 0.29}, []),
        ({"auto_max_risk": 0.31}, ["auto_max_risk"]),
        ({"review_max_risk": 0.6}, []),
        ({"review_max_risk": 0.8}, ["review_max_risk"]),
        ({"audit_sample_rate": 0.01}, ["audit_sample_rate"]),
        ({"review_sla": timedelta(hours=1)}, ["review_sla"]),
        ({"blast_max_auto": 10}, []),
        ({"blast_window": timedelta(hours=2)}, []),
        ({"gate_criteria": {"supervised": {"min_decisions": 900}}}, []),
        ({"gate_criteria": {"supervised": {"min_decisions": 10}}}, ["gate_criteria"]),
        ({"gate_criteria": {"autonomous": {"max_failure_upper": 0.001}}}, []),
        ({"gate_criteria": {"autonomous": {"max_failure_upper": 0.5}}}, ["gate_criteria"]),
        ({"breaker_settings": {"max_failure_rate": 0.01}}, []),
        ({"breaker_settings": {"max_failure_rate": 0.5}}, ["breaker_settings"]),
        ({"breaker_settings": {"window_minutes": 10}}, ["breaker_settings"]),
        ({"payload_rules": {"refund.issue": [RULE]}}, []),
        ({"stage_caps": {"refund.issue": "approval"}}, []),
    ],
)
def test_the_direction_of_each_setting(dep, changes, expected):
    assert lowering_fields(dep, changes) == expected


def test_limits_and_rules_removed_lower_oversight(dep, alice):
    assert change(dep, alice, blast_max_auto=5, payload_rules={"refund.issue": [RULE]}).applied
    dep.refresh_from_db()
    assert lowering_fields(dep, {"blast_max_auto": None}) == ["blast_max_auto"]
    assert lowering_fields(dep, {"blast_max_auto": 6}) == ["blast_max_auto"]
    assert lowering_fields(dep, {"payload_rules": {}}) == ["payload_rules"]
    assert lowering_fields(dep, {"payload_rules": {"refund.issue": [{**RULE, "effect": "review"}]}}) == [
        "payload_rules"
    ]


def test_caps_are_added_at_once_and_lifted_only_by_promotion(dep, alice):
    assert change(dep, alice, stage_caps={"refund.issue": "approval"}).applied
    dep.refresh_from_db()
    assert dep.stage_caps == {"refund.issue": "approval"} and "refund.issue" in dep.stage_caps_entered_at
    assert change(dep, alice, stage_caps={"refund.issue": "shadow"}).applied  # lowered further
    with pytest.raises(InvalidInput, match="promotion"):
        change(dep, alice, stage_caps={"refund.issue": "approval"})
    with pytest.raises(InvalidInput, match="promotion"):
        change(dep, alice, stage_caps={})
    with pytest.raises(InvalidInput, match="below the deployment"):
        change(dep, alice, stage_caps={"refund.issue": "shadow", "other": "autonomous"})


@pytest.mark.parametrize(
    "changes",
    [
        {"auto_max_risk": 2.0},
        {"auto_max_risk": 0.9},  # above review_max_risk
        {"auto_max_risk": float("nan")},
        {"gate_criteria": {"supervised": {"min_decisions": -1}}},
        {"payload_rules": {"refund.issue": [{**RULE, "expression": "payload >"}]}},
        {"breaker_settings": {"nope": 1}},
        {"blast_window": timedelta(0)},
        {"stage": "autonomous"},
    ],
)
def test_invalid_changes_are_refused_and_nothing_is_stored(dep, alice, changes):
    with pytest.raises(InvalidInput):
        change(dep, alice, **changes)
    assert not SettingsChangeRequest.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="deployments.settings").exists()


def test_nothing_changed_is_refused(dep, alice):
    with pytest.raises(InvalidInput, match="nothing changed"):
        change(dep, alice, auto_max_risk=0.3)


# -- no sequence of changes by one admin lowers oversight --------------------------------

CANDIDATES = {
    "auto_max_risk": st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7]),
    "auto_min_confidence": st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]),
    "review_max_risk": st.sampled_from([0.7, 0.8, 1.0]),
    "audit_sample_rate": st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    "review_sla": st.sampled_from([timedelta(hours=h) for h in (1, 24, 72)]),
    "blast_max_auto": st.sampled_from([None, 1, 10, 100]),
    "blast_window": st.sampled_from([timedelta(minutes=m) for m in (10, 60, 600)]),
    "gate_criteria": st.sampled_from(
        [{}, {"supervised": {"min_decisions": 100}}, {"supervised": {"min_decisions": 900}}]
    ),
    "breaker_settings": st.sampled_from([{}, {"max_failure_rate": 0.01}, {"max_failure_rate": 0.5}]),
    "payload_rules": st.sampled_from([{}, {"refund.issue": [RULE]}, {"refund.issue": [{**RULE, "effect": "review"}]}]),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_sequence_of_changes_by_one_admin_lowers_oversight(data):
    with transaction.atomic():
        dep = DeploymentFactory(stage="supervised")
        admin = MemberFactory(role=Member.Role.ADMIN).user
        start = Deployment.objects.get(pk=dep.pk)
        for _ in range(data.draw(st.integers(1, 8))):
            field = data.draw(st.sampled_from(sorted(CANDIDATES)))
            value = data.draw(CANDIDATES[field])
            try:
                outcome = deployment_settings_change(
                    deployment_id=dep.pk, actor=admin, changes={field: value}, reason="r"
                )
            except (InvalidInput, InvalidTransition):
                continue
            if outcome.request is not None:
                with pytest.raises(NotAllowed):
                    settings_change_approve(request_id=outcome.request.pk, actor=admin, reason="r")
                if data.draw(st.booleans()):
                    settings_change_reject(request_id=outcome.request.pk, actor=admin, reason="r")
        end = Deployment.objects.get(pk=dep.pk)
        assert lowering_fields(start, {f: getattr(end, f) for f in GOVERNED}) == []
        transaction.set_rollback(True)


# -- pages -------------------------------------------------------------------------------


def _client(user):
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


def _form(dep, **over):
    """The settings form as the page renders it, with `over` changed."""
    from deployments.settings_views import SettingsForm

    form = SettingsForm(instance=dep)
    data = {}
    for name in form.fields:
        value = form[name].value()  # as the page renders it (JSON as text)
        if value is not None:
            data[name] = value
    data["reason"] = "tuning"
    data.update(over)
    return data


def test_the_settings_page_is_for_admins_with_fields_named_as_the_model(dep, alice):
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[dep]).user
    assert _client(reviewer).get(f"/deployments/{dep.slug}/settings/").status_code == 403
    page = _client(alice).get(f"/deployments/{dep.slug}/settings/").content.decode()
    for name in GOVERNED:
        assert f'name="{name}"' in page, name


def test_the_calibration_candidate_link_prefills_and_replays_nothing_saved(dep, alice):
    url = f"/deployments/{dep.slug}/settings/"
    page = _client(alice).get(url, {"auto_min_confidence": "0.97"}).content.decode()
    assert 'id="simulation"' in page and 'value="0.97"' in page
    for junk in ("NaN", "1e400", "-0.5", "lots"):
        page = _client(alice).get(url, {"auto_min_confidence": junk}).content.decode()
        assert 'id="simulation"' not in page and 'value="0.95"' in page, junk
    dep.refresh_from_db()
    assert dep.auto_min_confidence == 0.95 and not SettingsChangeRequest.objects.exists()


def test_posting_a_raising_change_applies_it(dep, alice):
    r = _client(alice).post(f"/deployments/{dep.slug}/settings/", _form(dep, auto_max_risk="0.1"))
    assert r.status_code == 302
    dep.refresh_from_db()
    assert dep.auto_max_risk == 0.1


def test_posting_a_lowering_change_opens_a_request_a_second_admin_approves(dep, alice, bob):
    r = _client(alice).post(f"/deployments/{dep.slug}/settings/", _form(dep, auto_min_confidence="0.5"))
    request = SettingsChangeRequest.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/deployments/{dep.slug}/changes/{request.pk}/"
    page = _client(bob).get(r["Location"]).content.decode()
    assert "auto_min_confidence" in page and "may lower oversight" in page and "Approve" in page
    mine = _client(alice).get(r["Location"]).content.decode()
    assert "Four-eyes" in mine
    assert _client(bob).post(f"{r['Location']}approve", {"reason": ""}).status_code == 302
    assert SettingsChangeRequest.objects.get().is_open  # no reason: nothing decided
    _client(bob).post(f"{r['Location']}approve", {"reason": "fine"})
    dep.refresh_from_db()
    assert dep.auto_min_confidence == 0.5
    assert _client(alice).get(f"{r['Location']}approve").status_code == 405


@pytest.mark.parametrize(
    "over",
    [
        {"auto_max_risk": "NaN"},
        {"auto_max_risk": "1e400"},
        {"auto_max_risk": "lots"},
        {"review_sla": "99999999999 00:00:00"},
        {"payload_rules": '{"refund.issue": [{"name": "x", "expression": "payload.a > NaN", "effect": "review"}]}'},
        {"gate_criteria": '{"supervised": {"min_decisions": NaN}}'},
        {"gate_criteria": '{"supervised": {"min_decisions": 1e400}}'},
        {"breaker_settings": '{"max_failure_rate": "0.1"}'},
        {"payload_rules": '{"a": "\\u0000"}'},
        {"payload_rules": '{"a": "\\ud800"}'},
        {"payload_rules": "[" * 900 + "]" * 900},
        {"stage_caps": "not json"},
        {"stage_caps": '"a string"'},
        {"gate_criteria": "[1, 2]"},
        {"blast_max_auto": "-1"},
    ],
)
def test_hostile_input_is_a_message_not_a_500_and_nothing_is_stored(dep, alice, over):
    r = _client(alice).post(f"/deployments/{dep.slug}/settings/", _form(dep, **over))
    assert r.status_code in (422, 302), r.status_code
    assert not SettingsChangeRequest.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="deployments.settings").exists()
    before = Deployment.objects.get(pk=dep.pk)
    assert before.auto_max_risk == 0.3 and before.payload_rules == {} and before.gate_criteria == {}
