"""The gate's evidence about the humans (issue 17): blind agreement and the human baseline
from double review, read from the same window counters as the rest of the gate.

`human_evidence` is what the gate page and the evidence API show (at every stage, whenever
there is any); `deployments.gate._human_criteria` turns it into the 2→3 criteria a deployment
can switch on, each off by default (deployments/validators.py):

- `min_blind_agreement` > 0: at least `min_blind_samples` blind answers, and the 95% Wilson
  lower bound of their agreement with the AI ≥ `min_blind_agreement`;
- `min_double_reviews` > 0: at least that many double-reviewed actions, and the AI–human
  agreement on them ≥ the human–human agreement − `human_baseline_margin` (point rates; the
  intervals are shown beside them).

Formulas (Cohen's kappa included): docs/gate.md.
"""

from typing import Any

from deployments.counters import Counts, Metric
from deployments.stats import cohen_kappa, wilson_interval

M = Metric


def _rate(successes: int, n: int) -> dict[str, Any]:
    lower, upper = wilson_interval(successes, n)
    return {
        "n": n,
        "agree": successes,
        "rate": round(successes / n, 6) if n else None,
        "lower": round(lower, 6) if lower is not None else None,
        "upper": round(upper, 6) if upper is not None else None,
    }


def _kappa(table: list[list[int]]) -> dict[str, float | None]:
    kappa, lower, upper = cohen_kappa(table)
    return {
        "kappa": round(kappa, 6) if kappa is not None else None,
        "lower": round(lower, 6) if lower is not None else None,
        "upper": round(upper, 6) if upper is not None else None,
    }


def human_evidence(counts: Counts) -> dict[str, Any]:
    """{"blind": rate, "double": {"pairs", "human_human", "ai_human", kappas}} of the window."""
    pairs = counts[M.DOUBLE_HH_SAME] + counts[M.DOUBLE_HH_DIFFER]
    ai_agree = counts[M.DOUBLE_AI_AUTO_AGREE] + counts[M.DOUBLE_AI_HOLD_AGREE]
    ai_votes = ai_agree + counts[M.DOUBLE_AI_AUTO_CHANGE] + counts[M.DOUBLE_AI_HOLD_CHANGE]
    return {
        "blind": _rate(counts[M.BLIND_AGREE], counts[M.BLIND_AGREE] + counts[M.BLIND_DISAGREE]),
        "double": {
            "pairs": pairs,
            # The two people's answers match (comparison rules).
            "human_human": _rate(counts[M.DOUBLE_HH_SAME], pairs),
            # A person's answer matches the AI's proposal: two votes per pair.
            "ai_human": _rate(ai_agree, ai_votes),
            # Rater 1 vs rater 2, each "agree with the AI" or "change it".
            "human_human_kappa": _kappa(
                [
                    [counts[M.DOUBLE_HH_AGREE_AGREE], counts[M.DOUBLE_HH_AGREE_CHANGE]],
                    [counts[M.DOUBLE_HH_CHANGE_AGREE], counts[M.DOUBLE_HH_CHANGE_CHANGE]],
                ]
            ),
            # The AI's own call (stage 3 would auto-execute: "auto") vs the person's.
            "ai_human_kappa": _kappa(
                [
                    [counts[M.DOUBLE_AI_AUTO_AGREE], counts[M.DOUBLE_AI_AUTO_CHANGE]],
                    [counts[M.DOUBLE_AI_HOLD_AGREE], counts[M.DOUBLE_AI_HOLD_CHANGE]],
                ]
            ),
        },
    }
