"""The evidence counters, in one home: their names (`Metric`), the one way to add to them
(`counters_add` of `CounterDelta`s), the folds, and the one reader that sums them
(`counters_sum`). The gate, the breakers, the dashboards, shadow mode and `/metrics` read only
these counters, so their cost does not grow with history.

| metric | written when | `total` holds |
|---|---|---|
| `proposed.<route>` | an action is proposed (route shadow/auto/review/senior) | |
| `decision.<verb>` | a person decides (approve, edit, reject, escalate) or the clock expires it | seconds to decide |
| `sla.within` / `sla.breached` | a pending action is approved or rejected, inside or past its SLA | |
| `counterfactual.auto` | an approval-stage action that stage 3 would have auto-executed is decided | |
| `counterfactual.auto_changed` | ... and the human edited or rejected it | |
| `execution.<executed|failed>.<route>` | the agent reports a result (or reconciles an unknown one as committed) | |
| `lifecycle.<event>` | issue 15 (no gate reads them): claimed, unknown, not_committed, cancelled, deadline | |
| `shadow.agree` / `shadow.disagree` | a shadow action is compared with the human outcome (see below) | |
| `shadow.adjudicated.<verdict>` | a reviewer adjudicates a shadow disagreement (informational) | |
| `audit.correct` / `audit.incorrect` | a senior gives an audit verdict on an auto-executed sample | seconds to decide |
| `breaker.tripped` | the circuit breaker trips (action type `DEPLOYMENT_WIDE`) | |
| `blind.agree` / `blind.disagree` | a blind answer is recorded; it matches the proposal or not | seconds to answer |
| `double.hh.same` / `double.hh.differ` | a double review's second decision: the two answers match or not | |
| `double.hh.<first>_<second>` | the same: each person `agree`d with the AI or `change`d it (kappa's 2×2) | |
| `double.ai.<ai>_<human>` | the same, per person: the AI's call (`auto`/`hold`) × the person's | |

(The humans' metrics: reviews/humans/blind.py and double.py; `auto` means stage 3 would
auto-execute the action.) `ttd.lt<N>` / `ttd.ge300` are counted per reviewer only
(`ReviewerCount`, deployments/reviewers.py): a decision taken in under N seconds.

Shadow counters count *effective* agreement, on the day the action was proposed: a
disagreement adjudicated "AI right" or "both acceptable" moves one count from
`shadow.disagree` to `shadow.agree`, and a recompute under new rules moves the counts whose
verdict changed, so agree + disagree always equals the compared pairs. The verdicts are
`ai_right`, `human_right`, `both_acceptable` (reviews/shadow/services.py).

A name that is no `Metric` is an error (`UnknownMetric`) where it is written and where it is
read, so a typo fails loudly instead of reading as a silent zero.

Three tables hold them: `EvidenceCount` per day and action type, `BreakerCount` per minute
for the few metrics the breakers watch (`BREAKER_METRICS`), and `CalibrationCount`, the
outcome metrics split by confidence band (deployments.calibration builds its deltas). All are sharded (a writer picks
one of SHARDS rows at random, so concurrent writers rarely wait on one row) and folded once
their day or minute is over (`evidence_counts_fold`, `breaker_counts_fold`,
`calibration_counts_fold`).
"""

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, overload

from django.db import connection, transaction
from django.db.models import Model, Q, Sum
from django.utils import timezone

from deployments.models import BreakerCount, CalibrationCount, EvidenceCount, ReplayCount, ReviewerCount
from deployments.sql import counter_upsert_tail

DEPLOYMENT_WIDE = ""  # action_type of counters about the whole deployment


class UnknownMetric(ValueError):
    """A counter name that no `Metric` member holds."""


class Metric(StrEnum):
    """Every evidence counter's name (`EvidenceCount.metric`, `BreakerCount.metric`)."""

    PROPOSED_SHADOW = "proposed.shadow"
    PROPOSED_AUTO = "proposed.auto"
    PROPOSED_REVIEW = "proposed.review"
    PROPOSED_SENIOR = "proposed.senior"
    DECISION_APPROVE = "decision.approve"
    DECISION_EDIT = "decision.edit"
    DECISION_REJECT = "decision.reject"
    DECISION_ESCALATE = "decision.escalate"
    DECISION_EXPIRE = "decision.expire"
    # Moved to the senior queue by the clock (reviews/escalation.py), not by a person.
    ESCALATION_AUTO = "escalation.auto"
    SLA_WITHIN = "sla.within"
    SLA_BREACHED = "sla.breached"
    COUNTERFACTUAL_AUTO = "counterfactual.auto"
    COUNTERFACTUAL_AUTO_CHANGED = "counterfactual.auto_changed"
    EXECUTION_EXECUTED_AUTO = "execution.executed.auto"
    EXECUTION_EXECUTED_REVIEW = "execution.executed.review"
    EXECUTION_EXECUTED_SENIOR = "execution.executed.senior"
    EXECUTION_FAILED_AUTO = "execution.failed.auto"
    EXECUTION_FAILED_REVIEW = "execution.failed.review"
    EXECUTION_FAILED_SENIOR = "execution.failed.senior"
    SHADOW_AGREE = "shadow.agree"
    SHADOW_DISAGREE = "shadow.disagree"
    SHADOW_ADJUDICATED_AI_RIGHT = "shadow.adjudicated.ai_right"
    SHADOW_ADJUDICATED_HUMAN_RIGHT = "shadow.adjudicated.human_right"
    SHADOW_ADJUDICATED_BOTH_ACCEPTABLE = "shadow.adjudicated.both_acceptable"
    AUDIT_CORRECT = "audit.correct"
    AUDIT_INCORRECT = "audit.incorrect"
    BREAKER_TRIPPED = "breaker.tripped"
    # Issue 15, informational (no gate or breaker reads them).
    LIFECYCLE_CLAIMED = "lifecycle.claimed"
    LIFECYCLE_UNKNOWN = "lifecycle.unknown"
    LIFECYCLE_NOT_COMMITTED = "lifecycle.not_committed"
    LIFECYCLE_CANCELLED = "lifecycle.cancelled"
    LIFECYCLE_DEADLINE = "lifecycle.deadline"
    # Measuring the humans (reviews/humans; see the table above).
    BLIND_AGREE = "blind.agree"
    BLIND_DISAGREE = "blind.disagree"
    DOUBLE_HH_SAME = "double.hh.same"
    DOUBLE_HH_DIFFER = "double.hh.differ"
    DOUBLE_HH_AGREE_AGREE = "double.hh.agree_agree"
    DOUBLE_HH_AGREE_CHANGE = "double.hh.agree_change"
    DOUBLE_HH_CHANGE_AGREE = "double.hh.change_agree"
    DOUBLE_HH_CHANGE_CHANGE = "double.hh.change_change"
    DOUBLE_AI_AUTO_AGREE = "double.ai.auto_agree"
    DOUBLE_AI_AUTO_CHANGE = "double.ai.auto_change"
    DOUBLE_AI_HOLD_AGREE = "double.ai.hold_agree"
    DOUBLE_AI_HOLD_CHANGE = "double.ai.hold_change"
    # Per reviewer only (ReviewerCount): a decision's time-to-decide bucket (upper edge, seconds).
    TTD_LT5 = "ttd.lt5"
    TTD_LT10 = "ttd.lt10"
    TTD_LT30 = "ttd.lt30"
    TTD_LT60 = "ttd.lt60"
    TTD_LT300 = "ttd.lt300"
    TTD_GE300 = "ttd.ge300"
    # Per reviewer only: a fire drill (known-bad sample) rejected or escalated, or approved.
    DRILL_CAUGHT = "drill.caught"
    DRILL_MISSED = "drill.missed"

    @classmethod
    def _missing_(cls, value: object) -> "Metric":
        raise UnknownMetric(f"{value!r} is not an evidence metric (deployments.counters.Metric)")

    @classmethod
    def of(cls, *parts: str) -> "Metric":
        """The metric named by its dotted parts: `Metric.of("decision", verb)`."""
        return cls(".".join(parts))

    @property
    def kind(self) -> str:
        """The first part of the name: proposed, decision, execution, shadow, audit, ..."""
        return self.value.partition(".")[0]

    @property
    def rest(self) -> str:
        """The name after its kind: the route, verb, "status.route" or verdict."""
        return self.value.partition(".")[2]

    @classmethod
    def of_kind(cls, kind: str) -> list["Metric"]:
        return [m for m in cls if m.kind == kind]


# The metrics also counted per minute, for the circuit breakers' sliding windows.
BREAKER_METRICS = frozenset(
    {
        Metric.PROPOSED_AUTO,
        Metric.EXECUTION_EXECUTED_AUTO,
        Metric.EXECUTION_FAILED_AUTO,
        Metric.AUDIT_CORRECT,
        Metric.AUDIT_INCORRECT,
    }
)


def minute_of(moment: datetime) -> datetime:
    """The breaker bucket a moment falls in."""
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class CounterTable:
    """A sharded counter table: its key columns (without the shard), the amounts it adds up,
    and the column its time windows are read on."""

    model: type[Model]
    keys: tuple[str, ...]
    values: tuple[str, ...]
    time: str


EVIDENCE = CounterTable(EvidenceCount, ("deployment_id", "day", "action_type", "metric"), ("n", "total"), "day")
BREAKER = CounterTable(BreakerCount, ("deployment_id", "minute", "metric"), ("n",), "minute")
CALIBRATION = CounterTable(
    CalibrationCount,
    ("deployment_id", "day", "action_type", "metric", "band"),
    ("n", "confidence_sum", "confidence_sq"),
    "day",
)
# A reviewer's own counters (deployments.reviewers), not sharded: one reviewer decides one
# item at a time.
REVIEWER = CounterTable(ReviewerCount, ("deployment_id", "user_id", "day", "metric"), ("n", "total"), "day")
# The simulator's cells (deployments.simulator): one per decided proposal.
REPLAY = CounterTable(
    ReplayCount,
    ("deployment_id", "day", "action_type", "risk_band", "confidence_band", "needs_human", "outcome"),
    ("n", "seconds"),
    "day",
)
_TABLES = {table.model: table for table in (EVIDENCE, BREAKER, CALIBRATION, REVIEWER, REPLAY)}

Statement = tuple[str, Sequence[Any]]


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterDelta:
    """What to add to one row of a sharded counter table (EvidenceCount, BreakerCount).
    Built by `evidence_deltas`; an unknown metric raises UnknownMetric here."""

    model: type[EvidenceCount] | type[BreakerCount] | type[CalibrationCount] | type[ReviewerCount] | type[ReplayCount]
    key: dict[str, Any]  # column: value, the row's identity (without the shard)
    add: dict[str, int | float]  # column: amount to add

    def __post_init__(self) -> None:
        if "metric" in self.key:  # the simulator's cells have none
            self.key["metric"] = Metric(self.key["metric"])


def evidence_deltas(
    *,
    deployment_id: int,
    action_type: str,
    metric: Metric,
    n: int = 1,
    total: float = 0.0,
    day: date | None = None,
    at: datetime | None = None,
) -> list[CounterDelta]:
    """The counter rows one piece of evidence adds to: its day's evidence counter and, for a
    live event (no `day` given; it happens `at`, by default now) of a metric the circuit
    breakers watch, the breaker's minute. Raises UnknownMetric for a name no Metric holds."""
    metric = Metric(metric)
    if day is None:
        at = at or timezone.now()
    key = {"deployment_id": deployment_id, "day": day or at.date(), "action_type": action_type}
    deltas = [CounterDelta(EvidenceCount, key | {"metric": metric}, {"n": n, "total": total})]
    if day is None and metric in BREAKER_METRICS:
        # Raw SQL: the datetime is adapted as the ORM would store it (naive UTC text on SQLite).
        minute = connection.ops.adapt_datetimefield_value(minute_of(at))
        deltas.append(
            CounterDelta(BreakerCount, {"deployment_id": deployment_id, "minute": minute, "metric": metric}, {"n": n})
        )
    return deltas


def counters_add(deltas: Iterable[CounterDelta], *, also: Sequence[Statement] = ()) -> None:
    """Add `deltas` to their counter rows, in the caller's transaction: equal rows summed
    first, then one upsert per table. The one way counters are written; the agent API's
    ingest statement writes the same deltas inside its own.

    `also`: further statements (SQL, parameters) of the same event, e.g. a reviewer's streak.
    On PostgreSQL the upserts and `also` reach the database as ONE statement (data-modifying
    CTEs, each a different table, so no row is touched twice); elsewhere one statement each.
    """
    per_table: dict[type, dict[tuple, list]] = defaultdict(dict)
    for delta in deltas:
        table = _TABLES[delta.model]
        rows = per_table[delta.model]
        key = tuple(delta.key[k] for k in table.keys)
        amounts = rows.setdefault(key, [0] * len(table.values))
        for i, column in enumerate(table.values):
            amounts[i] += delta.add.get(column, 0)
    statements = [
        statement
        for model, rows in per_table.items()
        if (
            statement := _upsert_statement(
                model=model,
                keys=_TABLES[model].keys,
                values=_TABLES[model].values,
                rows={key: tuple(amounts) for key, amounts in rows.items()},
                shards=getattr(model, "SHARDS", 1),
            )
        )
    ]
    _execute_together([*statements, *also])


def _execute_together(statements: Sequence[Statement]) -> None:
    if not statements:
        return
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql" or len(statements) == 1:
            for sql, params in statements:
                cursor.execute(sql, params)
            return
        *first, (last_sql, _) = statements
        ctes = ", ".join(f"c{i} AS ({sql})" for i, (sql, _) in enumerate(first))
        cursor.execute(f"WITH {ctes} {last_sql}", [p for _, params in statements for p in params])


def evidence_add(**fields: Any) -> None:
    """`counters_add(evidence_deltas(...))` (its fields, without `at`): add `n` (and `total`)
    to one evidence counter (and, live, the breaker's minute), in the caller's transaction.
    `n` may be negative (a recompute or an adjudication moves a count from one metric to
    another)."""
    counters_add(evidence_deltas(**fields))


def counters_add_many(
    *, model: type, keys: Sequence[str], values: Sequence[str], rows: dict[tuple, Sequence[int]], shards: int
) -> None:
    """Add `rows` ({key tuple: value deltas}) to a sharded counter table in ONE statement, in
    the caller's transaction: INSERT ... ON CONFLICT (keys, shard) DO UPDATE SET v = v + excluded.v.
    The statement beneath the folds and shadow mode's `ShadowTally` (`counters_add` builds the
    same statement, `_upsert_statement`).

    Rows are written in key order on one random shard, so concurrent batches never deadlock
    and rarely wait for each other. All-zero rows are skipped. A `metric` key must be a Metric.
    """
    statement = _upsert_statement(model=model, keys=keys, values=values, rows=rows, shards=shards)
    if statement:
        _execute_together([statement])


def _upsert_statement(
    *, model: type, keys: Sequence[str], values: Sequence[str], rows: dict[tuple, Sequence[int]], shards: int
) -> Statement | None:
    items = sorted((key, deltas) for key, deltas in rows.items() if any(deltas))
    if not items:
        return None
    if "metric" in keys:
        at = list(keys).index("metric")
        for key, _ in items:
            Metric(key[at])
    table = model._meta.db_table
    shard = random.randrange(shards)
    columns = [*keys, "shard", *values]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params: list = []
    for key, deltas in items:
        params += [*key, shard, *deltas]
    sql = f"""
        INSERT INTO {table} ({", ".join(columns)})
        VALUES {", ".join([row_sql] * len(items))}
        {counter_upsert_tail(table, keys, values)}
    """  # noqa: S608 -- table and column names are ours, every value is a parameter
    return sql, params


# ---------------------------------------------------------------------------------------
# Folding and purging
# ---------------------------------------------------------------------------------------


def evidence_counts_fold(*, before: date, batch: int = 2000) -> int:
    """Fold the shards of every evidence counter of a day before `before` into its shard 0, so
    that a reader of a long window sums one row per (day, type, metric), not EvidenceCount.SHARDS.
    Returns the number of rows folded away; see `_counters_fold`."""
    return _counters_fold(EVIDENCE, {"day__lt": before}, batch)


def calibration_counts_fold(*, before: date, batch: int = 2000) -> int:
    """Fold the shards of every calibration counter of a day before `before` into its shard 0."""
    return _counters_fold(CALIBRATION, {"day__lt": before}, batch)


def breaker_counts_fold(*, before: datetime, batch: int = 2000) -> int:
    """Fold the shards of every breaker minute before `before` into its shard 0: a breaker's
    day-long baseline then sums one row per minute and metric, not BreakerCount.SHARDS."""
    return _counters_fold(BREAKER, {"minute__lt": before}, batch)


def breaker_counts_purge(*, older_than: datetime) -> int:
    """Delete the breaker minutes no window reads any more. Safe to repeat."""
    deleted, _ = BreakerCount.objects.filter(minute__lt=older_than).delete()
    return deleted


def _counters_fold(table: CounterTable, past: dict, batch: int) -> int:
    """Fold the rows of a sharded counter table that match `past` into shard 0 of their key.

    Their writers are done by then (a late one adds to a shard again; the next fold takes it).
    Each batch is one transaction: its shard rows locked in key order, deleted, and their sums
    added to shard 0, so the totals every reader sees never change. Safe to repeat."""
    model, keys, values = table.model, table.keys, table.values
    # Keys as the database stores them (a datetime on SQLite: its naive UTC text), for the upsert.
    fields = [model._meta.get_field(name) for name in keys]
    folded = 0
    while True:
        with transaction.atomic():
            rows = list(
                model.objects.select_for_update()
                .filter(shard__gt=0, **past)
                .order_by(*keys, "shard")
                .values_list("pk", *keys, *values)[:batch]
            )
            if not rows:
                return folded
            sums: dict[tuple, list] = defaultdict(lambda: [0] * len(values))
            for row in rows:
                key = row[1 : 1 + len(keys)]
                amounts = sums[tuple(f.get_db_prep_value(v, connection) for f, v in zip(fields, key, strict=True))]
                for i, amount in enumerate(row[1 + len(keys) :]):
                    amounts[i] += amount
            model.objects.filter(pk__in=[row[0] for row in rows]).delete()
            counters_add_many(
                model=model,
                keys=keys,
                values=values,
                rows={key: tuple(amounts) for key, amounts in sums.items()},
                shards=1,  # shard 0
            )
        folded += len(rows)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


class Counts:
    """Summed counters by metric. `counts[Metric.X]` is 0 where nothing was counted; a name
    that is no Metric raises UnknownMetric (no silent zero for a typo)."""

    __slots__ = ("n", "totals")

    def __init__(self, n: dict[Metric, int] | None = None, totals: dict[Metric, float] | None = None) -> None:
        self.n: dict[Metric, int] = n if n is not None else {}
        self.totals: dict[Metric, float] = totals if totals is not None else {}

    def __getitem__(self, metric: Metric) -> int:
        return self.n.get(Metric(metric), 0)

    def total(self, metric: Metric) -> float:
        """The summed `total` (e.g. seconds to decide); read with `counters_sum(totals=True)`."""
        return self.totals.get(Metric(metric), 0.0)

    def sum(self, metrics: Iterable[Metric]) -> int:
        return sum(self[m] for m in metrics)

    def items(self) -> Iterable[tuple[Metric, int]]:
        return self.n.items()

    def add(self, other: "Counts") -> None:
        for metric, n in other.n.items():
            self.n[metric] = self.n.get(metric, 0) + n
        for metric, total in other.totals.items():
            self.totals[metric] = self.totals.get(metric, 0.0) + total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counts) and self.n == other.n and self.totals == other.totals

    def __repr__(self) -> str:
        return f"Counts({dict(self.n)!r})"


@overload
def counters_sum(table: CounterTable = ..., *, by: None = None, **filters: Any) -> Counts: ...
@overload
def counters_sum(table: CounterTable = ..., *, by: str, **filters: Any) -> dict[Any, Counts]: ...
@overload
def counters_sum(table: CounterTable = ..., *, by: tuple[str, ...], **filters: Any) -> dict[tuple, Counts]: ...


def counters_sum(
    table: CounterTable = EVIDENCE,
    *,
    by: str | tuple[str, ...] | None = None,
    deployment_id: int | None = None,
    deployment_ids: Iterable[int] | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    metrics: Iterable[Metric] | None = None,
    totals: bool = False,
) -> Counts | dict[Any, Counts]:
    """The counters of `table` summed over shards and time, in one grouped query: the one
    reader of the counters (gate, breakers, dashboards, shadow report, /metrics).

    Rows with `since <= time < until` (the table's day or minute), of one deployment or of
    several, of the given `metrics` only (each must be a Metric). `by` names the columns to
    group on (besides the metric): a column gives {value: Counts}, a tuple {(values): Counts};
    None sums everything into one Counts. `totals=True` also sums the `total` column.
    Raises UnknownMetric for a name no Metric holds, asked for or found stored.
    """
    group = () if by is None else (by,) if isinstance(by, str) else tuple(by)
    condition = Q()
    if deployment_id is not None:
        condition &= Q(deployment_id=deployment_id)
    if deployment_ids is not None:
        condition &= Q(deployment_id__in=list(deployment_ids))
    if since is not None:
        condition &= Q(**{f"{table.time}__gte": since})
    if until is not None:
        condition &= Q(**{f"{table.time}__lt": until})
    if metrics is not None:
        condition &= Q(metric__in=[Metric(m) for m in metrics])
    sums = {"n_sum": Sum("n")} | ({"total_sum": Sum("total")} if totals else {})
    rows = table.model.objects.filter(condition).values(*group, "metric").annotate(**sums).order_by()
    result: dict[Any, Counts] = defaultdict(Counts)
    for row in rows:
        key = tuple(row[column] for column in group)
        counts = result[key[0] if isinstance(by, str) else key]
        metric = Metric(row["metric"])
        counts.n[metric] = counts.n.get(metric, 0) + row["n_sum"]
        if totals:
            counts.totals[metric] = counts.totals.get(metric, 0.0) + (row["total_sum"] or 0.0)
    if by is None:
        return result.get((), Counts())
    return dict(result)
