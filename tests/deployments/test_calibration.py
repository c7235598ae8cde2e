"""Calibration (issue 16 item 4): bands, Wilson intervals, ECE, Brier, the candidate
threshold, the counters written by decisions / results / audit verdicts, the page and the API.

Hand-computed below (z = 1.959964):
- 1 approve at 0.92 and 1 reject at 0.96 and 2 approves at 0.30: review n 4, good 3;
  band 18 (0.90, 0.95]: 1/1; band 19 (0.95, 1]: 0/1; band 5 (0.25, 0.30]: 2/2.
  ECE = (1·|1 − 0.92| + 1·|0 − 0.96| + 2·|1 − 0.30|) / 4 = (0.08 + 0.96 + 1.40) / 4 = 0.61.
  Brier = ((0.92 − 1)² + (0.96 − 0)² + 2·(0.30 − 1)²) / 4 = (0.0064 + 0.9216 + 0.98) / 4 = 0.477.
- Wilson upper of 0/200 = z²/(200 + z²) = 0.018845 ≤ 0.02; of 1/200: 0.027672 > 0.02.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deployments.calibration import band_of, calibration_deltas, calibration_evaluate
from deployments.counters import Metric, calibration_counts_fold, counters_add
from deployments.models import CalibrationCount
from reviews.execution import proposed_action_execution_claim, proposed_action_report_result
from reviews.services import proposed_action_approve, proposed_action_audit_verdict
from tests.deployments.test_api_evidence import key_for
from tests.deployments.test_gate import make
from tests.factories import DeploymentFactory, ProposedActionFactory

pytestmark = pytest.mark.django_db


def outcome(deployment, metric: str, confidence: float, n: int = 1, action_type: str = "t.a", days_ago: int = 0):
    at = timezone.now() - timedelta(days=days_ago)
    for _ in range(n):
        counters_add(
            calibration_deltas(
                deployment_id=deployment.pk, action_type=action_type, metric=metric, confidence=confidence, at=at
            )
        )


@pytest.mark.parametrize(
    ("confidence", "band"),
    [(0.0, 0), (0.05, 0), (0.0500001, 1), (0.15, 2), (0.3, 5), (0.9, 17), (0.95, 18), (0.950001, 19), (1.0, 19)],
)
def test_bands_split_exactly_where_the_routing_rule_does(confidence, band):
    # confidence > 0.95 is auto at the default threshold: 0.95 itself is in the band below.
    assert band_of(confidence) == band
    assert (confidence > band / 20) or band == 0
    assert confidence <= (band + 1) / 20


def test_bands_ece_and_brier_by_hand():
    d = make("approval")
    outcome(d, "decision.approve", 0.92)
    outcome(d, "decision.reject", 0.96)
    outcome(d, "decision.approve", 0.30, n=2)
    outcome(d, "decision.escalate", 0.99)  # no outcome: nobody judged yet
    c = calibration_evaluate(deployment=d)
    review = c["kinds"]["review"]
    assert (review["n"], review["good"]) == (4, 3)
    bands = {b["band"]: b for b in review["bands"] if b["n"]}
    assert set(bands) == {5, 18, 19}
    assert (bands[18]["n"], bands[18]["good"], bands[18]["mean_confidence"]) == (1, 1, 0.92)
    assert (bands[19]["rate"], bands[19]["lower"]) == (0.0, 0.0)
    assert bands[5]["mean_confidence"] == pytest.approx(0.30)
    assert review["ece"] == pytest.approx(0.61, abs=1e-6)
    assert review["brier"] == pytest.approx(0.477, abs=1e-6)
    assert c["primary"] == ["review"] and c["kinds"]["audit"]["n"] == 0
    assert c["by_action_type"]["t.a"]["review"]["n"] == 4


def test_the_window_and_the_action_type_filter():
    d = make("approval")
    outcome(d, "decision.approve", 0.9, days_ago=40)
    outcome(d, "decision.approve", 0.9, action_type="t.b")
    outcome(d, "decision.reject", 0.9)
    assert calibration_evaluate(deployment=d)["kinds"]["review"]["n"] == 2
    assert calibration_evaluate(deployment=d, days=60)["kinds"]["review"]["n"] == 3
    only_b = calibration_evaluate(deployment=d, action_type="t.b")
    assert only_b["kinds"]["review"]["n"] == 1 and list(only_b["by_action_type"]) == ["t.b"]


def test_candidate_is_the_lowest_edge_whose_tail_passes_the_2_to_3_criterion():
    d = make("approval")
    outcome(d, "decision.approve", 0.97, n=150)
    outcome(d, "decision.approve", 0.87, n=50)  # tail above 0.85: 0/200 changed, upper 0.018845
    outcome(d, "decision.edit", 0.82, n=1)  # tail above 0.80: 1/201, upper > 0.02
    outcome(d, "decision.approve", 0.6, n=10)
    cand = calibration_evaluate(deployment=d)["candidate"]
    assert cand["auto_min_confidence"] == 0.85
    assert (cand["n"], cand["changed"]) == (200, 0)
    assert cand["upper"] == pytest.approx(0.018845, abs=1e-6)
    assert (cand["threshold"], cand["min_n"], cand["current"]) == (0.02, 100, 0.95)
    assert cand["simulate"] == {"auto_min_confidence": 0.85}


def test_no_candidate_without_enough_data_and_the_criterion_is_the_deployments_own():
    d = make("approval")
    outcome(d, "decision.approve", 0.97, n=60)
    assert calibration_evaluate(deployment=d)["candidate"]["auto_min_confidence"] is None  # 60 < 100
    # 0/60: upper = z²/(60 + z²) = 0.060170
    d.gate_criteria = {"supervised": {"min_counterfactual": 50, "max_counterfactual_changed_upper": 0.07}}
    d.save()
    assert calibration_evaluate(deployment=d)["candidate"]["auto_min_confidence"] == 0.95


def test_decisions_results_and_audit_verdicts_write_the_counters_in_their_transaction(reviewer, senior, deployment):
    a = ProposedActionFactory(deployment=deployment, status="pending_review", route="review", confidence=0.93)
    proposed_action_approve(action_id=a.pk, actor=reviewer.user)
    a.refresh_from_db()
    proposed_action_execution_claim(action_id=a.pk, claim_key="k")
    proposed_action_report_result(action_id=a.pk, status="failed", payload_hash=a.payload_sha256, claim_key="k")
    proposed_action_report_result(
        action_id=a.pk, status="failed", payload_hash=a.payload_sha256, claim_key="k"
    )  # a repeat
    auto = ProposedActionFactory(
        deployment=deployment, status="executed", route="auto", confidence=0.99, audit_sample=True
    )
    proposed_action_audit_verdict(action_id=auto.pk, actor=senior.user, verdict="incorrect", reason="wrong customer")
    rows = {(r.metric, r.band): (r.n, r.confidence_sum) for r in CalibrationCount.objects.filter(deployment=deployment)}
    assert rows == {
        ("decision.approve", 18): (1, pytest.approx(0.93)),
        ("execution.failed.review", 18): (1, pytest.approx(0.93)),
        ("audit.incorrect", 19): (1, pytest.approx(0.99)),
    }
    c = calibration_evaluate(deployment=deployment)
    assert c["primary"] == ["audit", "execution"]
    assert (c["kinds"]["execution"]["n"], c["kinds"]["execution"]["good"]) == (1, 0)
    assert (c["kinds"]["audit"]["n"], c["kinds"]["audit"]["good"]) == (1, 0)


def test_the_fold_keeps_the_sums():
    d = make("approval")
    for _ in range(20):  # random shards
        outcome(d, "decision.approve", 0.9, days_ago=2)
    before = calibration_evaluate(deployment=d)
    calibration_counts_fold(before=timezone.now().date())
    calibration_counts_fold(before=timezone.now().date())  # twice: nothing more to fold
    assert CalibrationCount.objects.filter(deployment=d).count() == 1
    assert calibration_evaluate(deployment=d) == before


def test_unknown_metric_is_refused():
    d = DeploymentFactory()
    with pytest.raises(ValueError, match="not an evidence metric"):
        calibration_deltas(deployment_id=d.pk, action_type="t", metric="decision.aprove", confidence=0.5)
    assert calibration_deltas(deployment_id=d.pk, action_type="t", metric=Metric.PROPOSED_AUTO, confidence=0.5) == []


def test_page_has_chart_table_and_candidate(reviewer, deployment):
    outcome(deployment, "decision.approve", 0.97, n=200)
    outcome(deployment, "audit.correct", 0.97, n=3)
    outcome(deployment, "decision.reject", 0.4, action_type="<script>x</script>")
    c = Client()
    c.force_login(reviewer.user)
    r = c.get(f"/deployments/{deployment.slug}/calibration/")
    html = r.content.decode()
    assert r.status_code == 200
    assert html.count("<svg") == 2  # review and audit; no execution outcomes yet
    assert "<circle" in html and "perfect calibration" in html
    assert "(0.95, 1.00]" in html and '<strong class="candidate">0.95</strong>' in html
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    for hostile in ("?days=1e400", "?days=NaN", "?days=-3", "?action_type=%00", "?days=99999999999999999999"):
        assert c.get(f"/deployments/{deployment.slug}/calibration/{hostile}").status_code in (200, 400)


def test_evidence_api_carries_the_calibration():
    d = make("approval")
    outcome(d, "decision.approve", 0.97, n=3)
    api = key_for(d)
    body = api.get("/api/v1/deployment/evidence").json()
    cal = body["calibration"]
    assert cal["kinds"]["review"]["n"] == 3 and cal["days"] == 30 and cal["candidate"]["auto_min_confidence"] is None
    assert len(cal["kinds"]["review"]["bands"]) == 20
    for bad in ("0", "366", "NaN", "1e400", "x"):
        r = api.get(f"/api/v1/deployment/evidence?calibration_days={bad}")
        assert r.status_code == 422, bad
    assert api.get("/api/v1/deployment/evidence?calibration_days=365").status_code == 200
    assert api.get("/api/v1/deployment/evidence?action_type=%00").status_code in (200, 422)
