"""The promotion gate of SPEC §2: may a deployment (or one action type) climb one stage?

Computed only from the evidence counters (`EvidenceCount`) over the current stage's window,
so its cost does not grow with history. The formulas are in docs/gate.md.

Each criterion ends in one of three states:

- `met`;
- `failed`: the evidence says no, whatever more data comes (a rate's whole 95% interval lies
  on the wrong side of its threshold, a breaker tripped, the SLA share is too low);
- `insufficient`: not enough data yet (a minimum count or time not reached, or the interval
  still straddles the threshold).

The outcome is `fail` if any criterion failed, else `inconclusive` if any is insufficient,
else `pass`. Only `pass` lets a promotion be requested and approved.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from deployments.counters import DEPLOYMENT_WIDE, Counts, Metric, counters_sum
from deployments.gate_humans import human_evidence
from deployments.models import Deployment
from deployments.policy import Stage
from deployments.reviewers import flagged_decisions
from deployments.stats import wilson_interval
from deployments.validators import DEFAULT_CRITERIA

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
MET, FAILED, INSUFFICIENT = "met", "failed", "insufficient"


def criteria_for(deployment: Deployment, target: Stage) -> dict[str, float]:
    """The defaults for `target`, with the deployment's overrides applied."""
    values = dict(DEFAULT_CRITERIA[target])
    values.update((deployment.gate_criteria or {}).get(target.value, {}))
    return values


@dataclass
class Criterion:
    name: str
    label: str
    status: str
    value: float | int | None
    threshold: float | int | None
    n: int | None = None
    lower: float | None = None
    upper: float | None = None
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.status == MET

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "met": self.met,
            "value": _round(self.value),
            "lower": _round(self.lower),
            "upper": _round(self.upper),
            "n": self.n,
            "threshold": self.threshold,
            "status": self.status,
            "label": self.label,
            "detail": self.detail,
        }


@dataclass
class GateEvaluation:
    deployment: str
    action_type: str
    stage: str
    next_stage: str | None
    outcome: str
    window_start: datetime
    evaluated_at: datetime
    criteria: list[Criterion] = field(default_factory=list)
    by_action_type: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Blind agreement and the human baseline (deployments.gate_humans.human_evidence).
    humans: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome == PASS

    @property
    def unmet(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.met]

    def as_dict(self) -> dict[str, Any]:
        """The JSON of GET /api/v1/deployment/evidence, also frozen into promotion requests."""
        return {
            "deployment": self.deployment,
            "action_type": self.action_type or None,
            "stage": self.stage,
            "next_stage": self.next_stage,
            "outcome": self.outcome,
            "window_start": self.window_start.isoformat(),
            "evaluated_at": self.evaluated_at.isoformat(),
            "criteria": [c.as_dict() for c in self.criteria],
            "by_action_type": self.by_action_type,
            "humans": self.humans,
        }


def _round(value: float | int | None) -> float | int | None:
    return round(value, 6) if isinstance(value, float) else value


def _count(name: str, label: str, n: int, minimum: float) -> Criterion:
    """At least `minimum` events: otherwise not enough data yet."""
    return Criterion(name, label, MET if n >= minimum else INSUFFICIENT, n, minimum, n=n)


def _lower_at_least(name: str, label: str, successes: int, n: int, threshold: float, min_n: float = 0) -> Criterion:
    """Wilson lower bound of successes/n at least `threshold`. Failed once even the upper
    bound is below the threshold; insufficient while the interval straddles it."""
    lower, upper = wilson_interval(successes, n)
    if n > 0 and n >= min_n and lower >= threshold:
        status = MET
    elif upper is not None and upper < threshold:
        status = FAILED
    else:
        status = INSUFFICIENT
    return Criterion(name, label, status, successes / n if n else None, threshold, n, lower, upper)


def _upper_at_most(name: str, label: str, events: int, n: int, threshold: float, min_n: float = 0) -> Criterion:
    """Wilson upper bound of events/n at most `threshold`. Failed once even the lower bound is
    above the threshold; insufficient while the interval straddles it."""
    lower, upper = wilson_interval(events, n)
    if n > 0 and n >= min_n and upper <= threshold:
        status = MET
    elif lower is not None and lower > threshold:
        status = FAILED
    else:
        status = INSUFFICIENT
    return Criterion(name, label, status, events / n if n else None, threshold, n, lower, upper)


class _Counts(Counts):
    """Counter totals of the window, for the whole deployment or one action type, and
    `by_type` per action type (counters about the whole deployment left out)."""

    __slots__ = ("by_type",)

    def __init__(self, by_type: dict[str, Counts], action_type: str = "") -> None:
        super().__init__()
        self.by_type = {
            atype: counts
            for atype, counts in by_type.items()
            if atype != DEPLOYMENT_WIDE and (not action_type or atype == action_type)
        }
        for counts in self.by_type.values():
            self.add(counts)


def window_start_for(deployment: Deployment, action_type: str = "") -> datetime:
    """When the evidence window of the deployment (or of a capped action type) began."""
    start = deployment.stage_entered_at
    if action_type and action_type in (deployment.stage_caps or {}):
        raw = (deployment.stage_caps_entered_at or {}).get(action_type)
        if raw:
            try:
                start = datetime.fromisoformat(raw)
            except ValueError:
                return start  # unreadable: fall back to the deployment's own window
            if timezone.is_naive(start):
                start = timezone.make_aware(start, UTC)
    return start


def current_stage_for(deployment: Deployment, action_type: str = "") -> Stage:
    return deployment.effective_stage(action_type) if action_type else Stage(deployment.stage)


def gate_evaluate(*, deployment: Deployment, action_type: str = "", now: datetime | None = None) -> GateEvaluation:
    """Evaluate the gate from the current stage to the next, now.

    Reads only evidence counters of days >= the window's first day (counters are daily, so the
    day the stage began counts whole; see docs/gate.md). Pure read: no locks, no writes.
    """
    now = now or timezone.now()
    stage = current_stage_for(deployment, action_type)
    start = window_start_for(deployment, action_type)
    target = stage.next
    evaluation = GateEvaluation(
        deployment=deployment.slug,
        action_type=action_type,
        stage=stage.value,
        next_stage=target.value if target else None,
        outcome=FAIL,
        window_start=start,
        evaluated_at=now,
    )
    counts = _Counts(counters_sum(by="action_type", deployment_id=deployment.pk, since=start.date()), action_type)
    evaluation.by_action_type = _by_action_type(stage, counts)
    evaluation.humans = human_evidence(counts)
    if target is None:
        evaluation.criteria = [
            Criterion("next_stage", "A higher stage exists", FAILED, None, None, detail="autonomous is the top stage")
        ]
        return evaluation
    if action_type and target.rank > Stage(deployment.stage).rank:
        evaluation.criteria = [
            Criterion(
                "deployment_stage",
                "The deployment itself is at a higher stage",
                FAILED,
                None,
                None,
                detail=f"an action type cannot rise above its deployment ({deployment.stage}); promote the deployment",
            )
        ]
        return evaluation
    values = criteria_for(deployment, target)
    days = (now - start).total_seconds() / 86400
    if target is Stage.APPROVAL:
        criteria = _shadow_to_approval(counts, values, days)
    elif target is Stage.SUPERVISED:
        if not action_type:  # per reviewer counters have no action type: the deployment's gate only
            flagged = flagged_decisions(deployment=deployment, since=start.date())
            evaluation.humans["flagged"] = flagged | {"excluded": bool(values["exclude_flagged_reviewers"])}
            if values["exclude_flagged_reviewers"]:
                _leave_out(counts, flagged)
        criteria = _approval_to_supervised(counts, values, days) + _human_criteria(evaluation.humans, values)
    else:
        criteria = _supervised_to_autonomous(deployment, counts, values, now)
    evaluation.criteria = criteria
    statuses = {c.status for c in criteria}
    evaluation.outcome = FAIL if FAILED in statuses else INCONCLUSIVE if INSUFFICIENT in statuses else PASS
    return evaluation


def gate_criteria_into(
    deployment: Deployment, target: Stage, counts: "_Counts", values: dict[str, float], days: float, now: datetime
) -> list[Criterion]:
    """The criteria of the gate into `target` on `counts` (the gate; re-certification)."""
    if target is Stage.APPROVAL:
        return _shadow_to_approval(counts, values, days)
    if target is Stage.SUPERVISED:
        return _approval_to_supervised(counts, values, days)
    return _supervised_to_autonomous(deployment, counts, values, now)


def _leave_out(counts: _Counts, flagged: dict[str, Any]) -> None:
    """Take the flagged reviewers' approve / edit / reject decisions out of the window's totals
    (the gate's `exclude_flagged_reviewers`; the counterfactual counts have no reviewer and stay)."""
    for verb in ("approve", "edit", "reject"):
        metric = Metric.of("decision", verb)
        counts.n[metric] = max(0, counts[metric] - flagged[verb])


def _days_criterion(days: float, minimum: float) -> Criterion:
    status = MET if days >= minimum else INSUFFICIENT
    return Criterion("days_in_stage", f"At least {minimum:g} days in stage", status, round(days, 2), minimum)


def _shadow_to_approval(counts: _Counts, v: dict[str, float], days: float) -> list[Criterion]:
    agree, disagree = counts[Metric.SHADOW_AGREE], counts[Metric.SHADOW_DISAGREE]
    pairs = agree + disagree
    criteria = [
        _count("compared_pairs", f"At least {v['min_pairs']:g} compared pairs", pairs, v["min_pairs"]),
        _lower_at_least(
            "agreement_lower",
            f"Agreement: 95% lower bound ≥ {v['min_agreement_lower']:g}",
            agree,
            pairs,
            v["min_agreement_lower"],
            v["min_pairs"],
        ),
    ]
    per_type = []
    for atype, metrics in sorted(counts.by_type.items()):
        n = metrics[Metric.SHADOW_AGREE] + metrics[Metric.SHADOW_DISAGREE]
        if n >= v["per_type_min_pairs"]:
            c = _lower_at_least(atype, "", metrics[Metric.SHADOW_AGREE], n, v["per_type_min_lower"])
            per_type.append((atype, c))
    label = f"Every action type with ≥ {v['per_type_min_pairs']:g} pairs: lower bound ≥ {v['per_type_min_lower']:g}"
    if not per_type:
        criteria.append(
            Criterion(
                "per_type_agreement", label, MET, None, v["per_type_min_lower"], n=0, detail="no type has enough pairs"
            )
        )
    else:
        worst_type, worst = min(per_type, key=lambda item: item[1].lower)
        statuses = {c.status for _, c in per_type}
        status = FAILED if FAILED in statuses else INSUFFICIENT if INSUFFICIENT in statuses else MET
        criteria.append(
            Criterion(
                "per_type_agreement",
                label,
                status,
                worst.value,
                v["per_type_min_lower"],
                worst.n,
                worst.lower,
                worst.upper,
                detail=f"weakest: {worst_type} (of {len(per_type)} types checked)",
            )
        )
    criteria.append(_days_criterion(days, v["min_days"]))
    return criteria


def _approval_to_supervised(counts: _Counts, v: dict[str, float], days: float) -> list[Criterion]:
    unchanged = counts[Metric.DECISION_APPROVE]
    decisions = unchanged + counts[Metric.DECISION_EDIT] + counts[Metric.DECISION_REJECT]
    cf_n, cf_changed = counts[Metric.COUNTERFACTUAL_AUTO], counts[Metric.COUNTERFACTUAL_AUTO_CHANGED]
    return [
        _count("human_decisions", f"At least {v['min_decisions']:g} human decisions", decisions, v["min_decisions"]),
        _lower_at_least(
            "approved_unchanged_lower",
            f"Approved unchanged: 95% lower bound ≥ {v['min_unchanged_lower']:g}",
            unchanged,
            decisions,
            v["min_unchanged_lower"],
            v["min_decisions"],
        ),
        _count(
            "counterfactual_auto",
            f"At least {v['min_counterfactual']:g} actions stage 3 would have auto-executed",
            cf_n,
            v["min_counterfactual"],
        ),
        _upper_at_most(
            "counterfactual_changed_upper",
            f"Of those, changed or rejected: 95% upper bound ≤ {v['max_counterfactual_changed_upper']:g}",
            cf_changed,
            cf_n,
            v["max_counterfactual_changed_upper"],
            v["min_counterfactual"],
        ),
        _days_criterion(days, v["min_days"]),
    ]


def _supervised_to_autonomous(
    deployment: Deployment, counts: _Counts, v: dict[str, float], now: datetime
) -> list[Criterion]:
    executed, failed = counts[Metric.EXECUTION_EXECUTED_AUTO], counts[Metric.EXECUTION_FAILED_AUTO]
    auto_n = executed + failed
    correct, incorrect = counts[Metric.AUDIT_CORRECT], counts[Metric.AUDIT_INCORRECT]
    audited = correct + incorrect
    within = counts[Metric.SLA_WITHIN]
    late = counts[Metric.SLA_BREACHED] + counts[Metric.DECISION_EXPIRE]
    reviewed = within + late
    sla_lower, sla_upper = wilson_interval(within, reviewed)
    sla_rate = within / reviewed if reviewed else None
    quiet_days = v["breaker_quiet_days"]
    trips = breaker_trips_since(deployment, now - timedelta(days=quiet_days))
    tripped_now = deployment.breaker_tripped
    min_auto, min_audited = v["min_auto_executions"], v["min_audit_samples"]
    return [
        _count("auto_executions", f"At least {v['min_auto_executions']:g} auto-executions", auto_n, min_auto),
        _upper_at_most(
            "failure_upper",
            f"Execution failure rate: 95% upper bound ≤ {v['max_failure_upper']:g}",
            failed,
            auto_n,
            v["max_failure_upper"],
            v["min_auto_executions"],
        ),
        _count("audit_samples", f"At least {v['min_audit_samples']:g} audited samples", audited, min_audited),
        _upper_at_most(
            "audit_rejected_upper",
            f"Audit-rejected rate: 95% upper bound ≤ {v['max_audit_rejected_upper']:g}",
            incorrect,
            audited,
            v["max_audit_rejected_upper"],
            v["min_audit_samples"],
        ),
        Criterion(
            "no_breaker_trip",
            f"No breaker trip in {quiet_days:g} days",
            MET if trips == 0 and not tripped_now else FAILED,
            trips,
            0,
            detail="the breaker is tripped now" if tripped_now else "",
        ),
        Criterion(
            "sla_within",
            f"At least {v['min_sla_rate']:.0%} of reviewed actions decided within SLA",
            MET if reviewed == 0 or sla_rate >= v["min_sla_rate"] else FAILED,
            sla_rate,
            v["min_sla_rate"],
            reviewed,
            sla_lower,
            sla_upper,
            detail="no reviewed actions in the window" if reviewed == 0 else "",
        ),
    ]


def _human_criteria(evidence: dict[str, Any], v: dict[str, float]) -> list[Criterion]:
    """The humans' 2→3 criteria switched on in `v` (deployments/gate_humans.py says which)."""
    criteria = []
    if v.get("min_blind_agreement", 0) > 0:
        blind, minimum = evidence["blind"], v["min_blind_samples"]
        criteria += [
            _count("blind_samples", f"At least {minimum:g} blind answers", blind["n"], minimum),
            _lower_at_least(
                "blind_agreement_lower",
                f"Blind answers agree with the AI: 95% lower bound ≥ {v['min_blind_agreement']:g}",
                blind["agree"],
                blind["n"],
                v["min_blind_agreement"],
                minimum,
            ),
        ]
    if v.get("min_double_reviews", 0) > 0:
        double, margin = evidence["double"], v["human_baseline_margin"]
        hh, ai = double["human_human"], double["ai_human"]
        criteria.append(
            _count(
                "double_reviews",
                f"At least {v['min_double_reviews']:g} double-reviewed actions",
                double["pairs"],
                v["min_double_reviews"],
            )
        )
        if double["pairs"] < v["min_double_reviews"] or hh["rate"] is None:
            status, gap = INSUFFICIENT, None
        else:
            gap = round(ai["rate"] - hh["rate"], 9)  # rates are rounded to 6 digits; no float dust at the margin
            status = MET if gap >= -margin else FAILED
        criteria.append(
            Criterion(
                "human_baseline",
                f"AI–human agreement ≥ human–human agreement − {margin:g}",
                status,
                ai["rate"],
                round(hh["rate"] - margin, 6) if hh["rate"] is not None else None,
                ai["n"],
                ai["lower"],
                ai["upper"],
                detail=(
                    f"human–human {hh['rate']:.1%} of {hh['n']} pairs; AI–human {ai['rate']:.1%} of {ai['n']} votes"
                    if gap is not None
                    else "not enough double reviews yet"
                ),
            )
        )
    return criteria


def breaker_trips_since(deployment: Deployment, since: datetime) -> int:
    """Breaker trips recorded in the counters on days >= since's day."""
    trips = counters_sum(deployment_id=deployment.pk, since=since.date(), metrics=[Metric.BREAKER_TRIPPED])
    return trips[Metric.BREAKER_TRIPPED]


def _by_action_type(stage: Stage, counts: _Counts) -> dict[str, dict[str, Any]]:
    """Per action type: how often people agreed with the AI in this stage (docs/gate.md)."""
    result = {}
    for atype, m in sorted(counts.by_type.items()):
        if stage is Stage.SHADOW:
            agree, n = m[Metric.SHADOW_AGREE], m[Metric.SHADOW_AGREE] + m[Metric.SHADOW_DISAGREE]
        elif stage is Stage.APPROVAL:
            agree = m[Metric.DECISION_APPROVE]
            n = agree + m[Metric.DECISION_EDIT] + m[Metric.DECISION_REJECT]
        else:
            agree = m[Metric.DECISION_APPROVE] + m[Metric.AUDIT_CORRECT]
            n = agree + m[Metric.DECISION_EDIT] + m[Metric.DECISION_REJECT] + m[Metric.AUDIT_INCORRECT]
        if n == 0:
            continue
        lower, upper = wilson_interval(agree, n)
        result[atype] = {"n": n, "agreement": round(agree / n, 6), "lower": round(lower, 6), "upper": round(upper, 6)}
    return result
