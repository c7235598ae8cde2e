"""Blind agreement and the human baseline in the gate, the evidence API and the gate page,
against hand-computed numbers.

Cohen's kappa by hand, human–human table [[40, 10], [5, 45]] (n = 100):
  p_o = 0.85; margins rows (0.5, 0.5), columns (0.45, 0.55); p_e = 0.5·0.45 + 0.5·0.55 = 0.5
  kappa = (0.85 - 0.5) / 0.5 = 0.7; SE = sqrt(0.85·0.15 / (100·0.25)) = 0.071414
  95%: 0.7 ± 1.959964·0.071414 = [0.560031, 0.839969]
Wilson 45/50: centre 0.938415, margin 0.091599, ÷ 1.076829 → lower 0.786398.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.counters import Metric
from deployments.gate import FAILED, INSUFFICIENT, MET, gate_evaluate
from deployments.models import Deployment, Member
from deployments.reviewers import reviewer_counts_add
from deployments.services import api_key_create, evidence_add
from deployments.stats import cohen_kappa
from deployments.validators import gate_criteria_errors
from tests.conftest import ApiClient
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db
M = Metric


def make(**fields) -> Deployment:
    deployment = DeploymentFactory(stage="approval", **fields)
    Deployment.objects.filter(pk=deployment.pk).update(stage_entered_at=timezone.now() - timedelta(days=15))
    deployment.refresh_from_db()
    return deployment


def add(deployment, metric, n):
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric=metric, n=n, day=timezone.now().date())


def crit(evaluation, name):
    return next((c for c in evaluation.criteria if c.name == name), None)


def test_cohen_kappa_by_hand():
    kappa, lower, upper = cohen_kappa([[40, 10], [5, 45]])
    assert kappa == pytest.approx(0.7)
    assert (lower, upper) == (pytest.approx(0.560031, abs=1e-6), pytest.approx(0.839969, abs=1e-6))
    assert cohen_kappa([[0, 0], [0, 0]]) == (None, None, None)
    assert cohen_kappa([[10, 0], [0, 0]]) == (None, None, None)  # one category only: undefined
    assert cohen_kappa([[0, 5], [5, 0]])[0] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa([[1, 2, 3], [4, 5, 6]])


def test_evidence_shows_blind_and_baseline_numbers_and_criteria_are_off_by_default():
    d = make()
    add(d, M.BLIND_AGREE, 45)
    add(d, M.BLIND_DISAGREE, 5)
    for metric, n in [
        (M.DOUBLE_HH_SAME, 80),
        (M.DOUBLE_HH_DIFFER, 20),
        (M.DOUBLE_HH_AGREE_AGREE, 40),
        (M.DOUBLE_HH_AGREE_CHANGE, 10),
        (M.DOUBLE_HH_CHANGE_AGREE, 5),
        (M.DOUBLE_HH_CHANGE_CHANGE, 45),
        (M.DOUBLE_AI_AUTO_AGREE, 90),
        (M.DOUBLE_AI_AUTO_CHANGE, 60),
        (M.DOUBLE_AI_HOLD_AGREE, 10),
        (M.DOUBLE_AI_HOLD_CHANGE, 40),
    ]:
        add(d, metric, n)
    evaluation = gate_evaluate(deployment=d)
    blind = evaluation.humans["blind"]
    assert (blind["n"], blind["agree"], blind["rate"]) == (50, 45, 0.9)
    assert blind["lower"] == pytest.approx(0.786398, abs=1e-5)
    double = evaluation.humans["double"]
    assert double["pairs"] == 100 and double["human_human"]["rate"] == 0.8
    assert (double["ai_human"]["n"], double["ai_human"]["rate"]) == (200, 0.5)
    assert double["human_human_kappa"]["kappa"] == pytest.approx(0.7)
    # AI–human: [[90, 60], [10, 40]]: p_o = 0.65, p_e = 0.75·0.5 + 0.25·0.5 = 0.5 → kappa 0.3
    assert double["ai_human_kappa"]["kappa"] == pytest.approx(0.3)
    assert crit(evaluation, "blind_agreement_lower") is None and crit(evaluation, "human_baseline") is None


def test_min_blind_agreement_switches_the_criterion_on():
    d = make(gate_criteria={"supervised": {"min_blind_agreement": 0.75, "min_blind_samples": 50}})
    add(d, M.BLIND_AGREE, 45)
    add(d, M.BLIND_DISAGREE, 5)
    evaluation = gate_evaluate(deployment=d)
    assert crit(evaluation, "blind_samples").status == MET
    assert crit(evaluation, "blind_agreement_lower").status == MET
    d.gate_criteria = {"supervised": {"min_blind_agreement": 0.8}}
    assert crit(gate_evaluate(deployment=d), "blind_agreement_lower").status == INSUFFICIENT  # [0.786, 0.957] straddles
    d.gate_criteria = {"supervised": {"min_blind_agreement": 0.97}}
    assert crit(gate_evaluate(deployment=d), "blind_agreement_lower").status == FAILED
    assert gate_evaluate(deployment=d).outcome == "fail"


def test_the_human_baseline_criterion_compares_ai_human_with_human_human_minus_the_margin():
    d = make(gate_criteria={"supervised": {"min_double_reviews": 100, "human_baseline_margin": 0.05}})
    add(d, M.DOUBLE_HH_SAME, 80)
    add(d, M.DOUBLE_HH_DIFFER, 19)
    assert crit(gate_evaluate(deployment=d), "human_baseline").status == INSUFFICIENT  # 99 pairs
    add(d, M.DOUBLE_HH_DIFFER, 1)
    add(d, M.DOUBLE_AI_AUTO_AGREE, 150)
    add(d, M.DOUBLE_AI_AUTO_CHANGE, 50)  # AI–human 0.75 ≥ 0.8 - 0.05
    c = crit(gate_evaluate(deployment=d), "human_baseline")
    assert (c.status, c.value, c.threshold, c.n) == (MET, 0.75, 0.75, 200)
    add(d, M.DOUBLE_AI_AUTO_CHANGE, 1)  # 150/201 < 0.75
    assert crit(gate_evaluate(deployment=d), "human_baseline").status == FAILED


def test_new_criteria_are_validated():
    assert gate_criteria_errors({"supervised": {"min_blind_agreement": 0.9, "min_double_reviews": 30}}) == []
    assert gate_criteria_errors({"supervised": {"min_blind_agreement": 1.5}}) == [
        "supervised.min_blind_agreement: must be between 0 and 1"
    ]
    assert gate_criteria_errors({"supervised": {"human_baseline_margin": -0.1}})


def test_evidence_api_and_gate_page_show_the_humans(client):
    d = make()
    add(d, M.BLIND_AGREE, 9)
    add(d, M.BLIND_DISAGREE, 1)
    _, raw = api_key_create(deployment=d)
    body = ApiClient(raw).get("/api/v1/deployment/evidence").json()
    blind = body["humans"]["blind"]
    assert (blind["n"], blind["agree"], blind["rate"]) == (10, 9, 0.9)
    assert (blind["lower"], blind["upper"]) == (pytest.approx(0.5958, abs=1e-4), pytest.approx(0.9821, abs=1e-4))
    assert body["humans"]["double"]["pairs"] == 0
    assert body["humans"]["double"]["human_human_kappa"]["kappa"] is None
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[d])
    client.force_login(senior.user)
    page = client.get(f"/deployments/{d.slug}/gate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="humans"' in html and "Blind answers agree with the AI" in html and "90.0%" in html


def test_gate_page_has_no_humans_section_without_samples(client):
    d = make()
    admin = MemberFactory(role=Member.Role.ADMIN)
    client.force_login(admin.user)
    assert 'id="humans"' not in client.get(f"/deployments/{d.slug}/gate/").content.decode()


def test_flagged_reviewers_evidence_is_shown_apart_and_can_be_left_out(client):
    d = make()
    fast, careful = (MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for _ in range(2))
    today = timezone.now().date()
    for user, approve, reject, bucket in ((fast, 300, 0, M.TTD_LT5), (careful, 150, 50, M.TTD_LT60)):
        reviewer_counts_add(
            deployment_id=d.pk,
            user_id=user.pk,
            day=today,
            metrics={
                M.DECISION_APPROVE: (approve, 0.0),
                M.DECISION_REJECT: (reject, 0.0),
                bucket: (approve + reject, 0.0),
            },
        )
    add(d, M.DECISION_APPROVE, 450)
    add(d, M.DECISION_REJECT, 50)
    evaluation = gate_evaluate(deployment=d)
    flagged = evaluation.humans["flagged"]
    assert flagged == {"reviewers": [fast.username], "approve": 300, "edit": 0, "reject": 0, "excluded": False}
    assert crit(evaluation, "human_decisions").value == 500
    assert crit(evaluation, "approved_unchanged_lower").value == 0.9
    d.gate_criteria = {"supervised": {"exclude_flagged_reviewers": 1}}
    evaluation = gate_evaluate(deployment=d)
    assert evaluation.humans["flagged"]["excluded"] is True
    assert crit(evaluation, "human_decisions").value == 200
    assert crit(evaluation, "approved_unchanged_lower").value == 0.75
    admin = MemberFactory(role=Member.Role.ADMIN)
    client.force_login(admin.user)
    d.save()
    html = client.get(f"/deployments/{d.slug}/gate/").content.decode()
    assert 'id="flagged-evidence"' in html and fast.username in html and "left out of the criteria" in html
