"""Calibration (SPEC §8): does the model's self-reported confidence mean anything?

Per deployment (and action type), proposals are put in confidence bands 0.05 wide and each
band's mean confidence is set against how often the outcome was good:

| kind | outcome counted | good | from |
|---|---|---|---|
| `review` | a person's final decision (approve, edit, reject) | approved unchanged | stage 2 (and 3–4's reviews) |
| `audit` | a senior's verdict on an auto-executed sample | audit correct | stages 3–4 |
| `execution` | the agent's result report | executed (not failed) | stages 3–4 |

Each band gets n, the observed rate and its Wilson 95% interval; each kind its expected
calibration error (ECE, the n-weighted mean |observed − mean confidence| over bands) and
Brier score (mean (confidence − good)², exact: the counters sum the confidences and their
squares). From `review` a *candidate* `auto_min_confidence` is offered: the lowest lower edge t
of a band with outcomes such that, of the decided actions with confidence > t, at least the 2→3 criterion's
`min_counterfactual` exist and the Wilson upper bound of changed-or-rejected is at most its
`max_counterfactual_changed_upper` — what the 2→3 gate asks of what stage 3 would auto-execute,
asked of confidence alone (the simulator replays it with risk).

Pre-aggregated: `CalibrationCount` rows per day, action type, outcome metric and band, added
by `calibration_deltas` in the transaction of the decision, result or verdict (beside its
EvidenceCount row, through `deployments.counters.counters_add`), never a scan of the actions.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from deployments.counters import CounterDelta, Metric
from deployments.models import CalibrationCount, Deployment
from deployments.policy import Stage
from deployments.stats import wilson_interval
from deployments.validators import DEFAULT_CRITERIA

BANDS = 20
BAND_WIDTH = 1 / BANDS
DEFAULT_DAYS = 30
MAX_DAYS = 365

REVIEW, AUDIT, EXECUTION = "review", "audit", "execution"
# Outcome metric -> (kind, good?). Escalations and expiries are no outcome: nobody judged.
OUTCOMES: dict[Metric, tuple[str, bool]] = {
    Metric.DECISION_APPROVE: (REVIEW, True),
    Metric.DECISION_EDIT: (REVIEW, False),
    Metric.DECISION_REJECT: (REVIEW, False),
    Metric.AUDIT_CORRECT: (AUDIT, True),
    Metric.AUDIT_INCORRECT: (AUDIT, False),
    **{m: (EXECUTION, True) for m in Metric.of_kind("execution") if m.rest.startswith("executed.")},
    **{m: (EXECUTION, False) for m in Metric.of_kind("execution") if m.rest.startswith("failed.")},
}
KIND_LABELS = {REVIEW: "approved unchanged", AUDIT: "audit correct", EXECUTION: "execution succeeded"}
# The kinds that judge the current stage's own risk: stage 2's people, stage 3–4's audits and results.
PRIMARY_KINDS = {
    Stage.SHADOW: (REVIEW,),
    Stage.APPROVAL: (REVIEW,),
    Stage.SUPERVISED: (AUDIT, EXECUTION),
    Stage.AUTONOMOUS: (AUDIT, EXECUTION),
}


def band_of(confidence: float) -> int:
    """The band k with k/20 < confidence <= (k+1)/20 (0 for a confidence of 0), compared in
    floats exactly as the routing rule compares `confidence > auto_min_confidence`: a
    threshold on a band edge (0.95 == 19/20) splits bands, never one."""
    k = min(max(math.ceil(confidence * BANDS) - 1, 0), BANDS - 1)
    while k > 0 and confidence <= k / BANDS:
        k -= 1
    while k < BANDS - 1 and confidence > (k + 1) / BANDS:
        k += 1
    return k


def calibration_deltas(
    *, deployment_id: int, action_type: str, metric: Metric, confidence: float, at: datetime | None = None
) -> list[CounterDelta]:
    """The calibration counter one outcome adds to (none for a metric that is no outcome:
    escalate, expire, proposals...). Pass them to counters_add with the evidence deltas of
    the same event, in its transaction."""
    metric = Metric(metric)
    if metric not in OUTCOMES or confidence is None:
        return []
    day = (at or timezone.now()).date()  # as evidence_deltas dates the evidence of the same event
    key = {
        "deployment_id": deployment_id,
        "day": day,
        "action_type": action_type,
        "metric": metric,
        "band": band_of(confidence),
    }
    return [CounterDelta(CalibrationCount, key, {"n": 1, "confidence_sum": confidence, "confidence_sq": confidence**2})]


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
@dataclass
class _Cell:
    n: int = 0
    good: int = 0
    conf_sum: float = 0.0
    conf_sq: float = 0.0
    good_conf_sum: float = 0.0

    def add(self, good: bool, n: int, conf_sum: float, conf_sq: float) -> None:
        self.n += n
        self.conf_sum += conf_sum
        self.conf_sq += conf_sq
        if good:
            self.good += n
            self.good_conf_sum += conf_sum


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _kind_summary(cells: dict[int, _Cell], kind: str) -> dict[str, Any]:
    """Bands, ECE and Brier score of one kind."""
    bands, total = [], _Cell()
    ece_sum = 0.0
    for k in range(BANDS):
        cell = cells.get(k, _Cell())
        lower, upper = wilson_interval(cell.good, cell.n)
        mean = cell.conf_sum / cell.n if cell.n else None
        rate = cell.good / cell.n if cell.n else None
        if cell.n:
            ece_sum += cell.n * abs(rate - mean)
        total.add(False, cell.n, cell.conf_sum, cell.conf_sq)
        total.good += cell.good
        total.good_conf_sum += cell.good_conf_sum
        bands.append(
            {
                "band": k,
                "low": round(k * BAND_WIDTH, 2),
                "high": round((k + 1) * BAND_WIDTH, 2),
                "n": cell.n,
                "good": cell.good,
                "rate": _r(rate),
                "lower": _r(lower),
                "upper": _r(upper),
                "mean_confidence": _r(mean),
            }
        )
    n = total.n
    # Σ(c − y)² = Σc² − 2·Σ_{y=1} c + #(y=1), with y = 1 for a good outcome.
    brier = (total.conf_sq - 2 * total.good_conf_sum + total.good) / n if n else None
    return {
        "kind": kind,
        "label": KIND_LABELS[kind],
        "n": n,
        "good": total.good,
        "rate": _r(total.good / n if n else None),
        "mean_confidence": _r(total.conf_sum / n if n else None),
        "ece": _r(ece_sum / n if n else None),
        "brier": _r(max(brier, 0.0) if brier is not None else None),
        "bands": bands,
    }


def _candidate(deployment: Deployment, cells: dict[int, _Cell]) -> dict[str, Any]:
    """The lowest band edge t whose tail (confidence > t) passes the 2→3 counterfactual test."""
    criteria = dict(DEFAULT_CRITERIA[Stage.SUPERVISED])
    criteria.update((deployment.gate_criteria or {}).get(Stage.SUPERVISED.value, {}))
    min_n, max_upper = criteria["min_counterfactual"], criteria["max_counterfactual_changed_upper"]
    found = None
    n = changed = 0
    for k in range(BANDS - 1, -1, -1):  # tails grow downwards: bands >= k are confidence > k/20
        cell = cells.get(k)
        if cell is not None:
            n += cell.n
            changed += cell.n - cell.good
        if cell is None or not cell.n:
            continue  # an edge below an empty band would vouch for confidences nobody has seen
        _, upper = wilson_interval(changed, n)
        if n >= min_n and upper <= max_upper:
            found = {"auto_min_confidence": round(k * BAND_WIDTH, 2), "n": n, "changed": changed, "upper": _r(upper)}
    return {
        "auto_min_confidence": found["auto_min_confidence"] if found else None,
        "n": found["n"] if found else None,
        "changed": found["changed"] if found else None,
        "upper": found["upper"] if found else None,
        "threshold": max_upper,
        "min_n": min_n,
        "current": deployment.auto_min_confidence,
        "simulate": {"auto_min_confidence": found["auto_min_confidence"]} if found else None,
    }


def calibration_rows(*, deployment_id: int, since: date, action_type: str = "") -> list[dict[str, Any]]:
    """The window's counters summed over days and shards: one grouped query."""
    if "\x00" in action_type:
        return []  # no stored action type holds a NUL (PostgreSQL text cannot), so none matches
    rows = CalibrationCount.objects.filter(deployment_id=deployment_id, day__gte=since)
    if action_type:
        rows = rows.filter(action_type=action_type)
    return list(
        rows.values("action_type", "metric", "band")
        .annotate(n_sum=Sum("n"), c_sum=Sum("confidence_sum"), c_sq=Sum("confidence_sq"))
        .order_by()
    )


def calibration_evaluate(
    *, deployment: Deployment, action_type: str = "", days: int = DEFAULT_DAYS, now: datetime | None = None
) -> dict[str, Any]:
    """The calibration of the deployment (or one action type) over the last `days` days
    (today included): per kind its bands, ECE and Brier; per action type its n, ECE and Brier;
    and the candidate `auto_min_confidence`. Pure read: one grouped query over the counters."""
    days = max(1, min(int(days), MAX_DAYS))
    today = timezone.localdate(now or timezone.now())
    since = today - timedelta(days=days - 1)
    overall: dict[str, dict[int, _Cell]] = defaultdict(dict)
    per_type: dict[str, dict[str, dict[int, _Cell]]] = defaultdict(lambda: defaultdict(dict))
    for row in calibration_rows(deployment_id=deployment.pk, since=since, action_type=action_type):
        try:
            kind, good = OUTCOMES[Metric(row["metric"])]
        except KeyError:
            continue
        for cells in (overall[kind], per_type[row["action_type"]][kind]):
            cells.setdefault(row["band"], _Cell()).add(good, row["n_sum"], row["c_sum"] or 0.0, row["c_sq"] or 0.0)
    kinds = {kind: _kind_summary(overall.get(kind, {}), kind) for kind in KIND_LABELS}
    by_type = {}
    for atype in sorted(per_type):
        summaries = {kind: _kind_summary(cells, kind) for kind, cells in per_type[atype].items()}
        by_type[atype] = {
            kind: {k: s[k] for k in ("n", "rate", "mean_confidence", "ece", "brier")} for kind, s in summaries.items()
        }
    stage = Stage(deployment.effective_stage(action_type) if action_type else deployment.stage)
    return {
        "deployment": deployment.slug,
        "action_type": action_type or None,
        "stage": stage.value,
        "since": since.isoformat(),
        "days": days,
        "band_width": BAND_WIDTH,
        "primary": list(PRIMARY_KINDS[stage]),
        "kinds": kinds,
        "by_action_type": by_type,
        "candidate": _candidate(deployment, overall.get(REVIEW, {})),
    }
