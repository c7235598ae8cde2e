"""Every write to deployments, keys, members, evidence counters and the audit log."""

import copy
import functools
import logging
import math
import random
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from core.tasks import enqueue_on_commit
from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.models import (
    ROW_VERSION_SQL,
    ApiKey,
    AuditEvent,
    BlastRadiusUse,
    BreakerCount,
    Deployment,
    EvidenceCount,
    KeyCheck,
    Member,
    PromotionRequest,
    hash_api_key,
)
from deployments.policy import Stage
from deployments.sql import counter_upsert_tail, instance_from_row, prepared_cursor, select_list

SYSTEM = "system"
logger = logging.getLogger(__name__)


def audit_event_record(
    *,
    verb: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    deployment: Deployment | int | None = None,
    obj: object | None = None,
    reason: str = "",
    data: dict | None = None,
) -> AuditEvent:
    """Append one audit event. Call inside the transaction of the change it records."""
    event = audit_event_build(
        verb=verb, actor=actor, actor_label=actor_label, deployment=deployment, obj=obj, reason=reason, data=data
    )
    event.save()
    return event


def audit_event_build(
    *,
    verb: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    deployment: Deployment | int | None = None,
    obj: object | None = None,
    reason: str = "",
    data: dict | None = None,
) -> AuditEvent:
    """The audit event `audit_event_record` appends, unsaved, for a caller that writes it
    with other rows in one statement (`reviews.ingest`). An unsaved `obj` gets its id there."""
    deployment_id = deployment.pk if isinstance(deployment, Deployment) else deployment
    return AuditEvent(
        verb=verb,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else SYSTEM),
        deployment_id=deployment_id,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        reason=reason,
        data=data or {},
    )


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: 'whsec_' + base64 of 24 random bytes."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@transaction.atomic
def deployment_create(
    *,
    slug: str,
    name: str = "",
    stage: Stage | str = Stage.SHADOW,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    **thresholds: object,
) -> Deployment:
    """Create a deployment (normally in shadow). Any other starting stage is audited as such."""
    stage = Stage(stage)
    if Deployment.objects.filter(slug=slug).exists():
        raise InvalidInput(f"a deployment with slug {slug!r} already exists")
    deployment = Deployment(
        slug=slug, name=name or slug, stage=stage, webhook_secret=new_webhook_secret(), **thresholds
    )
    deployment.full_clean()
    deployment.save()
    audit_event_record(
        verb="deployments.deployment.created",
        actor=actor,
        actor_label=actor_label,
        deployment=deployment,
        obj=deployment,
        data={"stage": stage.value, "started_above_shadow": stage is not Stage.SHADOW},
    )
    return deployment


@transaction.atomic
def api_key_create(
    *, deployment: Deployment, name: str = "", actor: AbstractBaseUser | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored or shown again."""
    raw = ApiKey.generate_raw()
    key = ApiKey.objects.create(
        deployment=deployment,
        name=name,
        prefix=raw[:10],
        hashed_key=hash_api_key(raw),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit_event_record(
        verb="deployments.api_key.created",
        actor=actor,
        deployment=deployment,
        obj=key,
        data={"prefix": key.prefix, "name": name},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key_id: int, actor: AbstractBaseUser | None = None) -> ApiKey:
    """Revoke a key. Safe to repeat: revoking a revoked key changes nothing."""
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_event_record(verb="deployments.api_key.revoked", actor=actor, deployment=key.deployment_id, obj=key)
    return key


def api_key_authenticate(raw: str, *, cached: bool = False) -> ApiKey | None:
    """The active key matching `raw`, with its deployment, or None.

    `cached=True` (PostgreSQL only) may answer from this process's memory without a query:
    the key then carries a `key_check` (KeyCheck) that the caller's write must verify in its own
    statement, and if that fails, or the caller answers with an error, the caller confirms the
    key with `api_key_confirm` first. Only the agent API's ingest does this (`reviews.ingest`):
    every other caller reads the key afresh, as it is now.
    """
    if not raw or not raw.startswith(ApiKey.PREFIX) or len(raw) > 200:
        return None
    hashed = hash_api_key(raw)
    if cached and connection.vendor == "postgresql":
        cached_key = _key_cache.get(hashed)
        if cached_key is not None:
            return cached_key
    return _api_key_read(hashed)


def api_key_confirm(key: ApiKey) -> ApiKey | None:
    """`key` read afresh if it came from the cache (None if it is no longer active), else `key`."""
    if key.key_check is None:
        return key
    return _api_key_read(key.hashed_key)


def api_key_mark_used(key: ApiKey, *, now: datetime) -> None:
    """Record that `key` was used: at most one write per LAST_USED_RESOLUTION, so that the hot
    path does not write the key row on every request."""
    if key.last_used_at is not None and now - key.last_used_at <= ApiKey.LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now
    cached_key = _key_cache.get(key.hashed_key)
    if cached_key is not None:
        cached_key.last_used_at = now  # one scalar: safe to share between the process's threads


# hashed key -> the key as last read, with its deployment and its key_check. Every request
# that takes it shares the one instance, which nothing changes but last_used_at. Bounded: past
# _KEY_CACHE_SIZE it starts afresh. A dict's get and set are atomic, so the threads of a
# gthread worker share it without a lock.
_key_cache: dict[str, ApiKey] = {}
_KEY_CACHE_SIZE = 1024


def _api_key_read(hashed: str) -> ApiKey | None:
    # Every API request asks this first, so the SQL is written out once (the ORM would compile
    # it per request). It is ApiKey.objects.select_related("deployment").get(hashed_key=...,
    # revoked_at__isnull=True); tests/deployments/test_api_keys.py checks the two agree.
    with prepared_cursor() as cursor:
        cursor.execute(_api_key_sql(connection.vendor), [hashed])
        row = cursor.fetchone()
    if row is None:
        _key_cache.pop(hashed, None)
        return None
    key = instance_from_row(ApiKey, row)
    key.deployment = instance_from_row(Deployment, row[len(ApiKey._meta.concrete_fields) :])
    if connection.vendor == "postgresql":
        if len(_key_cache) >= _KEY_CACHE_SIZE:
            _key_cache.clear()
        cached_key = copy.copy(key)  # the request's own `key` stays one read afresh (no key_check)
        cached_key.key_check = KeyCheck(key_id=key.pk, deployment_version=row[-1])
        _key_cache[hashed] = cached_key
    return key


@functools.cache
def _api_key_sql(vendor: str) -> str:
    keys, deployments = ApiKey._meta.db_table, Deployment._meta.db_table
    # On PostgreSQL also the deployment row's version (see KeyCheck).
    version = f", {ROW_VERSION_SQL}" if vendor == "postgresql" else ""
    return (
        f"SELECT {select_list(ApiKey, 'k')}, {select_list(Deployment, 'd')}{version} "  # noqa: S608 -- names are ours
        f"FROM {keys} k JOIN {deployments} d ON d.id = k.deployment_id "
        "WHERE k.hashed_key = %s AND k.revoked_at IS NULL"
    )


@transaction.atomic
def member_create(
    *,
    username: str,
    role: Member.Role | str,
    password: str | None = None,
    deployments: list[Deployment] | None = None,
    email: str = "",
    actor: AbstractBaseUser | None = None,
) -> Member:
    """Create (or update) a person with a role and their assigned deployments."""
    role = Member.Role(role)
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.is_staff = role == Member.Role.ADMIN
    user.save()
    member, _ = Member.objects.update_or_create(user=user, defaults={"role": role})
    if deployments:
        member.deployments.add(*deployments)
    audit_event_record(
        verb="deployments.member.created" if created else "deployments.member.updated",
        actor=actor,
        obj=member,
        data={"username": username, "role": role.value, "deployments": [d.slug for d in deployments or []]},
    )
    return member


@dataclass(frozen=True)
class CounterDelta:
    """What to add to one row of a sharded counter table (EvidenceCount, BreakerCount)."""

    model: type[EvidenceCount] | type[BreakerCount]
    key: dict[str, Any]  # column: value, the row's identity (without the shard)
    add: dict[str, int | float]  # column: amount to add


def evidence_deltas(
    *,
    deployment_id: int,
    action_type: str,
    metric: str,
    n: int = 1,
    total: float = 0.0,
    day: date | None = None,
    at: datetime | None = None,
) -> list[CounterDelta]:
    """The counter rows one piece of evidence adds to: its day's evidence counter and, for a
    live event (no `day` given; it happens `at`, by default now) of a metric the circuit
    breakers watch, the breaker's minute."""
    from deployments.breakers import WATCHED_METRICS

    if day is None:
        at = at or timezone.now()
    key = {"deployment_id": deployment_id, "day": day or at.date(), "action_type": action_type}
    deltas = [CounterDelta(EvidenceCount, key | {"metric": metric}, {"n": n, "total": total})]
    if day is None and metric in WATCHED_METRICS:
        deltas.append(_breaker_delta(deployment_id=deployment_id, metric=metric, n=n, at=at))
    return deltas


def _breaker_delta(*, deployment_id: int, metric: str, n: int, at: datetime | None) -> CounterDelta:
    from deployments.breakers import minute_of

    # Raw SQL: the datetime is adapted as the ORM would store it (naive UTC text on SQLite).
    minute = connection.ops.adapt_datetimefield_value(minute_of(at or timezone.now()))
    return CounterDelta(BreakerCount, {"deployment_id": deployment_id, "minute": minute, "metric": metric}, {"n": n})


def counters_apply(deltas: Iterable[CounterDelta]) -> None:
    """Add `deltas` to their counter rows in the caller's transaction: one statement each."""
    for delta in deltas:
        counters_add_many(
            model=delta.model,
            keys=tuple(delta.key),
            values=tuple(delta.add),
            rows={tuple(delta.key.values()): tuple(delta.add.values())},
            shards=delta.model.SHARDS,
        )


def evidence_add(
    *,
    deployment_id: int,
    action_type: str,
    metric: str,
    n: int = 1,
    total: float = 0.0,
    day: date | None = None,
) -> None:
    """Add `n` (and `total`) to one evidence counter, in the caller's transaction.

    One upsert statement; the row is picked from `EvidenceCount.SHARDS` shards at random so
    concurrent writers rarely wait on the same row. A live event (no `day` given) of a metric
    the circuit breakers watch also goes into the breaker's minute buckets.
    """
    counters_apply(
        evidence_deltas(deployment_id=deployment_id, action_type=action_type, metric=metric, n=n, total=total, day=day)
    )


def breaker_count_add(*, deployment_id: int, metric: str, n: int = 1, at: datetime | None = None) -> None:
    """Add `n` to the breaker's minute bucket of `metric` (in the caller's transaction)."""
    counters_apply([_breaker_delta(deployment_id=deployment_id, metric=metric, n=n, at=at)])


# ---------------------------------------------------------------------------------------
# Blast radius (SPEC §1)
# ---------------------------------------------------------------------------------------


def _payload_value(payload: dict[str, Any], field: str) -> int | None:
    """The budgeted amount of one payload: 0 when the field is absent, None when it is not a
    finite number (which fails closed: the action goes to a person)."""
    if not field or field not in payload:
        return 0
    value = payload[field]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return math.ceil(abs(value))


def blast_radius_reserve(
    *, deployment: Deployment, payload: dict[str, Any], now: datetime | None = None
) -> tuple[bool, str]:
    """Take one auto-execution (and its payload value) from the deployment's rolling budget.

    Returns (True, "") when the action may be auto-executed, else (False, why). Must run
    inside the caller's transaction: with limits configured it locks the deployment row
    (`SELECT ... FOR UPDATE`), so concurrent proposals reserve one after the other and the
    limit holds exactly; the reservation commits or rolls back with the proposal. Without
    limits it takes no lock. The locked row is also re-read for the kill switch and breaker.
    """
    if not deployment.has_blast_limits:
        return True, ""
    locked = Deployment.objects.select_for_update(no_key=True).get(pk=deployment.pk)
    if locked.fail_closed:
        return False, "the deployment is paused or its breaker has tripped"
    now = now or timezone.now()
    value = _payload_value(payload, locked.blast_value_field) if locked.blast_max_value is not None else 0
    if value is None:
        return False, f"payload field {locked.blast_value_field!r} is not a number; a value budget is set"
    in_window = BlastRadiusUse.objects.filter(deployment=locked, at__gt=now - locked.blast_window)
    if locked.blast_max_auto is not None:
        used = in_window.count()
        if used + 1 > locked.blast_max_auto:
            return False, f"blast radius: {used} auto-executions in the window (limit {locked.blast_max_auto})"
    if locked.blast_max_value is not None and value:
        spent = in_window.aggregate(total=Sum("value"))["total"] or 0
        if spent + value > locked.blast_max_value:
            return False, (
                f"blast radius: {locked.blast_value_field} {spent} + {value} would exceed {locked.blast_max_value}"
            )
    BlastRadiusUse.objects.create(deployment=locked, at=now, value=value)
    return True, ""


def blast_radius_purge(*, deployment_id: int, older_than: datetime) -> int:
    """Delete a deployment's budget rows that its window no longer reads. Safe to repeat."""
    deleted, _ = BlastRadiusUse.objects.filter(deployment_id=deployment_id, at__lt=older_than).delete()
    return deleted


def breaker_counts_purge(*, older_than: datetime) -> int:
    deleted, _ = BreakerCount.objects.filter(minute__lt=older_than).delete()
    return deleted


EVIDENCE_KEY = ("deployment_id", "day", "action_type", "metric")
BREAKER_KEY = ("deployment_id", "minute", "metric")


def evidence_counts_fold(*, before: date, batch: int = 2000) -> int:
    """Fold the shards of every evidence counter of a day before `before` into its shard 0, so
    that a reader of a long window sums one row per (day, type, metric), not EvidenceCount.SHARDS.
    Returns the number of rows folded away; see `_counters_fold`."""
    return _counters_fold(EvidenceCount, EVIDENCE_KEY, ("n", "total"), {"day__lt": before}, batch)


def breaker_counts_fold(*, before: datetime, batch: int = 2000) -> int:
    """Fold the shards of every breaker minute before `before` into its shard 0: a breaker's
    day-long baseline then sums one row per minute and metric, not BreakerCount.SHARDS."""
    return _counters_fold(BreakerCount, BREAKER_KEY, ("n",), {"minute__lt": before}, batch)


def _counters_fold(model: type, keys: Sequence[str], values: Sequence[str], past: dict, batch: int) -> int:
    """Fold the rows of a sharded counter table that match `past` into shard 0 of their key.

    Their writers are done by then (a late one adds to a shard again; the next fold takes it).
    Each batch is one transaction: its shard rows locked in key order, deleted, and their sums
    added to shard 0, so the totals every reader sees never change. Safe to repeat."""
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
# Kill switch and circuit breakers (SPEC §1, §3)
# ---------------------------------------------------------------------------------------


def _lock_deployment(deployment_id: int) -> Deployment:
    """The deployment row, locked FOR NO KEY UPDATE: writers serialise on it, while inserts
    of rows that merely reference it (counters, actions: FOR KEY SHARE) are not blocked, and a
    transaction that already inserted such a row can still take it without a deadlock."""
    try:
        return Deployment.objects.select_for_update(no_key=True).get(pk=deployment_id)
    except Deployment.DoesNotExist:
        raise InvalidInput(f"deployment {deployment_id} does not exist") from None


def _require_admin(actor: AbstractBaseUser | None, what: str) -> Member:
    member = Member.objects.filter(user=actor).first() if actor is not None and actor.is_authenticated else None
    if member is None or not member.is_admin:
        raise NotAllowed(f"only admins may {what}")
    return member


def _require_reason(reason: str, what: str) -> str:
    if not reason or not reason.strip():
        raise InvalidInput(f"a reason is required to {what}")
    return reason.strip()


def _set_paused(*, deployment_id: int, actor: AbstractBaseUser, reason: str, paused: bool) -> Deployment:
    verb = "pause" if paused else "resume"
    _require_admin(actor, f"{verb} a deployment")
    reason = _require_reason(reason, verb)
    deployment = _lock_deployment(deployment_id)
    if deployment.paused != paused:
        deployment.paused = paused
        deployment.save(update_fields=["paused"])
        audit_event_record(
            verb=f"deployments.deployment.{verb}d", actor=actor, deployment=deployment, obj=deployment, reason=reason
        )
    return deployment


@transaction.atomic
def deployment_pause(*, deployment_id: int, actor: AbstractBaseUser, reason: str) -> Deployment:
    """Kill switch on: from now on nothing is auto-executed. Admins only, with a reason.
    Safe to repeat: pausing a paused deployment changes nothing."""
    return _set_paused(deployment_id=deployment_id, actor=actor, reason=reason, paused=True)


@transaction.atomic
def deployment_resume(*, deployment_id: int, actor: AbstractBaseUser, reason: str) -> Deployment:
    """Kill switch off. Admins only, with a reason. Safe to repeat."""
    return _set_paused(deployment_id=deployment_id, actor=actor, reason=reason, paused=False)


@transaction.atomic
def breaker_trip(*, deployment_id: int, reason: str, data: dict | None = None, now: datetime | None = None) -> bool:
    """Trip the breaker: routing fails closed at once; admins are notified after commit.

    Returns True when this call tripped it, False when it was already tripped (safe to repeat).
    """
    deployment = _lock_deployment(deployment_id)
    if deployment.breaker_tripped:
        return False
    now = now or timezone.now()
    deployment.breaker_tripped_at = now
    deployment.breaker_reason = reason[:500]
    deployment.save(update_fields=["breaker_tripped_at", "breaker_reason"])
    from deployments.gate import BREAKER_TRIPPED_METRIC, DEPLOYMENT_WIDE

    evidence_add(deployment_id=deployment.pk, action_type=DEPLOYMENT_WIDE, metric=BREAKER_TRIPPED_METRIC)
    event = audit_event_record(
        verb="deployments.breaker.tripped", deployment=deployment, obj=deployment, reason=reason, data=data or {}
    )
    # After commit: the trip stands even if the broker is down; the failure is logged.
    enqueue_on_commit("deployments.breaker_notify", deployment.pk, event.pk, robust=True)
    if deployment.slack_channel:  # posted to the deployment's Slack channel too (integrations.slack)
        enqueue_on_commit("integrations.slack_breaker_tripped", deployment.pk, event.pk, robust=True)
    return True


def breaker_check(*, deployment: Deployment | int, now: datetime | None = None) -> bool:
    """Read the breaker's windows; trip it when a threshold is crossed (SPEC §3).

    Only stages 3 and 4 have breakers. Returns True when this call tripped it. Safe to repeat
    and to call inside another transaction (the trip is its own savepoint).
    """
    if not isinstance(deployment, Deployment):
        deployment = Deployment.objects.get(pk=deployment)
    if deployment.breaker_tripped or deployment.stage not in (Stage.SUPERVISED, Stage.AUTONOMOUS):
        return False
    from deployments.breakers import breaker_reading

    reading = breaker_reading(deployment, now)
    if not reading.reasons:
        return False
    return breaker_trip(deployment_id=deployment.pk, reason="; ".join(reading.reasons), data=reading.as_dict(), now=now)


@transaction.atomic
def breaker_reset(*, deployment_id: int, actor: AbstractBaseUser, reason: str) -> Deployment:
    """An admin resets a tripped breaker (audited); the breaker's windows restart from now."""
    _require_admin(actor, "reset a circuit breaker")
    reason = _require_reason(reason, "reset the breaker")
    deployment = _lock_deployment(deployment_id)
    if not deployment.breaker_tripped:
        raise InvalidTransition("the breaker is not tripped")
    tripped_at, tripped_reason = deployment.breaker_tripped_at, deployment.breaker_reason
    deployment.breaker_tripped_at = None
    deployment.breaker_reason = ""
    deployment.breaker_reset_at = timezone.now()
    deployment.save(update_fields=["breaker_tripped_at", "breaker_reason", "breaker_reset_at"])
    audit_event_record(
        verb="deployments.breaker.reset",
        actor=actor,
        deployment=deployment,
        obj=deployment,
        reason=reason,
        data={"tripped_at": tripped_at.isoformat(), "tripped_reason": tripped_reason},
    )
    return deployment


# ---------------------------------------------------------------------------------------
# Promotion and demotion (SPEC §2)
# ---------------------------------------------------------------------------------------


def _check_action_type(action_type: str) -> None:
    if action_type and len(action_type) > 100:
        raise InvalidInput("action_type is too long")


def _set_stage(deployment: Deployment, action_type: str, stage: Stage, now: datetime) -> None:
    """Move the deployment, or one action type's cap, to `stage`. Caller holds the row lock."""
    if action_type:
        caps = dict(deployment.stage_caps or {})
        entered = dict(deployment.stage_caps_entered_at or {})
        if stage.rank >= Stage(deployment.stage).rank:
            caps.pop(action_type, None)
            entered.pop(action_type, None)
        else:
            caps[action_type] = stage.value
            entered[action_type] = now.isoformat()
        deployment.stage_caps, deployment.stage_caps_entered_at = caps, entered
        deployment.save(update_fields=["stage_caps", "stage_caps_entered_at"])
        return
    deployment.stage = stage.value
    deployment.stage_entered_at = now
    # A cap at or above the new stage no longer caps anything.
    caps = {t: c for t, c in (deployment.stage_caps or {}).items() if Stage(c).rank < stage.rank}
    entered = {t: v for t, v in (deployment.stage_caps_entered_at or {}).items() if t in caps}
    deployment.stage_caps, deployment.stage_caps_entered_at = caps, entered
    deployment.save(update_fields=["stage", "stage_entered_at", "stage_caps", "stage_caps_entered_at"])


def _cancel_open_requests(deployment: Deployment, action_type: str | None, actor: AbstractBaseUser, why: str) -> None:
    """Open requests whose starting stage no longer holds are cancelled (audited)."""
    qs = PromotionRequest.objects.select_for_update().filter(deployment=deployment, status=PromotionRequest.Status.OPEN)
    if action_type is not None:
        qs = qs.filter(action_type=action_type)
    for request in qs:
        request.status = PromotionRequest.Status.CANCELLED
        request.decided_at = timezone.now()
        request.decision_reason = why
        request.save(update_fields=["status", "decided_at", "decision_reason"])
        audit_event_record(
            verb="deployments.promotion.cancelled", actor=actor, deployment=deployment, obj=request, reason=why
        )


@transaction.atomic
def deployment_promotion_request(
    *,
    deployment_id: int,
    actor: AbstractBaseUser,
    to_stage: Stage | str | None = None,
    action_type: str = "",
    reason: str = "",
) -> PromotionRequest:
    """An admin asks to move the deployment (or one action type) up exactly one stage.

    The gate is evaluated now and frozen into the request. Refused when it does not pass
    (the unmet criteria are named), when `to_stage` is not the next stage (no skipping), or
    when a request is already open for the same deployment and action type.
    """
    from deployments.gate import current_stage_for, gate_evaluate

    _require_admin(actor, "request a promotion")
    _check_action_type(action_type)
    deployment = _lock_deployment(deployment_id)
    current = current_stage_for(deployment, action_type)
    target = current.next
    if target is None:
        raise InvalidTransition(f"{deployment.slug} is already at the top stage ({current.value})")
    if to_stage is not None:
        try:
            wanted = Stage(to_stage)
        except ValueError:
            raise InvalidInput(f"unknown stage {to_stage!r}") from None
        if wanted is not target:
            raise InvalidTransition(
                f"promotion goes one step at a time: from {current.value} the next stage is {target.value}, "
                f"not {wanted.value}"
            )
    if PromotionRequest.objects.filter(
        deployment=deployment, action_type=action_type, status=PromotionRequest.Status.OPEN
    ).exists():
        raise InvalidTransition("a promotion request is already open; approve or reject it first")
    evaluation = gate_evaluate(deployment=deployment, action_type=action_type)
    if not evaluation.passed:
        missing = "; ".join(f"{c.label} ({c.status})" for c in evaluation.unmet)
        raise InvalidTransition(f"the gate to {target.value} is {evaluation.outcome}: {missing}")
    request = PromotionRequest.objects.create(
        deployment=deployment,
        action_type=action_type,
        from_stage=current.value,
        to_stage=target.value,
        requested_by=actor,
        request_reason=reason.strip(),
        evidence=evaluation.as_dict(),
    )
    audit_event_record(
        verb="deployments.promotion.requested",
        actor=actor,
        deployment=deployment,
        obj=request,
        reason=request.request_reason,
        data={"from": current.value, "to": target.value, "action_type": action_type, "evidence": request.evidence},
    )
    return request


def _lock_request(request_id: int) -> tuple[PromotionRequest, Deployment]:
    try:
        deployment_id = PromotionRequest.objects.values_list("deployment_id", flat=True).get(pk=request_id)
    except PromotionRequest.DoesNotExist:
        raise InvalidInput(f"promotion request {request_id} does not exist") from None
    deployment = _lock_deployment(deployment_id)  # always the deployment first, then the request
    return PromotionRequest.objects.select_for_update().get(pk=request_id), deployment


@transaction.atomic
def deployment_promotion_approve(*, request_id: int, actor: AbstractBaseUser, reason: str) -> PromotionRequest:
    """A second admin approves: the stage changes now.

    Four-eyes: the requester may not approve. The gate is evaluated again at approval and
    must still pass (evidence can turn between request and approval, e.g. a failure spike);
    both evaluations stay on the request and in the audit log. The deployment (or type) must
    still be at the request's starting stage.
    """
    from deployments.gate import current_stage_for, gate_evaluate

    _require_admin(actor, "approve a promotion")
    reason = _require_reason(reason, "approve a promotion")
    request, deployment = _lock_request(request_id)
    if not request.is_open:
        raise InvalidTransition(f"this request is {request.status}; only open requests can be approved")
    if request.requested_by_id == actor.pk:
        raise NotAllowed("four-eyes: a different admin must approve your own promotion request")
    if request.evidence.get("outcome") != "pass":
        raise InvalidTransition("the frozen evaluation did not pass; reject this request")
    current = current_stage_for(deployment, request.action_type)
    if current.value != request.from_stage:
        raise InvalidTransition(
            f"the stage is now {current.value}, not {request.from_stage} as requested; reject this request"
        )
    evaluation = gate_evaluate(deployment=deployment, action_type=request.action_type)
    if not evaluation.passed:
        missing = "; ".join(f"{c.label} ({c.status})" for c in evaluation.unmet)
        raise InvalidTransition(f"the gate no longer passes ({evaluation.outcome}): {missing}")
    now = timezone.now()
    request.status = PromotionRequest.Status.APPROVED
    request.decided_by = actor
    request.decided_at = now
    request.decision_reason = reason
    request.decision_evidence = evaluation.as_dict()
    request.save()
    _set_stage(deployment, request.action_type, Stage(request.to_stage), now)
    audit_event_record(
        verb="deployments.promotion.approved", actor=actor, deployment=deployment, obj=request, reason=reason
    )
    audit_event_record(
        verb="deployments.stage.promoted",
        actor=actor,
        deployment=deployment,
        obj=deployment,
        reason=reason,
        data={
            "from": request.from_stage,
            "to": request.to_stage,
            "action_type": request.action_type,
            "request": request.pk,
            "requested_by": request.requested_by.get_username(),
            "evidence": request.evidence,
            "evidence_at_approval": request.decision_evidence,
        },
    )
    return request


@transaction.atomic
def deployment_promotion_reject(*, request_id: int, actor: AbstractBaseUser, reason: str) -> PromotionRequest:
    """A second admin rejects an open request, with a reason. The requester may not decide it."""
    _require_admin(actor, "reject a promotion")
    reason = _require_reason(reason, "reject a promotion")
    request, deployment = _lock_request(request_id)
    if not request.is_open:
        raise InvalidTransition(f"this request is {request.status}; only open requests can be rejected")
    if request.requested_by_id == actor.pk:
        raise NotAllowed("four-eyes: a different admin must decide your own promotion request")
    request.status = PromotionRequest.Status.REJECTED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.decision_reason = reason
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    audit_event_record(
        verb="deployments.promotion.rejected", actor=actor, deployment=deployment, obj=request, reason=reason
    )
    return request


@transaction.atomic
def deployment_demote(
    *, deployment_id: int, actor: AbstractBaseUser, to_stage: Stage | str, reason: str, action_type: str = ""
) -> Deployment:
    """Demote the deployment (or cap one action type) to any lower stage, at once. Admins only,
    with a reason. Open promotion requests it makes stale are cancelled."""
    from deployments.gate import current_stage_for, gate_evaluate

    _require_admin(actor, "demote a deployment")
    reason = _require_reason(reason, "demote")
    _check_action_type(action_type)
    try:
        target = Stage(to_stage)
    except ValueError:
        raise InvalidInput(f"unknown stage {to_stage!r}") from None
    deployment = _lock_deployment(deployment_id)
    current = current_stage_for(deployment, action_type)
    if target.rank >= current.rank:
        raise InvalidTransition(f"demotion goes down: {target.value} is not below {current.value}")
    evidence = gate_evaluate(deployment=deployment, action_type=action_type).as_dict()
    _set_stage(deployment, action_type, target, timezone.now())
    _cancel_open_requests(deployment, action_type or None, actor, f"demoted to {target.value}")
    audit_event_record(
        verb="deployments.stage.demoted",
        actor=actor,
        deployment=deployment,
        obj=deployment,
        reason=reason,
        data={"from": current.value, "to": target.value, "action_type": action_type, "evidence": evidence},
    )
    return deployment


def counters_add_many(
    *, model: type, keys: Sequence[str], values: Sequence[str], rows: dict[tuple, Sequence[int]], shards: int
) -> None:
    """Add `rows` ({key tuple: value deltas}) to a sharded counter table in ONE statement, in
    the caller's transaction: INSERT ... ON CONFLICT (keys, shard) DO UPDATE SET v = v + excluded.v.

    Rows are written in key order on one random shard, so concurrent batches never deadlock
    and rarely wait for each other. All-zero rows are skipped.
    """
    items = sorted((key, deltas) for key, deltas in rows.items() if any(deltas))
    if not items:
        return
    table = model._meta.db_table
    shard = random.randrange(shards)
    columns = [*keys, "shard", *values]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params: list = []
    for key, deltas in items:
        params += [*key, shard, *deltas]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} ({", ".join(columns)})
            VALUES {", ".join([row_sql] * len(items))}
            {counter_upsert_tail(table, keys, values)}
            """,  # noqa: S608 -- table and column names are ours, every value is a parameter
            params,
        )


def evidence_add_many(rows: Iterable[tuple[int, date, str, str, int]]) -> None:
    """Add many evidence counters at once, in the caller's transaction: one statement.

    `rows` are (deployment_id, day, action_type, metric, n); n may be negative (a recompute or
    an adjudication moves a pair from one metric to another). Equal keys are summed first.
    """
    sums: dict[tuple[int, date, str, str], int] = defaultdict(int)
    for deployment_id, day, action_type, metric, n in rows:
        sums[(deployment_id, day, action_type, metric)] += n
    counters_add_many(
        model=EvidenceCount,
        keys=("deployment_id", "day", "action_type", "metric"),
        values=("n", "total"),
        rows={key: (n, 0.0) for key, n in sums.items()},
        shards=EvidenceCount.SHARDS,
    )
