"""Every write of shadow mode: outcomes, comparisons, adjudications, rules and recomputes.

Comparisons are set-based: a batch of pairs is locked with one `SELECT ... FOR UPDATE SKIP
LOCKED`, compared in Python, written back with one `UPDATE ... FROM unnest(...)` and counted
with one upsert per counter table, all in one transaction. Counters are *effective*
agreement: a pair agrees when it compared equal, or when a reviewer adjudicated its
disagreement "AI right" or "both acceptable". Every change to a pair's effective verdict moves
exactly one count between `shadow.agree` and `shadow.disagree` in the same transaction, so
the counters always equal what the actions table says.

Lock order, everywhere: deployment row (FOR SHARE by comparisons and adjudications, FOR NO
KEY UPDATE by a rules change), then action rows. A rules change therefore waits for batches
in flight, and batches after it see the new rules.
"""

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.tasks import enqueue_on_commit
from core.updates import model_update
from deployments.counters import CounterDelta, Metric, counters_add, counters_add_many, evidence_add, evidence_deltas
from deployments.errors import Conflict, InvalidInput, InvalidTransition
from deployments.locks import deployment_lock
from deployments.models import ApiKey, Deployment
from deployments.permissions import Delegator, acting_for, member_of, on_behalf_data, require_assigned
from deployments.policy import Route
from deployments.services import audit_event_record
from reviews.models import ProposedAction
from reviews.shadow.compare import Rules, compare_proposal, rules_validate
from reviews.shadow.models import ShadowAdjudication, ShadowOutcome, ShadowRecompute, ShadowTally
from reviews.shadow.pairing import (
    Pair,
    comparison_rules_hold,
    comparisons_write,
    outcomes_for,
    pairs_lock,
    pairs_lock_after,
)

Status = ProposedAction.Status
AGREE, DISAGREE = Metric.SHADOW_AGREE, Metric.SHADOW_DISAGREE
MAX_OUTCOMES = 1000
COMPARE_BATCH = 1000
RECOMPUTE_BATCH = 2000


def _day(value: datetime) -> date:
    return timezone.localdate(value) if timezone.is_aware(value) else value.date()


def effective_agree(comparison: dict | None, adjudication: ShadowAdjudication | None) -> bool:
    """Agreement as the evidence counts it: compared equal, or adjudicated acceptable."""
    if comparison is None:
        return False
    return bool(comparison.get("agree")) or (adjudication is not None and adjudication.counts_as_agreement)


# ---------------------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------------------
TallyKey = tuple[int, date, str, str, str]  # deployment, day, AI type, human type, model version


def shadow_tally_add_many(deltas: dict[TallyKey, list[int]]) -> None:
    """Add [agree, disagree] deltas to the tallies in one statement (caller's transaction)."""
    counters_add_many(
        model=ShadowTally,
        keys=("deployment_id", "day", "action_type", "human_action_type", "model_version"),
        values=("agree", "disagree"),
        rows=deltas,
        shards=ShadowTally.SHARDS,
    )


class _Counts:
    """Accumulates counter deltas for one transaction, then writes them in two statements.

    Counts are summed per counter row as they come (a batch of 1,000 pairs touches a few dozen
    rows), and the deltas are built once per row when written: the same statements and sums
    as one delta per pair, without building a thousand of them."""

    def __init__(self) -> None:
        self.evidence: dict[tuple[int, date, str, Metric], int] = defaultdict(int)
        self.tally: dict[TallyKey, list[int]] = defaultdict(lambda: [0, 0])
        self._tz = timezone.get_current_timezone()  # once per batch: localdate looks it up per call

    def add(self, pair: "Pair | ProposedAction", human_type: str, agree: bool, sign: int = 1) -> None:
        """Count one pair (+1, or -1 to take a count back) as agreeing or not."""
        created = pair.created_at
        day = created.astimezone(self._tz).date() if created.tzinfo is not None else created.date()
        self.evidence[(pair.deployment_id, day, pair.action_type, AGREE if agree else DISAGREE)] += sign
        key = (pair.deployment_id, day, pair.action_type, human_type, pair.model_version)
        self.tally[key][0 if agree else 1] += sign

    def write(self) -> None:
        deltas: list[CounterDelta] = []
        for (deployment_id, day, action_type, metric), n in self.evidence.items():
            deltas += evidence_deltas(deployment_id=deployment_id, day=day, action_type=action_type, metric=metric, n=n)
        counters_add(deltas)
        shadow_tally_add_many(self.tally)


# ---------------------------------------------------------------------------------------
# Outcomes and matching
# ---------------------------------------------------------------------------------------
def _enqueue_compare(action_ids: list[int]) -> None:
    """Compare these actions in a worker once the transaction commits (eager without Redis)."""
    if not action_ids:
        return
    for i in range(0, len(action_ids), COMPARE_BATCH):
        enqueue_on_commit("reviews.shadow_compare_actions", action_ids[i : i + COMPARE_BATCH])


@transaction.atomic
def shadow_outcomes_record(
    *, deployment: Deployment, outcomes: list[dict[str, Any]], actor_label: str = "", api_key: ApiKey | None = None
) -> list[dict[str, Any]]:
    """Store what humans did (validated dicts: external_id, action_type, payload, decided_by,
    decided_at) and pair each with the logged shadow actions of the same external_id.

    Idempotent per (deployment, external_id): the first outcome stored wins; sending it again
    answers `duplicate`, sending a different one answers `conflict` and changes nothing.
    Matched actions are compared by a worker after commit. Returns one result per outcome.
    """
    if len(outcomes) > MAX_OUTCOMES:
        raise InvalidInput(f"at most {MAX_OUTCOMES} outcomes per request")
    first: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        first.setdefault(o["external_id"], o)
    ids = list(first)
    existing = set(
        ShadowOutcome.objects.filter(deployment=deployment, external_id__in=ids).values_list("external_id", flat=True)
    )
    ShadowOutcome.objects.bulk_create(
        [
            ShadowOutcome(
                deployment=deployment,
                external_id=ext,
                action_type=o["action_type"],
                payload=o["payload"],
                decided_by=o.get("decided_by") or "",
                decided_at=o.get("decided_at"),
                api_key=api_key,
            )
            for ext, o in first.items()
            if ext not in existing
        ],
        ignore_conflicts=True,  # a concurrent request stored it first: its outcome wins
    )
    stored = {
        o.external_id: o
        for o in ShadowOutcome.objects.filter(deployment=deployment, external_id__in=ids).only(
            "id", "external_id", "action_type", "payload"
        )
    }
    matched: dict[str, list[int]] = defaultdict(list)
    for pk, ext in (
        ProposedAction.objects.filter(
            deployment=deployment, external_id__in=ids, route=Route.SHADOW, status=Status.LOGGED
        )
        .order_by("id")
        .values_list("id", "external_id")
    ):
        matched[ext].append(pk)

    results, seen = [], set()
    for o in outcomes:
        ext = o["external_id"]
        row = stored[ext]
        same = row.action_type == o["action_type"] and row.payload == o["payload"]
        if ext in seen or ext in existing:
            result = "duplicate" if same else "conflict"
        else:
            result = "created" if same else "conflict"
        seen.add(ext)
        results.append({"external_id": ext, "result": result, "outcome_id": row.pk, "matched_action_ids": matched[ext]})

    action_ids = sorted(pk for pks in matched.values() for pk in pks)
    counts = defaultdict(int)
    for r in results:
        counts[r["result"]] += 1
    audit_event_record(
        verb="reviews.shadow.outcomes_received",
        actor_label=actor_label or "agent",
        deployment=deployment,
        data={
            "received": len(outcomes),
            **counts,
            "matched_actions": len(action_ids),
            **({"api_key": api_key.prefix, "api_key_scopes": api_key.scopes} if api_key is not None else {}),
        },
    )
    _enqueue_compare(action_ids)
    return results


def shadow_action_logged(*, action: ProposedAction) -> None:
    """A shadow action was just stored (caller's transaction): if its outcome is already
    here, compare them in a worker after commit."""
    if (
        action.route == Route.SHADOW
        and action.external_id
        and ShadowOutcome.objects.filter(deployment_id=action.deployment_id, external_id=action.external_id).exists()
    ):
        _enqueue_compare([action.pk])


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------
@transaction.atomic
def shadow_compare_actions(*, action_ids: list[int]) -> dict[str, int]:
    """Compare the given shadow actions with their outcomes: status `compared`, comparison
    stored, counters added, one audit event per deployment. Set-based: the same handful of
    statements whatever the batch size.

    Safe to repeat and to run in parallel: actions no longer `logged`, without an outcome, or
    locked by another worker (SKIP LOCKED) are left alone.
    """
    if not action_ids:
        return {"compared": 0, "agree": 0}
    rules, pairs = pairs_lock(action_ids=action_ids)
    return _compare_locked(pairs, rules)


def _compare_locked(pairs: list[Pair], rules_json: dict[int, dict]) -> dict[str, int]:
    """Compare locked pairs, write them back in one UPDATE, count them in two upserts.
    The caller holds the deployments FOR SHARE (their rules are `rules_json`)."""
    if not pairs:
        return {"compared": 0, "agree": 0}
    rules = {pk: Rules.from_json(r) for pk, r in rules_json.items()}
    counts, updates = _Counts(), []
    per_deployment: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # compared, agree, first, last
    for pair in pairs:
        result = compare_proposal(pair, pair.human_type, pair.human_payload, rules[pair.deployment_id])
        updates.append((pair.id, result))
        counts.add(pair, pair.human_type, result["agree"])
        stats = per_deployment[pair.deployment_id]
        stats[0] += 1
        stats[1] += result["agree"]
        stats[2] = stats[2] or pair.id
        stats[3] = pair.id
    comparisons_write(updates, status=Status.COMPARED)
    counts.write()
    for deployment_id, (n, agree, first_id, last_id) in per_deployment.items():
        audit_event_record(
            verb="reviews.shadow.compared",
            deployment=deployment_id,
            data={"compared": n, "agree": agree, "disagree": n - agree, "first_id": first_id, "last_id": last_id},
        )
    return {"compared": len(updates), "agree": sum(1 for _, r in updates if r["agree"])}


def shadow_compare_sweep(*, deployment_id: int, batch_size: int = COMPARE_BATCH) -> int:
    """Compare every logged shadow action of a deployment whose outcome is here, batch by
    batch (each its own transaction). Catches up on work whose enqueue was lost. Returns the
    number compared. Safe to run in several workers at once (SKIP LOCKED)."""
    total, after = 0, 0
    while True:
        with transaction.atomic():
            rules = comparison_rules_hold([deployment_id])
            pairs = pairs_lock_after(deployment_id=deployment_id, after=after, limit=batch_size)
            if not pairs:
                return total
            after = pairs[-1].id
            total += _compare_locked(pairs, rules)["compared"]


# ---------------------------------------------------------------------------------------
# Adjudication
# ---------------------------------------------------------------------------------------
def _require_member_of(deployment_id: int, actor: AbstractBaseUser) -> Delegator | None:
    """NotAllowed unless `actor` works on the deployment; whom they act for there (None: themselves)."""
    return acting_for(require_assigned(member_of(actor), deployment_id), deployment_id)


@transaction.atomic
def shadow_adjudicate(
    *, action_id: int, verdict: ShadowAdjudication.Verdict | str, actor: AbstractBaseUser, reason: str = ""
) -> ShadowAdjudication:
    """A reviewer's final verdict on one disagreement. "AI right" and "both acceptable" move
    the pair from `shadow.disagree` to `shadow.agree` in the same transaction. Refuses an
    action that is not a compared disagreement, or one already adjudicated."""
    try:
        verdict = ShadowAdjudication.Verdict(verdict)
    except ValueError:
        raise InvalidInput(f"unknown verdict {verdict!r}") from None
    deployment_id = ProposedAction.objects.filter(pk=action_id).values_list("deployment_id", flat=True).first()
    if deployment_id is None:
        raise InvalidInput(f"action {action_id} does not exist")
    on_behalf_of = _require_member_of(deployment_id, actor)
    comparison_rules_hold([deployment_id])
    action = ProposedAction.objects.select_for_update(no_key=True).get(pk=action_id)
    if action.status != Status.COMPARED or not action.comparison:
        raise InvalidTransition(f"action {action.pk} is {action.status}; only compared shadow actions are adjudicated")
    if action.comparison.get("agree"):
        raise InvalidTransition(f"action {action.pk} agreed with the human; there is nothing to adjudicate")
    if ShadowAdjudication.objects.filter(action=action).exists():
        raise InvalidTransition(f"action {action.pk} is already adjudicated; an adjudication is final")
    adjudication = ShadowAdjudication.objects.create(action=action, verdict=verdict, actor=actor, reason=reason.strip())
    outcome = ShadowOutcome.objects.get(deployment_id=action.deployment_id, external_id=action.external_id)
    if adjudication.counts_as_agreement:
        counts = _Counts()
        counts.add(action, outcome.action_type, agree=False, sign=-1)
        counts.add(action, outcome.action_type, agree=True)
        counts.write()
    evidence_add(
        deployment_id=action.deployment_id,
        day=_day(action.created_at),
        action_type=action.action_type,
        metric=Metric.of("shadow.adjudicated", verdict),
    )
    audit_event_record(
        verb=f"reviews.shadow.adjudicated.{verdict.value}",
        actor=actor,
        obj=action,
        reason=adjudication.reason,
        data={"verdict": verdict.value, "counts_as_agreement": adjudication.counts_as_agreement}
        | on_behalf_data(on_behalf_of),
    )
    return adjudication


# ---------------------------------------------------------------------------------------
# Rules and recompute
# ---------------------------------------------------------------------------------------
def _running(deployment_id: int) -> ShadowRecompute | None:
    return ShadowRecompute.objects.filter(deployment_id=deployment_id, status=ShadowRecompute.Status.RUNNING).first()


@transaction.atomic
def shadow_recompute_start(*, deployment_id: int, actor: AbstractBaseUser | None = None) -> ShadowRecompute:
    """Start re-comparing every compared pair of the deployment under its current rules, in a
    worker after commit. A second start while one runs is refused (Conflict): the database's
    partial unique constraint decides, so two racing starts cannot both win."""
    deployment = deployment_lock(deployment_id)
    total = ProposedAction.objects.filter(deployment_id=deployment_id, status=Status.COMPARED).count()
    try:
        with transaction.atomic():
            recompute = ShadowRecompute.objects.create(
                deployment=deployment,
                rules=deployment.comparison_rules or {},
                total=total,
                started_by=actor if actor is not None and actor.is_authenticated else None,
            )
    except IntegrityError:
        raise Conflict("a recompute of this deployment is already running") from None
    audit_event_record(
        verb="reviews.shadow.recompute_started",
        actor=actor,
        deployment=deployment,
        obj=recompute,
        data={"total": total, "rules": recompute.rules},
    )
    enqueue_on_commit("reviews.shadow_recompute", recompute.pk)
    return recompute


@transaction.atomic
def comparison_rules_set(
    *, deployment_id: int, rules: Any, actor: AbstractBaseUser | None = None
) -> tuple[Deployment, ShadowRecompute | None]:
    """Validate and store a deployment's comparison rules, then recompute every comparison.

    Refused (Conflict) while a recompute runs, so one recompute never mixes two rule sets.
    Unchanged rules change nothing and start nothing.
    """
    clean = rules_validate(rules)
    deployment = deployment_lock(deployment_id)
    if _running(deployment_id) is not None:
        raise Conflict("a recompute is running; change the rules when it has finished")
    if clean == (deployment.comparison_rules or {}):
        return deployment, None
    before = deployment.comparison_rules
    model_update(deployment, comparison_rules=clean)
    audit_event_record(
        verb="reviews.shadow.rules_changed",
        actor=actor,
        obj=deployment,
        data={"before": before, "after": clean},
    )
    return deployment, shadow_recompute_start(deployment_id=deployment_id, actor=actor)


@transaction.atomic
def shadow_recompute_step(*, recompute_id: int, batch_size: int = RECOMPUTE_BATCH) -> bool:
    """Re-compare the next batch of compared pairs (keyset on id) under the recompute's rules:
    write changed comparisons, move counts whose effective verdict changed, advance the
    cursor and the progress, all in one transaction. Returns True while there is more.

    Safe to repeat: a redelivered task resumes from the stored cursor.
    """
    recompute = ShadowRecompute.objects.select_for_update(no_key=True).filter(pk=recompute_id).first()
    if recompute is None or recompute.status != ShadowRecompute.Status.RUNNING:
        return False
    comparison_rules_hold([recompute.deployment_id])
    actions = list(
        ProposedAction.objects.filter(
            deployment_id=recompute.deployment_id, status=Status.COMPARED, pk__gt=recompute.last_action_id
        )
        .select_related("shadow_adjudication")
        .only(
            "id",
            "deployment_id",
            "action_type",
            "external_id",
            "payload",
            "model_version",
            "created_at",
            "comparison",
            "shadow_adjudication__verdict",
        )
        .order_by("id")[:batch_size]
        .select_for_update(of=("self",), no_key=True)
    )
    rules = Rules.from_json(recompute.rules)
    outcomes = outcomes_for(actions)
    counts, updates = _Counts(), []
    for a in actions:
        outcome = outcomes.get((a.deployment_id, a.external_id))
        if outcome is None:
            continue
        result = compare_proposal(a, outcome.action_type, outcome.payload, rules)
        if result == a.comparison:
            continue
        adjudication = getattr(a, "shadow_adjudication", None)
        before, after = effective_agree(a.comparison, adjudication), effective_agree(result, adjudication)
        if before != after:
            counts.add(a, outcome.action_type, before, sign=-1)
            counts.add(a, outcome.action_type, after)
        updates.append((a.pk, result))
    comparisons_write(updates)
    counts.write()
    recompute.processed += len(actions)
    recompute.changed += len(updates)
    if actions:
        recompute.last_action_id = actions[-1].pk
    more = len(actions) == batch_size
    if not more:
        recompute.status = ShadowRecompute.Status.DONE
        recompute.finished_at = timezone.now()
        recompute.total = max(recompute.total, recompute.processed)
        audit_event_record(
            verb="reviews.shadow.recompute_finished",
            obj=recompute,
            data={"processed": recompute.processed, "changed": recompute.changed},
        )
    recompute.save(update_fields=["processed", "changed", "last_action_id", "status", "finished_at", "total"])
    return more


@transaction.atomic
def shadow_recompute_fail(*, recompute_id: int, error: str) -> None:
    """Mark a recompute failed (a bug, not a crash: crashes are redelivered and resume), so a
    new one can be started. Its finished batches stay applied and counted."""
    recompute = ShadowRecompute.objects.select_for_update(no_key=True).filter(pk=recompute_id).first()
    if recompute is None or recompute.status != ShadowRecompute.Status.RUNNING:
        return
    model_update(recompute, status=ShadowRecompute.Status.FAILED, finished_at=timezone.now(), error=error[:2000])
    audit_event_record(verb="reviews.shadow.recompute_failed", obj=recompute, data={"error": error})
