"""Reads of shadow mode for the report pages: evidence from the counters, disagreements.

The evidence comes only from counters (`EvidenceCount` shadow.* metrics, the very numbers the
gate reads, and `ShadowTally` for model version and the confusion view), so its cost depends
on days × action types, never on the number of pairs.
"""

from collections import defaultdict
from datetime import date
from typing import Any

from django.db.models import Sum

from deployments.counters import Metric, counters_sum
from deployments.stats import wilson_interval
from reviews.models import ProposedAction
from reviews.shadow.models import ShadowOutcome, ShadowRecompute, ShadowTally
from reviews.shadow.services import AGREE, DISAGREE


def agreement(agree: int, n: int) -> dict[str, Any]:
    """{"n", "agree", "disagree", "rate", "lower", "upper"} with the Wilson 95% interval."""
    lower, upper = wilson_interval(agree, n)
    return {
        "n": n,
        "agree": agree,
        "disagree": n - agree,
        "rate": agree / n if n else None,
        "lower": lower,
        "upper": upper,
    }


def shadow_evidence(*, deployment_id: int, since: date | None = None) -> dict[str, Any]:
    """Agreement overall, by action type, by day and by model version, each with its Wilson
    95% interval and n; the confusion of AI against human action types; adjudication counts."""
    tally = ShadowTally.objects.filter(deployment_id=deployment_id)
    if since is not None:
        tally = tally.filter(day__gte=since)
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    adjudicated: dict[str, int] = defaultdict(int)
    sums = counters_sum(
        by=("day", "action_type"), deployment_id=deployment_id, since=since, metrics=Metric.of_kind("shadow")
    )
    for (day, action_type), counts in sums.items():
        for metric, n in counts.items():
            if metric in (AGREE, DISAGREE):
                i = 0 if metric == AGREE else 1
                by_type[action_type][i] += n
                by_day[day][i] += n
            else:  # shadow.adjudicated.<verdict>
                adjudicated[metric.removeprefix("shadow.adjudicated.")] += n
    by_version: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for row in (
        tally.values("model_version", "action_type", "human_action_type")
        .annotate(a=Sum("agree"), d=Sum("disagree"))
        .order_by()
    ):
        by_version[row["model_version"]][0] += row["a"]
        by_version[row["model_version"]][1] += row["d"]
        cells[(row["action_type"], row["human_action_type"])] += row["a"] + row["d"]
    agree_total = sum(a for a, _ in by_type.values())
    n_total = sum(a + d for a, d in by_type.values())
    ai_types = sorted({a for a, _ in cells})
    human_types = sorted({h for _, h in cells})
    return {
        "overall": agreement(agree_total, n_total),
        "by_action_type": {t: agreement(a, a + d) for t, (a, d) in sorted(by_type.items()) if a + d},
        "by_day": {day: agreement(a, a + d) for day, (a, d) in sorted(by_day.items()) if a + d},
        "by_model_version": {v: agreement(a, a + d) for v, (a, d) in sorted(by_version.items()) if a + d},
        "confusion": {
            "ai_types": ai_types,
            "human_types": human_types,
            "rows": [(t, [cells.get((t, h), 0) for h in human_types]) for t in ai_types],
        },
        "adjudicated": dict(adjudicated),
    }


def shadow_disagreements(
    *, deployment_id: int, before_id: int | None = None, open_only: bool = False, limit: int = 25
) -> list[ProposedAction]:
    """Compared pairs that disagreed, newest first, keyset-paged on id, each with `.outcome`
    (the human's) and its adjudication if any."""
    qs = (
        ProposedAction.objects.filter(deployment_id=deployment_id, status=ProposedAction.Status.COMPARED)
        .filter(comparison__agree=False)
        .select_related("shadow_adjudication__actor")
        .order_by("-id")
    )
    if before_id:
        qs = qs.filter(pk__lt=before_id)
    if open_only:
        qs = qs.filter(shadow_adjudication__isnull=True)
    actions = list(qs[:limit])
    outcomes = {
        o.external_id: o
        for o in ShadowOutcome.objects.filter(
            deployment_id=deployment_id, external_id__in={a.external_id for a in actions}
        )
    }
    for a in actions:
        a.outcome = outcomes.get(a.external_id)
        a.adjudication = getattr(a, "shadow_adjudication", None)  # missing: RelatedObjectDoesNotExist
    return actions


def shadow_recompute_latest(*, deployment_id: int) -> ShadowRecompute | None:
    return ShadowRecompute.objects.filter(deployment_id=deployment_id).order_by("-created_at", "-id").first()


def shadow_pending_counts(*, deployment_id: int) -> dict[str, int]:
    """Logged shadow actions (waiting for an outcome or a worker) and outcomes received."""
    return {
        "logged": ProposedAction.objects.filter(
            deployment_id=deployment_id, route="shadow", status=ProposedAction.Status.LOGGED
        ).count(),
        "outcomes": ShadowOutcome.objects.filter(deployment_id=deployment_id).count(),
    }
