"""Reviewer quality (issue 17 item 3): per reviewer counters, written in the transaction of
each decision, and the page's rows and rubber-stamp flags, read from them (never a scan of
decisions).

Written per (deployment, reviewer, day) in `ReviewerCount`:

| metric | when | `total` |
|---|---|---|
| `decision.<approve|edit|reject|escalate>` | the reviewer decides | seconds to decide |
| `ttd.lt5` … `ttd.ge300` | the same decision, in its time bucket (TIME_BUCKETS) | |
| `blind.agree` / `blind.disagree` | the reviewer's blind answer matches the AI or not | |
| `double.hh.same` / `double.hh.differ` | a double-review pair the reviewer was in settles | |
| `drill.caught` / `drill.missed` | the reviewer rejects or escalates / approves a fire drill | |

and `ReviewerStreak`: the reviewer's current and longest run of approvals without an edit or
reject (all time). Flags (thresholds in DEFAULT_REVIEWER_FLAGS, overridden per deployment in
`Deployment.reviewer_flags`) apply once a reviewer has `min_decisions` in the window:

- `fast`: more than `max_fast_share` of decisions taken in under `fast_seconds`;
- `streak`: a run of at least `max_approve_streak` approvals without a change;
- `never_changes`: edits + rejects below `min_change_rate` of decisions;
- `partners`: with ≥ `min_pairs` double-review pairs, agreeing with the partner below
  `min_partner_agreement`;
- `blind`: with ≥ `min_pairs` blind answers, agreeing with the AI below `min_blind_agreement`.
"""

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Sum

from deployments.counters import CounterDelta, Metric, Statement, counters_add, counters_add_many
from deployments.models import Deployment, ReviewerCount, ReviewerStreak
from deployments.stats import wilson_interval
from deployments.validators import DEFAULT_REVIEWER_FLAGS, TIME_BUCKETS

BUCKETS = [Metric.TTD_LT5, Metric.TTD_LT10, Metric.TTD_LT30, Metric.TTD_LT60, Metric.TTD_LT300, Metric.TTD_GE300]
DECISION_VERBS = ("approve", "edit", "reject", "escalate")
KEYS = ("deployment_id", "user_id", "day", "metric")


def time_bucket(seconds: float) -> Metric:
    """The ttd.* bucket of a decision that took `seconds` (under 5 s, under 10 s, …)."""
    return BUCKETS[bisect_right(TIME_BUCKETS, seconds)]


def reviewer_counts_add(
    *, deployment_id: int, user_id: int, day: date, metrics: dict[Metric, tuple[int, float]]
) -> None:
    """Add `metrics` ({metric: (n, total)}) to the reviewer's counters of `day`, in the
    caller's transaction, in one statement."""
    counters_add_many(
        model=ReviewerCount,
        keys=KEYS,
        values=("n", "total"),
        rows={(deployment_id, user_id, day, Metric(m)): amounts for m, amounts in metrics.items()},
        shards=1,
    )


def reviewer_decision_counters(
    *, deployment_id: int, user_id: int, verb: str, seconds: float, day: date
) -> tuple[list[CounterDelta], list[Statement]]:
    """What a reviewer's decision (approve, edit, reject or escalate) adds: its two counters
    and, for a judgement (not an escalation, which neither grows nor breaks it), the approve
    streak's upsert. For `counters_add(deltas, also=statements)` in the decision's transaction,
    with the decision's other counters (one statement on PostgreSQL)."""
    key = {"deployment_id": deployment_id, "user_id": user_id, "day": day}
    deltas = [
        CounterDelta(ReviewerCount, key | {"metric": Metric.of("decision", verb)}, {"n": 1, "total": seconds}),
        CounterDelta(ReviewerCount, key | {"metric": time_bucket(seconds)}, {"n": 1}),
    ]
    if verb == "escalate":
        return deltas, []
    approve = verb == "approve"
    streak = ReviewerStreak._meta.db_table
    upsert = f"""
        INSERT INTO {streak} (deployment_id, user_id, current, longest) VALUES (%s, %s, %s, %s)
        ON CONFLICT (deployment_id, user_id) DO UPDATE SET
          current = CASE WHEN %s THEN {streak}.current + 1 ELSE 0 END,
          longest = CASE WHEN %s AND {streak}.current + 1 > {streak}.longest
                         THEN {streak}.current + 1 ELSE {streak}.longest END
    """  # noqa: S608 -- the table name is ours; every value is a parameter
    return deltas, [(upsert, [deployment_id, user_id, int(approve), int(approve), approve, approve])]


def reviewer_decision_record(*, deployment_id: int, user_id: int, verb: str, seconds: float, day: date) -> None:
    """`reviewer_decision_counters`, written now, in the caller's transaction."""
    deltas, statements = reviewer_decision_counters(
        deployment_id=deployment_id, user_id=user_id, verb=verb, seconds=seconds, day=day
    )
    counters_add(deltas, also=statements)


def reviewer_flags_for(deployment: Deployment) -> dict[str, float]:
    return DEFAULT_REVIEWER_FLAGS | (deployment.reviewer_flags or {})


@dataclass
class ReviewerRow:
    """One reviewer's line on the quality page."""

    user_id: int
    username: str
    n: dict[str, int] = field(default_factory=dict)  # metric -> count
    seconds: float = 0.0  # summed seconds to decide (final and escalations)
    longest_streak: int = 0
    current_streak: int = 0
    flags: list[str] = field(default_factory=list)
    share_under_fast: float | None = None  # share decided in under the deployment's fast_seconds

    def count(self, metric: Metric) -> int:
        return self.n.get(Metric(metric), 0)

    @property
    def decisions(self) -> int:
        return sum(self.count(Metric.of("decision", v)) for v in DECISION_VERBS)

    @property
    def judged(self) -> int:
        """Approve, edit and reject: decisions that judge the proposal."""
        return self.decisions - self.count(Metric.DECISION_ESCALATE)

    def rate(self, metric: Metric, of: int | None = None) -> float | None:
        n = self.judged if of is None else of
        return self.count(metric) / n if n else None

    @property
    def edit_rate(self) -> float | None:
        return self.rate(Metric.DECISION_EDIT)

    @property
    def reject_rate(self) -> float | None:
        return self.rate(Metric.DECISION_REJECT)

    @property
    def mean_seconds(self) -> float | None:
        return self.seconds / self.decisions if self.decisions else None

    @property
    def distribution(self) -> list[tuple[str, int, float]]:
        """(bucket label, count, share) in bucket order."""
        labels = [f"< {edge} s" for edge in TIME_BUCKETS] + [f"≥ {TIME_BUCKETS[-1]} s"]
        total = sum(self.count(b) for b in BUCKETS)
        return [
            (label, self.count(b), self.count(b) / total if total else 0.0)
            for label, b in zip(labels, BUCKETS, strict=True)
        ]

    def share_under(self, seconds: float) -> float | None:
        total = sum(self.count(b) for b in BUCKETS)
        under = sum(self.count(b) for b, edge in zip(BUCKETS, TIME_BUCKETS, strict=False) if edge <= seconds)
        return under / total if total else None

    def agreement(self, agree: Metric, disagree: Metric) -> dict[str, Any]:
        k, n = self.count(agree), self.count(agree) + self.count(disagree)
        lower, upper = wilson_interval(k, n)
        return {"n": n, "rate": k / n if n else None, "lower": lower, "upper": upper}

    @property
    def partners(self) -> dict[str, Any]:
        return self.agreement(Metric.DOUBLE_HH_SAME, Metric.DOUBLE_HH_DIFFER)

    @property
    def blind(self) -> dict[str, Any]:
        return self.agreement(Metric.BLIND_AGREE, Metric.BLIND_DISAGREE)

    @property
    def drills(self) -> dict[str, Any]:
        """Fire drills caught (rejected or escalated) of those decided."""
        return self.agreement(Metric.DRILL_CAUGHT, Metric.DRILL_MISSED)


def reviewer_rows(*, deployment: Deployment, since: date) -> list[ReviewerRow]:
    """Every reviewer with counters on `deployment` since `since`, with their flags: one
    grouped query over ReviewerCount, one over the streaks, one for the names."""
    sums = (
        ReviewerCount.objects.filter(deployment=deployment, day__gte=since)
        .values("user_id", "metric")
        .annotate(n_sum=Sum("n"), total_sum=Sum("total"))
        .order_by()
    )
    rows: dict[int, ReviewerRow] = {}
    for r in sums:
        row = rows.setdefault(r["user_id"], ReviewerRow(user_id=r["user_id"], username=""))
        metric = Metric(r["metric"])
        row.n[metric] = row.n.get(metric, 0) + r["n_sum"]
        if metric.kind == "decision":
            row.seconds += r["total_sum"] or 0.0
    streaks = ReviewerStreak.objects.filter(deployment=deployment, user_id__in=list(rows)).values_list(
        "user_id", "current", "longest"
    )
    for user_id, current, longest in streaks:
        rows[user_id].current_streak, rows[user_id].longest_streak = current, longest
    names = dict(get_user_model().objects.filter(pk__in=list(rows)).values_list("pk", "username"))
    limits = reviewer_flags_for(deployment)
    for row in rows.values():
        row.username = names.get(row.user_id, f"#{row.user_id}")
        row.share_under_fast = row.share_under(limits["fast_seconds"])
        row.flags = _flags(row, limits)
    return sorted(rows.values(), key=lambda r: (-len(r.flags), r.username))


def _flags(row: ReviewerRow, v: dict[str, float]) -> list[str]:
    if row.decisions < v["min_decisions"]:
        return []
    flags = []
    fast = row.share_under(v["fast_seconds"])
    if fast is not None and fast > v["max_fast_share"]:
        flags.append("fast")
    if row.longest_streak >= v["max_approve_streak"]:
        flags.append("streak")
    changed = row.rate(Metric.DECISION_EDIT) or 0.0
    changed += row.rate(Metric.DECISION_REJECT) or 0.0
    if row.judged and changed < v["min_change_rate"]:
        flags.append("never_changes")
    partners = row.partners
    if partners["n"] >= v["min_pairs"] and partners["rate"] < v["min_partner_agreement"]:
        flags.append("partners")
    blind = row.blind
    if blind["n"] >= v["min_pairs"] and blind["rate"] < v["min_blind_agreement"]:
        flags.append("blind")
    return flags


def flagged_decisions(*, deployment: Deployment, since: date) -> dict[str, Any]:
    """The flagged reviewers' share of the 2→3 decision evidence since `since`: their names
    and their approve / edit / reject counts (the gate shows them apart and can leave them out)."""
    flagged = [r for r in reviewer_rows(deployment=deployment, since=since) if r.flags]
    totals = defaultdict(int)
    for row in flagged:
        for verb in ("approve", "edit", "reject"):
            totals[verb] += row.count(Metric.of("decision", verb))
    return {"reviewers": [r.username for r in flagged], **{v: totals[v] for v in ("approve", "edit", "reject")}}
