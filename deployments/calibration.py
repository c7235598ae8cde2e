"""Calibration (issue 16 item 4, partly): does the model's confidence mean anything?

Per deployment (and action type), confidence in 0.05 bands against the observed
approved-unchanged rate of the proposals people decided (approve vs edit or reject), with n and
the Wilson 95 % interval; expected calibration error and Brier score; and the lowest
`auto_min_confidence` (a multiple of 0.05) whose bands above it all keep the Wilson upper bound
of changed-or-rejected under the 2→3 gate's `max_counterfactual_changed_upper`, offered to the
simulator. Read from the simulator's cells (`ReplayCount`, confidence in 0.01 bands), so it
costs the same whatever the history. Audit-correct and execution-success rates by confidence
(stages 3–4) are not counted by confidence yet, so they are not shown.
"""

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from deployments.gate import criteria_for
from deployments.models import Deployment, ReplayCount
from deployments.policy import Stage
from deployments.simulator import CONFIDENCE_BANDS, DEFAULT_DAYS
from deployments.stats import wilson_interval

BAND = 0.05
_PER_BAND = round(BAND * CONFIDENCE_BANDS)  # 0.01 cells per 0.05 band


def calibration(*, deployment: Deployment, action_type: str = "", days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """Reliability bands, ECE, Brier score and the candidate threshold. One query."""
    since = timezone.now().date() - timedelta(days=days - 1)
    qs = ReplayCount.objects.filter(deployment=deployment, day__gte=since, outcome__in=["approve", "edit", "reject"])
    if action_type:
        qs = qs.filter(action_type=action_type)
    cells = qs.values("confidence_band", "outcome").annotate(n=Sum("n")).order_by()
    bands: dict[int, dict[str, float]] = defaultdict(lambda: {"n": 0, "unchanged": 0, "confidence_sum": 0.0})
    brier_sum, total = 0.0, 0
    for cell in cells:
        confidence = (cell["confidence_band"] + 0.5) / CONFIDENCE_BANDS  # the 0.01 cell's middle
        band = bands[cell["confidence_band"] // _PER_BAND]
        n, unchanged = cell["n"], cell["outcome"] == "approve"
        band["n"] += n
        band["unchanged"] += n if unchanged else 0
        band["confidence_sum"] += confidence * n
        brier_sum += n * ((confidence - 1.0) ** 2 if unchanged else confidence**2)
        total += n
    rows, ece = [], 0.0
    for index in sorted(bands):
        b = bands[index]
        rate = b["unchanged"] / b["n"]
        mean_confidence = b["confidence_sum"] / b["n"]
        lower, upper = wilson_interval(int(b["unchanged"]), int(b["n"]))
        changed_upper = wilson_interval(int(b["n"] - b["unchanged"]), int(b["n"]))[1]
        ece += b["n"] / total * abs(rate - mean_confidence)
        rows.append(
            {
                "band": [round(index * BAND, 2), round((index + 1) * BAND, 2)],
                "n": int(b["n"]),
                "mean_confidence": round(mean_confidence, 4),
                "unchanged_rate": round(rate, 4),
                "lower": round(lower, 4),
                "upper": round(upper, 4),
                "changed_or_rejected_upper": round(changed_upper, 4),
            }
        )
    limit = criteria_for(deployment, Stage.SUPERVISED)["max_counterfactual_changed_upper"]
    candidate = None
    for row in reversed(rows):  # from the top band down, while every band above holds
        if row["changed_or_rejected_upper"] > limit:
            break
        candidate = row["band"][0]
    return {
        "since": since.isoformat(),
        "days": days,
        "action_type": action_type,
        "n": total,
        "bands": rows,
        "ece": round(ece, 4) if total else None,
        "brier": round(brier_sum / total, 4) if total else None,
        "max_changed_upper": limit,
        "candidate_auto_min_confidence": candidate,
    }
