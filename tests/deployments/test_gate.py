"""The gate of SPEC §2 against hand-computed numbers.

Wilson bounds used below, by hand with z = 1.959964 (z² = 3.841459):
- k = 0:      upper = z² / (n + z²): n=100 → 0.036993, n=200 → 0.018845, n=1000 → 0.003827
- 190/200:    [0.910422, 0.972617]      150/200: [0.685659, 0.804918]
- 480/500:    [0.939026, 0.973959]      20/200:  [0.065670, 0.149406]
- 92/100:     [0.850019, 0.958907]      98/100:  [0.929988, 0.994498]
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.gate import FAIL, INCONCLUSIVE, PASS, gate_evaluate
from deployments.models import Deployment
from deployments.services import breaker_trip, evidence_add
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def make(stage: str, days_in_stage: float = 15, **fields) -> Deployment:
    deployment = DeploymentFactory(stage=stage, **fields)
    Deployment.objects.filter(pk=deployment.pk).update(stage_entered_at=timezone.now() - timedelta(days=days_in_stage))
    deployment.refresh_from_db()
    return deployment


def add(deployment: Deployment, metric: str, n: int, action_type: str = "t.a", days_ago: int = 0) -> None:
    evidence_add(
        deployment_id=deployment.pk,
        action_type=action_type,
        metric=metric,
        n=n,
        day=timezone.now().date() - timedelta(days=days_ago),
    )


def crit(evaluation, name):
    return next(c for c in evaluation.criteria if c.name == name)


# --- 1 → 2 ---------------------------------------------------------------------------------


def test_shadow_gate_passes_on_hand_computed_bounds():
    d = make("shadow")
    add(d, "shadow.agree", 190)
    add(d, "shadow.disagree", 10)
    e = gate_evaluate(deployment=d)
    assert (e.stage, e.next_stage, e.outcome) == ("shadow", "approval", PASS)
    agreement = crit(e, "agreement_lower")
    assert agreement.n == 200 and agreement.value == pytest.approx(0.95)
    assert agreement.lower == pytest.approx(0.910422, abs=1e-6)
    assert agreement.upper == pytest.approx(0.972617, abs=1e-6)
    assert crit(e, "compared_pairs").met and crit(e, "days_in_stage").met
    assert e.by_action_type["t.a"]["agreement"] == pytest.approx(0.95)
    assert e.by_action_type["t.a"]["lower"] == pytest.approx(0.910422, abs=1e-6)


def test_shadow_gate_fails_when_the_whole_interval_is_below_the_threshold():
    d = make("shadow")
    add(d, "shadow.agree", 150)
    add(d, "shadow.disagree", 50)
    e = gate_evaluate(deployment=d)
    c = crit(e, "agreement_lower")
    assert c.upper == pytest.approx(0.804918, abs=1e-6) and c.status == "failed"
    assert e.outcome == FAIL


def test_shadow_gate_is_inconclusive_with_too_few_pairs_or_days():
    d = make("shadow")
    add(d, "shadow.agree", 150)  # 150/150 would be fine, but 150 < 200 pairs
    e = gate_evaluate(deployment=d)
    assert crit(e, "compared_pairs").status == "insufficient"
    assert e.outcome == INCONCLUSIVE

    young = make("shadow", days_in_stage=3)
    add(young, "shadow.agree", 300)
    e = gate_evaluate(deployment=young)
    assert crit(e, "days_in_stage").status == "insufficient" and crit(e, "days_in_stage").value == pytest.approx(3)
    assert e.outcome == INCONCLUSIVE


def test_shadow_gate_checks_every_action_type_with_enough_pairs():
    d = make("shadow")
    add(d, "shadow.agree", 198, "a")
    add(d, "shadow.disagree", 2, "a")
    add(d, "shadow.agree", 92, "b")  # lower 0.850019 >= 0.85: just met
    add(d, "shadow.disagree", 8, "b")
    add(d, "shadow.agree", 5, "c")  # 10 pairs: below 30, not checked
    add(d, "shadow.disagree", 5, "c")
    e = gate_evaluate(deployment=d)
    per_type = crit(e, "per_type_agreement")
    assert per_type.met and per_type.lower == pytest.approx(0.850019, abs=1e-6) and "b" in per_type.detail
    assert e.outcome == PASS  # 295/310 overall: lower 0.9217

    add(d, "shadow.disagree", 1, "b")  # 92/101: lower 0.8393 < 0.85, upper still above
    e = gate_evaluate(deployment=d)
    assert crit(e, "per_type_agreement").status == "insufficient"
    assert e.outcome == INCONCLUSIVE


def test_counters_before_the_stage_window_do_not_count():
    d = make("shadow", days_in_stage=15)
    add(d, "shadow.agree", 1000, days_ago=20)
    e = gate_evaluate(deployment=d)
    assert crit(e, "compared_pairs").value == 0
    assert e.outcome == INCONCLUSIVE


def test_criteria_are_configurable_per_deployment():
    d = make("shadow", days_in_stage=1, gate_criteria={"approval": {"min_pairs": 10, "min_days": 1}})
    add(d, "shadow.agree", 10)
    e = gate_evaluate(deployment=d)
    # 10/10: lower = 10 / (10 + z²) = 0.722467 < 0.90, upper 1.0: not enough data yet
    assert crit(e, "agreement_lower").lower == pytest.approx(0.722467, abs=1e-6)
    assert e.outcome == INCONCLUSIVE
    d.gate_criteria["approval"]["min_agreement_lower"] = 0.7
    d.save()
    assert gate_evaluate(deployment=d).outcome == PASS


def test_invalid_criteria_overrides_are_refused():
    from django.core.exceptions import ValidationError

    d = make("shadow")
    for bad in (
        {"nope": {}},
        {"approval": {"min_pairs": -1}},
        {"approval": {"typo": 1}},
        {"approval": {"min_agreement_lower": 2}},
    ):
        d.gate_criteria = bad
        with pytest.raises(ValidationError):
            d.full_clean()


# --- 2 → 3 ---------------------------------------------------------------------------------


def approval_evidence(d, *, cf_n=200, cf_changed=0):
    add(d, "decision.approve", 480)
    add(d, "decision.edit", 10)
    add(d, "decision.reject", 10)
    add(d, "decision.escalate", 40)  # not a final decision: not counted
    add(d, "counterfactual.auto", cf_n)
    add(d, "counterfactual.auto_changed", cf_changed)


def test_approval_gate_passes_with_the_counterfactual():
    d = make("approval")
    approval_evidence(d)
    e = gate_evaluate(deployment=d)
    assert e.outcome == PASS, [c.as_dict() for c in e.criteria]
    unchanged = crit(e, "approved_unchanged_lower")
    assert unchanged.n == 500 and unchanged.lower == pytest.approx(0.939026, abs=1e-6)
    cf = crit(e, "counterfactual_changed_upper")
    assert cf.n == 200 and cf.upper == pytest.approx(0.018845, abs=1e-6)
    assert e.by_action_type["t.a"]["n"] == 500


def test_approval_gate_with_100_clean_counterfactuals_is_inconclusive():
    d = make("approval")
    approval_evidence(d, cf_n=100)
    e = gate_evaluate(deployment=d)
    cf = crit(e, "counterfactual_changed_upper")
    assert cf.upper == pytest.approx(0.036993, abs=1e-6) and cf.status == "insufficient"
    assert e.outcome == INCONCLUSIVE


def test_approval_gate_fails_when_humans_changed_the_would_be_auto_actions():
    d = make("approval")
    approval_evidence(d, cf_changed=20)
    e = gate_evaluate(deployment=d)
    cf = crit(e, "counterfactual_changed_upper")
    assert cf.lower == pytest.approx(0.065670, abs=1e-6) and cf.status == "failed"
    assert e.outcome == FAIL


# --- 3 → 4 ---------------------------------------------------------------------------------


def supervised_evidence(d, *, failed=0, incorrect=0, breached=2):
    add(d, "execution.executed.auto", 1000 - failed)
    add(d, "execution.failed.auto", failed)
    add(d, "execution.failed.review", 50)  # human-approved executions are not the auto failure rate
    add(d, "audit.correct", 200 - incorrect)
    add(d, "audit.incorrect", incorrect)
    add(d, "sla.within", 98)
    add(d, "sla.breached", breached)


def test_supervised_gate_passes():
    d = make("supervised")
    supervised_evidence(d)
    e = gate_evaluate(deployment=d)
    assert e.outcome == PASS, [c.as_dict() for c in e.criteria]
    failure = crit(e, "failure_upper")
    assert failure.n == 1000 and failure.upper == pytest.approx(0.003827, abs=1e-6)
    assert crit(e, "audit_rejected_upper").upper == pytest.approx(0.018845, abs=1e-6)
    assert crit(e, "sla_within").value == pytest.approx(0.98)


def test_supervised_gate_counts_expiries_as_sla_breaches():
    d = make("supervised")
    supervised_evidence(d)
    add(d, "decision.expire", 5)  # 98 / 105 = 93.3% < 95%
    e = gate_evaluate(deployment=d)
    assert crit(e, "sla_within").value == pytest.approx(98 / 105)
    assert e.outcome == FAIL


def test_supervised_gate_fails_after_a_breaker_trip():
    d = make("supervised")
    supervised_evidence(d)
    breaker_trip(deployment_id=d.pk, reason="test")
    d.refresh_from_db()
    e = gate_evaluate(deployment=d)
    assert crit(e, "no_breaker_trip").status == "failed"
    assert e.outcome == FAIL


def test_top_stage_has_no_gate():
    e = gate_evaluate(deployment=make("autonomous"))
    assert e.next_stage is None and e.outcome == FAIL


# --- per action type -----------------------------------------------------------------------


def test_an_action_type_has_its_own_gate_over_its_own_counters():
    d = make("supervised", stage_caps={"refund.issue": "approval"})
    d.stage_caps_entered_at = {"refund.issue": (timezone.now() - timedelta(days=20)).isoformat()}
    d.save()
    approval_evidence_for = [
        ("decision.approve", 480),
        ("decision.edit", 10),
        ("decision.reject", 10),
        ("counterfactual.auto", 200),
    ]
    for metric, n in approval_evidence_for:
        add(d, metric, n, action_type="refund.issue", days_ago=17)
    add(d, "decision.reject", 400, action_type="other.type")  # another type's evidence does not count
    e = gate_evaluate(deployment=d, action_type="refund.issue")
    assert (e.stage, e.next_stage) == ("approval", "supervised")
    assert e.outcome == PASS, [c.as_dict() for c in e.criteria]
    assert list(e.by_action_type) == ["refund.issue"]


def test_a_cap_without_a_readable_start_falls_back_to_the_deployment_window():
    d = make("supervised", stage_caps={"a": "approval", "b": "approval"})
    d.stage_caps_entered_at = {"a": "2026-01-01T00:00:00", "b": "not a date"}
    d.save()
    assert gate_evaluate(deployment=d, action_type="a").window_start.tzinfo is not None
    assert gate_evaluate(deployment=d, action_type="b").window_start == d.stage_entered_at
