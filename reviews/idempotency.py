"""Idempotency-Key for POST /api/v1/actions (IETF httpapi "Idempotency-Key" draft).

- same key, same body: the first response is replayed (with `Idempotent-Replayed: true`);
- same key, another body: 422;
- same key while the first request is still in flight: 409.

A new key is claimed, with its reply, in the very statement that stores the action
(reviews.ingest): the key's record exists exactly when its action does, and a concurrent
request with the same key waits for that statement, then finds the reply. A key that is
already claimed goes through `idempotency_claim`: a key of its own short transaction, so that
concurrent requests see it, completed in the transaction that does the work
(`idempotency_complete`).
"""

from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from deployments.errors import Conflict, DomainError
from deployments.models import Deployment
from deployments.sql import prepared_cursor
from reviews.models import IdempotencyRecord


class IdempotencyKeyReused(DomainError, code="idempotency_key_reused", http_status=422):
    """The Idempotency-Key was used before with another request body."""


class IdempotencyKeyInFlight(Conflict, code="idempotency_key_in_flight"):
    """The first request with this Idempotency-Key is still being answered."""


class IdempotencyKeyTaken(Exception):  # noqa: N818 -- an outcome its caller handles
    """The Idempotency-Key that a proposal was to claim in its own statement is already
    claimed: nothing was written. The caller goes through `idempotency_claim`, which replays
    the stored reply, or answers 409 or 422, or takes over an expired claim."""


def idempotency_claim(*, deployment: Deployment, key: str, fingerprint: str) -> IdempotencyRecord:
    """Claim `key` for this request, or return the finished record to replay.

    Returns a record with `in_flight=True` when the caller now owns the key and must do the
    work, or a finished record whose response the caller replays. Raises
    IdempotencyKeyReused (422) or IdempotencyKeyInFlight (409).
    """
    now = timezone.now()
    record = _insert_claim(deployment=deployment, key=key, fingerprint=fingerprint, now=now)
    if record is not None:
        return record
    record = IdempotencyRecord.objects.get(deployment=deployment, key=key)
    if record.request_sha256 != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request body")
    if not record.in_flight:
        if now - record.created_at <= settings.IDEMPOTENCY_KEY_TTL:
            return record
        # Past its retention: the key starts afresh.
        taken = IdempotencyRecord.objects.filter(pk=record.pk, in_flight=False, created_at=record.created_at)
    else:
        if now - record.created_at < settings.IDEMPOTENCY_IN_FLIGHT_TIMEOUT:
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed; retry later")
        # The first request died without finishing: take the key over.
        taken = IdempotencyRecord.objects.filter(pk=record.pk, in_flight=True, created_at=record.created_at)
    if taken.update(in_flight=True, created_at=now, response_status=None, response_body=None) != 1:
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed; retry later")
    record.refresh_from_db()
    return record


def _insert_claim(*, deployment: Deployment, key: str, fingerprint: str, now: datetime) -> IdempotencyRecord | None:
    """INSERT the claim unless the key exists; the new record, or None if it existed.

    One statement (ON CONFLICT DO NOTHING: no exception, no savepoint). This is the API's hot
    path, so the SQL is written once here rather than compiled by the ORM per request.
    """
    table = IdempotencyRecord._meta.db_table
    values = "VALUES (%s, %s, %s, %s, %s)"
    if connection.vendor == "postgresql":
        # The claim is a marker, not the record of an accepted action, so it need not wait
        # for its own WAL flush: the work's (synchronous) commit flushes the WAL up to and
        # past this one, so a claim is durable whenever its work is. If the server crashes
        # before that, claim and work are lost together and a retry starts afresh: the
        # guarantee is unchanged, and one disk flush per request is saved. set_config(...,
        # true) lasts until this statement's own transaction ends (or the caller's, if any).
        values = (
            "SELECT %s::bigint, %s, %s, %s, %s::timestamptz "
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
        )
    sql = f"""
        INSERT INTO {table} (deployment_id, key, request_sha256, in_flight, created_at)
        {values}
        ON CONFLICT (deployment_id, key) DO NOTHING
        RETURNING id
    """  # noqa: S608 -- the table name is ours, every value is a parameter
    created_at = IdempotencyRecord._meta.get_field("created_at").get_db_prep_save(now, connection)
    with prepared_cursor() as cursor:  # one statement: its own transaction, or the caller's
        cursor.execute(sql, [deployment.pk, key, fingerprint, True, created_at])
        row = cursor.fetchone()
    if row is None:
        return None
    record = IdempotencyRecord(
        pk=row[0], deployment=deployment, key=key, request_sha256=fingerprint, in_flight=True, created_at=now
    )
    record._state.adding = False
    return record


def idempotency_complete(*, record: IdempotencyRecord, status: int, body: dict) -> None:
    """Store the response; call inside the transaction that did the work."""
    table = IdempotencyRecord._meta.db_table
    stored = IdempotencyRecord._meta.get_field("response_body").get_db_prep_save(body, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET in_flight = %s, response_status = %s, response_body = %s WHERE id = %s",  # noqa: S608
            [False, status, stored, record.pk],
        )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """Give the key back after the work failed, so a retry is processed afresh."""
    IdempotencyRecord.objects.filter(pk=record.pk, in_flight=True).delete()


def idempotency_purge(*, now=None) -> int:
    """Delete keys past their retention. Safe to repeat."""
    cutoff = (now or timezone.now()) - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
