"""The simulator (issue 16 item 2): pre-aggregated cells written with each decision, replayed
under candidate thresholds."""

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import Deployment, Member, ReplayCount, SettingsChangeRequest
from deployments.policy import Thresholds
from deployments.services import api_key_create
from deployments.settings_changes import deployment_settings_change
from deployments.simulator import confidence_band, replay_count_add, risk_band, simulate
from deployments.stats import wilson_interval
from reviews.execution import proposed_action_execution_claim, proposed_action_report_result
from reviews.services import (
    Proposal,
    proposed_action_approve,
    proposed_action_create,
    proposed_action_escalate,
    proposed_action_reject,
)
from tests.conftest import ApiClient
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dep(db):
    return DeploymentFactory(stage="supervised", auto_max_risk=0.3, auto_min_confidence=0.95, review_max_risk=0.7)


def test_bands_put_thresholds_on_their_edges():
    assert [risk_band(r) for r in (0.0, 0.049, 0.05, 0.299, 0.3, 1.0)] == [0, 0, 1, 5, 6, 19]
    # (k/100, (k+1)/100]: 0.95 itself is in band 94, so "confidence > 0.95" is band ≥ 95.
    assert [confidence_band(c) for c in (0.0, 0.01, 0.011, 0.95, 0.951, 1.0)] == [0, 0, 1, 94, 95, 99]


def test_each_decision_writes_its_cell_in_its_transaction(dep):
    reviewer = MemberFactory(role=Member.Role.SENIOR, deployments=[dep]).user
    a, b, c = (ProposedActionFactory(deployment=dep, risk_score=0.42, confidence=0.97) for _ in range(3))
    proposed_action_approve(action_id=a.pk, actor=reviewer)
    proposed_action_approve(action_id=b.pk, actor=reviewer, payload={"amount_cents": 1})
    proposed_action_escalate(action_id=c.pk, actor=reviewer, reason="unsure")
    proposed_action_reject(action_id=c.pk, actor=reviewer, reason="no")
    cells = {
        (r.outcome, r.risk_band, r.confidence_band): r.n for r in ReplayCount.objects.filter(deployment=dep).order_by()
    }
    assert cells == {("approve", 8, 96): 1, ("edit", 8, 96): 1, ("escalate", 8, 96): 1, ("reject", 8, 96): 1}


def _cells(dep, *, risk, confidence, **outcomes):
    for outcome, n in outcomes.items():
        for _ in range(n):
            replay_count_add(
                deployment_id=dep.pk,
                action_type="refund.issue",
                risk=risk,
                confidence=confidence,
                needs_human=False,
                outcome=outcome,
                seconds=60.0,
            )


def test_a_looser_candidate_shows_what_would_newly_auto_execute_and_how_often_people_changed_it(dep):
    _cells(dep, risk=0.35, confidence=0.99, approve=16, edit=3, reject=1)  # review now, auto at 0.4
    _cells(dep, risk=0.10, confidence=0.99, auto=50)  # auto either way
    _cells(dep, risk=0.80, confidence=0.99, approve=5)  # senior either way
    result = simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.4, auto_min_confidence=0.95))
    overall = result["overall"]
    assert overall["routes"]["current"] == {"auto": 50, "review": 20, "senior": 5, "refused": 0}
    assert overall["routes"]["candidate"] == {"auto": 70, "review": 0, "senior": 5, "refused": 0}
    newly = overall["newly_auto"]
    assert (newly["n"], newly["changed"], newly["rejected"], newly["escalated"]) == (20, 3, 1, 0)
    assert newly["rate"] == pytest.approx(0.2)
    assert newly["wilson_upper"] == pytest.approx(wilson_interval(4, 20)[1])
    assert overall["reviewer_hours_freed"] == pytest.approx(20 * 60 / 3600, abs=0.01)
    assert overall["reviewer_hours_costed"] == 0
    assert result["by_action_type"]["refund.issue"]["newly_auto"]["n"] == 20


def test_a_stricter_candidate_costs_reviewer_hours_for_what_auto_executed(dep):
    _cells(dep, risk=0.10, confidence=0.99, auto=30)
    _cells(dep, risk=0.35, confidence=0.99, approve=10)  # mean time to decide: 60 s
    result = simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.05))
    overall = result["overall"]
    assert overall["routes"]["candidate"]["auto"] == 0 and overall["routes"]["candidate"]["review"] == 40
    assert overall["newly_auto"]["n"] == 0 and overall["newly_auto"]["rate"] is None
    assert overall["reviewer_hours_costed"] == pytest.approx(30 * 60 / 3600, abs=0.01)


def test_only_the_window_counts(dep):
    old = timezone.now().date() - timedelta(days=40)
    replay_count_add(
        deployment_id=dep.pk, action_type="t", risk=0.35, confidence=0.99, needs_human=False, outcome="approve", day=old
    )
    assert simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.4))["overall"]["newly_auto"]["n"] == 0
    assert simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.4), days=60)["overall"]["newly_auto"]["n"] == 1


def test_the_simulation_is_one_query_whatever_the_history(dep):
    _cells(dep, risk=0.35, confidence=0.99, approve=5)
    with CaptureQueriesContext(connection) as queries:
        simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.4))
    assert len(queries) == 1


def test_the_api_answers_with_the_replay(dep):
    _cells(dep, risk=0.35, confidence=0.99, approve=4, edit=1)
    agent = ApiClient(api_key_create(deployment=dep)[1])
    r = agent.get("/api/v1/deployment/simulate?auto_max_risk=0.4&days=7")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["days"] == 7 and body["candidate"]["auto_max_risk"] == 0.4
    assert body["current"]["auto_min_confidence"] == 0.95 and body["overall"]["newly_auto"]["changed"] == 1
    for bad in ("auto_max_risk=nan", "auto_max_risk=2", "auto_max_risk=lots", "days=0", "days=100000"):
        assert agent.get(f"/api/v1/deployment/simulate?{bad}").status_code == 422, bad
    recorder = ApiClient(api_key_create(deployment=dep, scopes=["outcomes"])[1])
    assert recorder.get("/api/v1/deployment/simulate").status_code == 403


def test_a_change_request_freezes_the_replay_and_the_page_shows_it(dep, client):
    _cells(dep, risk=0.35, confidence=0.99, approve=9, reject=1)
    alice = MemberFactory(role=Member.Role.ADMIN).user
    outcome = deployment_settings_change(deployment_id=dep.pk, actor=alice, changes={"auto_max_risk": 0.4}, reason="r")
    request = SettingsChangeRequest.objects.get(pk=outcome.request.pk)
    assert request.simulation["overall"]["newly_auto"]["rejected"] == 1
    client.force_login(alice)
    page = client.get(f"/deployments/{dep.slug}/changes/{request.pk}/").content.decode()
    assert 'data-testid="simulation"' in page and "0 / 1 / 0" in page


def test_the_settings_page_previews_the_replay_without_saving(dep, client):
    from tests.deployments.test_settings_changes import _form

    _cells(dep, risk=0.35, confidence=0.99, approve=3)
    alice = MemberFactory(role=Member.Role.ADMIN).user
    client.force_login(alice)
    r = client.post(
        f"/deployments/{dep.slug}/settings/", {**_form(dep, auto_max_risk="0.4", reason=""), "preview": "1"}
    )
    assert r.status_code == 200 and 'data-testid="simulation"' in r.content.decode()
    dep.refresh_from_db()
    assert dep.auto_max_risk == 0.3 and not SettingsChangeRequest.objects.exists()


def test_past_days_fold_into_one_row_per_cell_and_the_replay_is_unchanged(dep):
    from deployments.simulator import replay_counts_fold

    yesterday = timezone.now().date() - timedelta(days=1)
    for shard in (1, 2, 3):
        ReplayCount.objects.create(
            deployment=dep, day=yesterday, action_type="t", risk_band=7, confidence_band=99,
            needs_human=False, outcome="edit", shard=shard, n=2, seconds=30.0,
        )  # fmt: skip
    before = simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.4))
    assert replay_counts_fold(before=timezone.now().date()) == 3
    assert ReplayCount.objects.filter(deployment=dep).count() == 1
    assert simulate(deployment=dep, candidate=Thresholds(auto_max_risk=0.4)) == before
    assert before["overall"]["newly_auto"]["changed"] == 6
    assert replay_counts_fold(before=timezone.now().date()) == 0


BIG = {"refund.issue": [{"name": "big refunds", "expression": "payload.amount_cents >= 50000", "effect": "senior"}]}


def _refund(dep, amount: int, *, risk: float):
    payload = {"amount_cents": amount}
    return proposed_action_create(
        deployment=dep, proposal=Proposal(action_type="refund.issue", payload=payload, risk_score=risk, confidence=0.99)
    )


def _decided_history(dep):
    """Through the services: 4 small and 3 big refunds decided by a person (review now, auto
    at auto_max_risk 0.4), and 2 small and 1 big auto-executed ones with their results."""
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[dep]).user
    for amount, verb in [(100, "approve")] * 4 + [(90_000, "approve")] * 2 + [(90_000, "reject")]:
        action = _refund(dep, amount, risk=0.35)
        assert action.status == "pending_review"
        if verb == "approve":
            proposed_action_approve(action_id=action.pk, actor=senior)
        else:
            proposed_action_reject(action_id=action.pk, actor=senior, reason="too big")
    for amount in (100, 100, 90_000):
        action = _refund(dep, amount, risk=0.1)
        assert action.route == "auto"
        proposed_action_execution_claim(action_id=action.pk)
        proposed_action_report_result(action_id=action.pk, status="executed", payload_hash=action.payload_sha256)


def test_a_candidate_rule_is_replayed_over_the_decided_proposals_it_matches(dep):
    _decided_history(dep)
    loosened = Thresholds(auto_max_risk=0.4, auto_min_confidence=0.95)
    without = simulate(deployment=dep, candidate=loosened)
    assert without["overall"]["routes"]["candidate"] == {"auto": 10, "review": 0, "senior": 0, "refused": 0}
    assert without["overall"]["newly_auto"]["n"] == 7 and without["overall"]["newly_auto"]["rejected"] == 1
    assert without["rules"] == []
    result = simulate(deployment=dep, candidate=loosened, candidate_rules=BIG)
    overall = result["overall"]
    # The three big human-decided ones and the big auto-executed one go to seniors instead.
    assert overall["routes"]["candidate"] == {"auto": 6, "review": 0, "senior": 4, "refused": 0}
    assert overall["routes"]["current"] == without["overall"]["routes"]["current"]
    newly = overall["newly_auto"]
    assert (newly["n"], newly["changed"], newly["rejected"]) == (4, 0, 0) and newly["rate"] == 0
    assert result["by_action_type"]["refund.issue"]["newly_auto"]["n"] == 4
    assert result["rules"] == [{"action_type": "refund.issue", "rule": "big refunds", "matched": 4, "auto_now": 1}]
    # The big auto-executed refund would now need a person: reviewer time is costed for it.
    assert overall["newly_reviewed"] == 1 and without["overall"]["newly_reviewed"] == 0


def test_a_refusing_rule_takes_what_it_matches_out_of_every_queue(dep):
    _decided_history(dep)
    refuse = {"refund.issue": [{**BIG["refund.issue"][0], "effect": "refuse"}]}
    result = simulate(deployment=dep, candidate=dep.thresholds, candidate_rules=refuse)
    assert result["overall"]["routes"]["candidate"] == {"auto": 2, "review": 4, "senior": 0, "refused": 4}


def test_rules_already_in_force_are_not_replayed(dep):
    _decided_history(dep)
    Deployment.objects.filter(pk=dep.pk).update(payload_rules=BIG)
    dep.refresh_from_db()
    result = simulate(
        deployment=dep, candidate=Thresholds(auto_max_risk=0.4, auto_min_confidence=0.95), candidate_rules=BIG
    )
    assert result["rules"] == [] and result["overall"]["routes"]["candidate"]["auto"] == 10


def test_the_settings_preview_and_the_api_replay_candidate_rules(dep, client):
    _decided_history(dep)
    agent = ApiClient(api_key_create(deployment=dep)[1])
    r = agent.get(
        "/api/v1/deployment/simulate?" + urlencode({"auto_max_risk": "0.4", "payload_rules": json.dumps(BIG)})
    )
    assert r.status_code == 200, r.content
    assert r.json()["overall"]["routes"]["candidate"]["senior"] == 4
    rule = '{{"refund.issue": [{{"name": {name}, "expression": "true", "effect": "senior"{extra}}}]}}'
    for bad in (
        "{",
        "[1]",
        '{"refund.issue": [{"name": "x", "expression": "payload.(", "effect": "senior"}]}',
        "1e400",
        '{"x": NaN}',
        '{"x": 1e400}',
        '{"d": ' + "[" * 900 + "]" * 900 + "}",
        rule.format(name='"\\ud800"', extra=""),
        rule.format(name='"a\\u0000b"', extra=""),
        rule.format(name='"x"', extra=', "approvals_required": "2"'),  # a string where a number belongs
        rule.format(name="12", extra=""),
    ):
        refused = agent.get("/api/v1/deployment/simulate?" + urlencode({"payload_rules": bad}))
        assert refused.status_code == 422 and "payload_rules" in refused.json()["detail"], bad


def test_the_settings_preview_and_a_change_request_replay_the_rules_they_add(dep, client):
    from tests.deployments.test_settings_changes import _form

    _decided_history(dep)
    alice = MemberFactory(role=Member.Role.ADMIN).user
    client.force_login(alice)
    form = _form(dep, auto_max_risk="0.4", payload_rules=json.dumps(BIG), reason="")
    page = client.post(f"/deployments/{dep.slug}/settings/", {**form, "preview": "1"}).content.decode()
    assert 'data-testid="simulation-rules"' in page and "big refunds" in page
    # Loosening the threshold while adding the rule waits for a second admin, with both replayed.
    outcome = deployment_settings_change(
        deployment_id=dep.pk, actor=alice, changes={"auto_max_risk": 0.4, "payload_rules": BIG}, reason="r"
    )
    frozen = SettingsChangeRequest.objects.get(pk=outcome.request.pk).simulation
    assert frozen["rules"][0]["matched"] == 4 and frozen["overall"]["routes"]["candidate"]["senior"] == 4
