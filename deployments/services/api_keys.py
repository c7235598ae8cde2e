"""API keys: creating and revoking them, and authenticating a request's bearer key, with the
process's cache of keys that the agent API's ingest verifies in its own statement."""

import copy
import functools
from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from core.updates import model_update
from deployments import scopes as scopes_mod
from deployments.errors import InvalidInput
from deployments.models import ROW_VERSION_SQL, ApiKey, Deployment, KeyCheck, hash_api_key
from deployments.services.audit import audit_event_record
from deployments.sql import instance_from_row, prepared_cursor, select_list


@transaction.atomic
def api_key_create(
    *,
    deployment: Deployment,
    name: str = "",
    actor: AbstractBaseUser | None = None,
    scopes: Sequence[str] = scopes_mod.DEFAULT,
) -> tuple[ApiKey, str]:
    """Create a key with `scopes` (deployments.scopes; default: propose only); returns the row
    and the raw key, which is never stored or shown again. InvalidInput for an unknown or
    empty scope list."""
    try:
        scopes = scopes_mod.scopes_clean(scopes)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    raw = ApiKey.generate_raw()
    key = ApiKey.objects.create(
        deployment=deployment,
        name=name,
        prefix=raw[:10],
        hashed_key=hash_api_key(raw),
        created_by=actor if actor is not None and actor.is_authenticated else None,
        scopes=scopes,
    )
    audit_event_record(
        verb="deployments.api_key.created",
        actor=actor,
        deployment=deployment,
        obj=key,
        data={"prefix": key.prefix, "name": name, "scopes": scopes},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key_id: int, actor: AbstractBaseUser | None = None) -> ApiKey:
    """Revoke a key. Safe to repeat: revoking a revoked key changes nothing."""
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        model_update(key, revoked_at=timezone.now())
        audit_event_record(verb="deployments.api_key.revoked", actor=actor, obj=key)
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
