"""Replay before you change (issue 16 item 2): what the last N days of decided proposals would
have done under candidate thresholds, next to what the current ones did.

Input: `ReplayCount` cells (risk band × confidence band × needs_human × outcome, per day and
action type), written in each decision's transaction (`replay_deltas`, in its one `counters_add`) — never a scan of
the actions table, so the answer costs the same for a million decisions as for a thousand
(bench/simulator.py). Each cell is routed as stage 3 (supervised) routes, where the thresholds
decide: senior if needs_human or risk ≥ review_max_risk; auto if risk < auto_max_risk and
confidence > auto_min_confidence; else review. Risk bands are [j/20, (j+1)/20) and confidence
bands (k/100, (k+1)/100], so thresholds on band edges (multiples of 0.05 and 0.01) replay
exactly; others are rounded to the band they fall in (said in `notes`).

What is reported, per action type and overall, for the current and the candidate settings:
how many would go auto / review / senior; among those that would *newly* auto-execute, how
often people changed (edited), rejected or escalated them — count, rate, Wilson 95 % upper
bound; and the reviewer hours the candidate frees (decisions that would no longer need a
person, at their measured time to decision) or costs (auto-executions that would need one,
at the window's mean time to decision).

Payload rules need payloads, which the cells do not hold. A candidate's rules that are not
already in force (added, or changed) are replayed over the window's decided proposals of
their action types, read from the actions and decisions tables (the newest RULES_REPLAY_MAX
per type; the notes say when a window held more): each proposal a rule matches moves from its
candidate route to the rule's stricter one (or to `refused`), and leaves the "newly auto"
figures if it was counted there. Rules only raise routes, so this can only lower the
candidate's auto count. Rules already in force are not replayed: they shaped the history.
"""

# ruff: noqa: S608 -- table and column names are the models' own; every value is a parameter

import math
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db import connection, models
from django.utils import timezone

from deployments.counters import REPLAY, CounterDelta, _counters_fold, counters_add
from deployments.models import Deployment, ReplayCount
from deployments.policy import Route, Thresholds
from deployments.rules import Rule, route_with_rules, rules_for, rules_match, strictest_refusal
from deployments.stats import wilson_interval

RISK_BANDS = 20
CONFIDENCE_BANDS = 100
DEFAULT_DAYS = 30
MAX_DAYS = 366
OUTCOMES = ("approve", "edit", "reject", "escalate", "expire", "auto")
HUMAN = ("approve", "edit", "reject", "escalate", "expire")
CHANGED = ("edit", "reject", "escalate")
CHANGED_KEY = {"edit": "changed", "reject": "rejected", "escalate": "escalated"}
# Decided proposals per action type a rules replay reads at most (the newest first).
RULES_REPLAY_MAX = 20_000
# A result reported for an auto-executed action (its replay cell is counted then).
RESULT_STATUSES = ("executed", "failed", "unknown")


def risk_band(risk: float) -> int:
    """[j/20, (j+1)/20) → j; 1.0 falls in the last band."""
    return min(RISK_BANDS - 1, max(0, math.floor(risk * RISK_BANDS)))


def confidence_band(confidence: float) -> int:
    """(k/100, (k+1)/100] → k; 0.0 falls in the first band."""
    return min(CONFIDENCE_BANDS - 1, max(0, math.ceil(confidence * CONFIDENCE_BANDS) - 1))


def replay_deltas(
    *,
    deployment_id: int,
    action_type: str,
    risk: float,
    confidence: float,
    needs_human: bool,
    outcome: str,
    seconds: float = 0.0,
    day: date | None = None,
) -> list[CounterDelta]:
    """The cell one decided proposal adds to. Pass it to `counters_add` with the other counter
    deltas of the same decision, in its transaction: on PostgreSQL they are all ONE statement,
    so the simulator's cell costs the decision no extra round trip (the decision's query
    budget: tests/reviews/test_query_counts.py)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    day = day or timezone.now().date()
    key = (deployment_id, day, action_type, risk_band(risk), confidence_band(confidence), bool(needs_human), outcome)
    return [CounterDelta(ReplayCount, dict(zip(REPLAY.keys, key, strict=True)), {"n": 1, "seconds": float(seconds)})]


def replay_count_add(**cell: Any) -> None:
    """Count one decided proposal in its cell (`replay_deltas`' arguments), in the caller's
    transaction; with nothing else to write in the same statement."""
    counters_add(replay_deltas(**cell))


def replay_counts_fold(*, before: date, batch: int = 2000) -> int:
    """Fold the shards of the cells of days before `before` into shard 0 (as the evidence
    counters are folded: deployments.counters), so a replay of N days reads about one row per
    cell and day. Returns the rows folded away. Safe to repeat."""
    return _counters_fold(REPLAY, {"day__lt": before}, batch)


def _cutoffs(t: Thresholds) -> tuple[int, int, int]:
    """The thresholds as band indexes: senior from risk band `s`; auto below risk band `a` and
    from confidence band `c`. A band's lowest risk is j/20, so all its risks are ≥ r iff
    j ≥ 20·r; its confidences are (k/100, (k+1)/100], so all are > c iff k ≥ 100·c."""
    eps = 1e-9
    return (
        math.ceil(t.review_max_risk * RISK_BANDS - eps),
        math.floor(t.auto_max_risk * RISK_BANDS + eps),
        math.ceil(t.auto_min_confidence * CONFIDENCE_BANDS - eps),
    )


def _route_sql(prefix: str) -> str:
    return (
        f"CASE WHEN needs_human OR risk_band >= %({prefix}_s)s THEN 'senior' "
        f"WHEN risk_band < %({prefix}_a)s AND confidence_band >= %({prefix}_c)s THEN 'auto' ELSE 'review' END"
    )


def _routed(deployment_id: int, since: date, current: Thresholds, candidate: Thresholds) -> list[tuple]:
    """(action_type, outcome, route now, route under the candidate, n, seconds): the cells
    routed and summed in the database, so the answer is a few hundred rows whatever the history."""
    params: dict[str, Any] = {"deployment": deployment_id, "since": since}
    for prefix, t in (("now", current), ("new", candidate)):
        params[f"{prefix}_s"], params[f"{prefix}_a"], params[f"{prefix}_c"] = _cutoffs(t)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT action_type, outcome,
                   CASE WHEN outcome = 'auto' THEN 'auto' ELSE {_route_sql("now")} END AS now_route,
                   {_route_sql("new")} AS new_route, CAST(SUM(n) AS BIGINT), CAST(SUM(seconds) AS DOUBLE PRECISION)
            FROM {ReplayCount._meta.db_table}
            WHERE deployment_id = %(deployment)s AND day >= %(since)s
            GROUP BY 1, 2, 3, 4
            """,
            params,
        )
        return cursor.fetchall()


def _band_route(risk: float, confidence: float, needs_human: bool, cutoffs: tuple[int, int, int]) -> str:
    """`_route_sql` for one proposal: its route as its cell is routed."""
    senior, auto, conf = cutoffs
    if needs_human or risk_band(risk) >= senior:
        return "senior"
    return "auto" if risk_band(risk) < auto and confidence_band(confidence) >= conf else "review"


def _count_candidate(part: dict, outcome: str, now_route: str, new_route: str, n: int, seconds: float) -> None:
    """Count `n` decided proposals of `outcome` (taking `seconds` to decide) at the candidate's
    route `new_route`: its route total, the newly-auto figures, the auto-executions that would
    need a person. A negative `n` (and `seconds`) takes them back out, as a rule replay does
    for what a rule moves elsewhere."""
    if outcome != "escalate":  # an escalation is followed by the senior's own decision
        part["routes"]["candidate"][new_route] += n
    if new_route == "auto" and now_route != "auto" and outcome in HUMAN:
        newly = part["newly_auto"]
        if outcome != "escalate":
            newly["n"] += n
        if outcome in CHANGED_KEY:
            newly[CHANGED_KEY[outcome]] += n
        part["seconds_freed"] += seconds
    elif outcome == "auto" and new_route not in ("auto", "refused"):  # refused: nobody reviews it
        part["newly_reviewed"] += n


def _empty() -> dict:
    return {
        "routes": {
            "current": {"auto": 0, "review": 0, "senior": 0, "refused": 0},
            "candidate": {"auto": 0, "review": 0, "senior": 0, "refused": 0},
        },
        "newly_auto": {"n": 0, "changed": 0, "rejected": 0, "escalated": 0},
        "newly_reviewed": 0,
        "seconds_freed": 0.0,
        "seconds_costed": 0.0,
    }


def _finish(part: dict, mean_seconds: float) -> dict:
    newly = part["newly_auto"]
    # An escalated action is also counted by its senior's decision: at most one "bad" per action.
    bad = min(newly["n"], newly["changed"] + newly["rejected"] + newly["escalated"])
    lower, upper = wilson_interval(bad, newly["n"]) if newly["n"] else (None, None)
    newly["changed_or_rejected_or_escalated"] = bad
    newly["rate"] = bad / newly["n"] if newly["n"] else None
    newly["wilson_upper"] = upper
    part["seconds_costed"] += part["newly_reviewed"] * mean_seconds  # auto-executions that would need a person
    part["reviewer_hours_freed"] = round(part.pop("seconds_freed") / 3600, 2)
    part["reviewer_hours_costed"] = round(part.pop("seconds_costed") / 3600, 2)
    return part


def simulate(
    *,
    deployment: Deployment,
    candidate: Thresholds,
    days: int = DEFAULT_DAYS,
    today: date | None = None,
    candidate_rules: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Replay the last `days` days of `deployment` under `candidate` next to its current
    thresholds (from ReplayCount), and under `candidate_rules` (a validated payload_rules
    document; None: the current rules) where it adds or changes rules (from the proposals).
    Returns a JSON-ready dict (frozen into change requests)."""
    days = max(1, min(int(days), MAX_DAYS))
    today = today or timezone.now().date()
    since = today - timedelta(days=days - 1)
    current = deployment.thresholds
    by_type: dict[str, dict] = defaultdict(_empty)
    overall = _empty()
    human_n, human_seconds = 0, 0.0
    for action_type, outcome, now_route, new_route, n, seconds in _routed(deployment.pk, since, current, candidate):
        if outcome in HUMAN:
            human_n += n
            human_seconds += seconds
        for part in (overall, by_type[action_type]):
            if outcome != "escalate":  # an escalation is followed by the senior's own decision
                part["routes"]["current"][now_route] += n
            _count_candidate(part, outcome, now_route, new_route, n, seconds)
    mean_seconds = human_seconds / human_n if human_n else 0.0
    notes = ["Routed as stage 3 (supervised) routes."]
    rules, moves, replay_notes = _rules_replay(deployment, since, current, candidate, candidate_rules)
    for action_type, outcome, now_route, new_route, n, seconds in moves:
        for part in (overall, by_type[action_type]):
            _count_candidate(part, outcome, now_route, new_route, n, seconds)
    notes += replay_notes
    for name in ("auto_max_risk", "review_max_risk"):
        if abs(getattr(candidate, name) * RISK_BANDS - round(getattr(candidate, name) * RISK_BANDS)) > 1e-9:
            notes.append(f"{name} is not a multiple of 0.05: replayed at the band it falls in.")
    if (
        abs(candidate.auto_min_confidence * CONFIDENCE_BANDS - round(candidate.auto_min_confidence * CONFIDENCE_BANDS))
        > 1e-9
    ):
        notes.append("auto_min_confidence is not a multiple of 0.01: replayed at the band it falls in.")
    return {
        "days": days,
        "since": since.isoformat(),
        "current": {k: getattr(current, k) for k in ("auto_max_risk", "auto_min_confidence", "review_max_risk")},
        "candidate": {k: getattr(candidate, k) for k in ("auto_max_risk", "auto_min_confidence", "review_max_risk")},
        "mean_seconds_to_decide": round(mean_seconds, 1),
        "overall": _finish(overall, mean_seconds),
        "by_action_type": {t: _finish(p, mean_seconds) for t, p in sorted(by_type.items())},
        "rules": rules,
        "notes": notes,
    }


def _new_rules(deployment: Deployment, candidate_rules: dict[str, Any] | None) -> dict[str, tuple[Rule, ...]]:
    """Per action type, the candidate's rules that are not in force as they are now."""
    if candidate_rules is None:
        return {}
    in_force = deployment.payload_rules or {}
    new = {}
    for action_type in candidate_rules:
        now = set(rules_for(in_force, action_type))
        added = tuple(rule for rule in rules_for(candidate_rules, action_type) if rule not in now)
        if added:
            new[action_type] = added
    return new


def _decided_proposals(deployment: Deployment, action_type: str, since: date) -> tuple[list[dict], bool]:
    """The window's decided proposals of `action_type`, newest first, at most RULES_REPLAY_MAX:
    one row per decision that has a replay cell, and one per auto-executed action with a
    result. Reached through the reverse relation (this app does not import reviews). Whether
    the window held more."""
    fields = ("payload", "action_type", "risk_score", "confidence", "needs_human", "external_id")
    fields += ("model_version", "rationale")
    actions = deployment.actions.filter(action_type=action_type)
    decided = (
        actions.filter(decisions__verb__in=HUMAN, decisions__created_at__date__gte=since)
        .order_by("-decisions__id")
        .values(*fields, outcome=models.F("decisions__verb"), seconds=models.F("decisions__seconds_to_decide"))
    )
    auto = (
        actions.filter(route=Route.AUTO, status__in=RESULT_STATUSES, executed_at__date__gte=since)
        .order_by("-id")
        .values(*fields, outcome=models.Value("auto"), seconds=models.Value(0.0))
    )
    rows = list(decided[: RULES_REPLAY_MAX + 1])
    rows += list(auto[: RULES_REPLAY_MAX + 1 - len(rows)])
    return rows[:RULES_REPLAY_MAX], len(rows) > RULES_REPLAY_MAX


def _rules_replay(
    deployment: Deployment, since: date, current: Thresholds, candidate: Thresholds, rules: dict[str, Any] | None
) -> tuple[list[dict], list[tuple], list[str]]:
    """Each decided proposal a new rule matches moves from its candidate route to the rule's
    (see the module's docstring): per rule, what it matched; the moves, as
    (action_type, outcome, now_route, candidate_route, n, seconds) for `_count_candidate`
    (out of one route with n = -1, into another with n = +1); and notes."""
    now_cut, new_cut = _cutoffs(current), _cutoffs(candidate)
    moves, notes = [], []
    report = []
    for action_type, new_rules in sorted(_new_rules(deployment, rules).items()):
        rows, more = _decided_proposals(deployment, action_type, since)
        if more:
            notes.append(f"{action_type}: rules replayed over the newest {RULES_REPLAY_MAX} decided proposals only.")
        per_rule = {rule.name: {"matched": 0, "auto_now": 0} for rule in new_rules}
        for row in rows:
            matches = rules_match(new_rules, row)
            if not matches:
                continue
            outcome, seconds = row["outcome"], row["seconds"] or 0.0
            for match in matches:
                per_rule[match.name]["matched"] += 1
                per_rule[match.name]["auto_now"] += outcome == "auto"
            risk, confidence, human = row["risk_score"], row["confidence"], row["needs_human"]
            now_route = "auto" if outcome == "auto" else _band_route(risk, confidence, human, now_cut)
            by_thresholds = _band_route(risk, confidence, human, new_cut)
            refused = strictest_refusal(matches) is not None
            route = "refused" if refused else route_with_rules(Route(by_thresholds), matches).value
            if route == by_thresholds:
                continue
            moves += [
                (action_type, outcome, now_route, by_thresholds, -1, -seconds),
                (action_type, outcome, now_route, route, 1, seconds),
            ]
        report += [{"action_type": action_type, "rule": name, **counts} for name, counts in per_rule.items()]
    return report, moves, notes


def settings_simulate(*, deployment: Deployment, changes: dict[str, Any], days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The replay of a settings change (python values): its thresholds over the current ones."""
    current = deployment.thresholds
    candidate = Thresholds(
        auto_max_risk=changes.get("auto_max_risk", current.auto_max_risk),
        auto_min_confidence=changes.get("auto_min_confidence", current.auto_min_confidence),
        review_max_risk=changes.get("review_max_risk", current.review_max_risk),
    )
    return simulate(deployment=deployment, candidate=candidate, days=days, candidate_rules=changes.get("payload_rules"))
