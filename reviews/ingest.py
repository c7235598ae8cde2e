"""Storing a new proposal: the action, its audit event, its evidence counters and the API's
stored Idempotency-Key reply, all or nothing.

This is the agent API's hot path (issue 2 measures it against a trivial endpoint: see
bench/ingest.py). On PostgreSQL it is ONE statement: data-modifying CTEs hang off the
action's INSERT ... RETURNING id, so a proposal costs one round trip and, outside a caller's
transaction, one commit, with no SQL compiled per request. Elsewhere (SQLite, the embedded
default) the ORM writes the same rows one by one inside a transaction.
tests/reviews/test_ingest.py checks that the two write the same rows.

The rows come from the model instances (`deployments.sql.json_row`) as whole rows of their
tables, so a new field on ProposedAction or AuditEvent is written here without touching this
module.
"""

# ruff: noqa: S608 -- the statement's table and column names are the models' own; every value is a parameter

import enum
import functools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from psycopg.types.json import Jsonb

from core.fastjson import json_bytes
from deployments.counters import CounterDelta, counters_add
from deployments.models import ROW_VERSION_SQL, ApiKey, AuditEvent, Deployment, KeyCheck
from deployments.sql import counter_upsert_tail, json_row, json_value, prepared_cursor
from reviews.idempotency import IdempotencyKeyReused, idempotency_complete
from reviews.models import IdempotencyRecord, ProposedAction
from reviews.representation import action_representation

REPLAY_STATUS = 201
REJECTED = ProposedAction.Status.REJECTED.value
# What makes two proposals "the same" for the rejected-stays-rejected rule.
SAME_PROPOSAL = ("deployment_id", "external_id", "action_type", "proposal_sha256")


class Outcome(enum.Enum):
    STORED = "stored"  # every row written; the action's pk is set
    # Nothing written, because:
    REJECTED = "rejected"  # the same proposal was already rejected (rejected stays rejected)
    KEY_TAKEN = "key_taken"  # the Idempotency-Key to claim is already claimed
    KEY_CHANGED = "key_changed"  # the cached API key was revoked, or its deployment changed


@dataclass
class NewProposal:
    """The rows of one new proposal, unsaved."""

    action: ProposedAction
    audit: AuditEvent  # its object_id is filled in with the action's id
    counters: Sequence[CounterDelta]
    # Write nothing if the same proposal (deployment, external_id, action_type, proposal
    # hash) was already rejected.
    unless_rejected: bool
    # The request's Idempotency-Key, stored with the action's representation as its 201 reply.
    # Unsaved: claimed here, in the same statement (KEY_TAKEN if the key exists); saved (the
    # two-step protocol of reviews.idempotency, claimed before): completed here.
    idempotency: IdempotencyRecord | None = None
    # Write only if the API key, taken from the process's cache, is still as it was read.
    key_check: KeyCheck | None = None


def proposal_insert(proposal: NewProposal) -> Outcome:
    """Write `proposal`, all or nothing. On STORED, `proposal.action.pk` is set. Raises
    IdempotencyKeyReused (422) when an earlier action already carries the Idempotency-Key."""
    try:
        if connection.vendor == "postgresql":
            return _insert_postgresql(proposal)
        return _insert_orm(proposal)
    except IntegrityError as exc:
        # The action's (deployment, idempotency_key) is unique for good, while the key's claim
        # is purged after IDEMPOTENCY_KEY_TTL: a key sent again after that lands here.
        if proposal.action.idempotency_key is not None and "idempotency_key" in str(exc):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for an earlier action, now past its retention; send a new key"
            ) from exc
        raise


def _already_rejected(action: ProposedAction):
    return ProposedAction.objects.filter(
        status=REJECTED, **{column: getattr(action, column) for column in SAME_PROPOSAL}
    )


def _insert_orm(proposal: NewProposal) -> Outcome:
    action, audit, record = proposal.action, proposal.audit, proposal.idempotency
    # The cache of keys is PostgreSQL's alone (its check reads the row version, xmin/ctid).
    assert proposal.key_check is None, "a cached API key is checked only on PostgreSQL"
    with transaction.atomic():
        if proposal.unless_rejected and _already_rejected(action).exists():
            return Outcome.REJECTED
        if record is not None and record.pk is None:
            record.in_flight = True
            try:
                with transaction.atomic():  # a savepoint: a key claimed meanwhile leaves the rest undone
                    record.save()
            except IntegrityError:
                return Outcome.KEY_TAKEN
        action.save()
        audit.object_id = str(action.pk)
        audit.save()
        counters_add(proposal.counters)
        if record is not None:
            idempotency_complete(record=record, status=REPLAY_STATUS, body=_reply(action))
    return Outcome.STORED


def _reply(action: ProposedAction) -> dict:
    return action_representation(action, deployment_slug=action.deployment.slug)


def _insert_postgresql(proposal: NewProposal) -> Outcome:
    """One statement (see `_statement`, whose text is cached): the rows' values go as ONE
    JSON document, which PostgreSQL turns into rows (jsonb_populate_record), so per request
    Python builds a dict and encodes it once, whatever the number of columns."""
    action, audit, record = proposal.action, proposal.audit, proposal.idempotency
    doc = {"a": json_row(action), "e": json_row(audit)}
    claims = record is not None and record.pk is None
    params: dict[str, Any] = {}
    if claims:
        # The Idempotency-Key with its reply; the reply's id is the new action's, set in SQL.
        record.in_flight, record.response_status = False, REPLAY_STATUS
        record.response_body = _reply(action)
        record.created_at = action.created_at
        doc["k"] = json_row(record)
    elif record is not None:  # claimed before: completed
        params["reply"] = Jsonb(_reply(action), dumps=json_bytes)
        params["record_id"] = record.pk
    for i, delta in enumerate(proposal.counters):
        doc[f"c{i}"] = {column: json_value(v) for column, v in (*delta.key.items(), *delta.add.items())}
    params["doc"] = Jsonb(doc, dumps=json_bytes)  # sent as jsonb: the server reads it once, at bind
    if proposal.key_check is not None:
        params["key_id"] = proposal.key_check.key_id
        params["key_version"] = proposal.key_check.deployment_version
    sql = _statement(
        tuple((delta.model, tuple(delta.key), tuple(delta.add)) for delta in proposal.counters),
        claims=claims,
        completes=record is not None and not claims,
        checks_key=proposal.key_check is not None,
        unless_rejected=proposal.unless_rejected,
    )

    db = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic() if db.in_atomic_block else nullcontext(), prepared_cursor() as cursor:
        cursor.execute(sql, params)
        pk, accepted, fresh, *claimed = cursor.fetchone()
    if pk is None:
        if not fresh:
            return Outcome.KEY_CHANGED
        return Outcome.KEY_TAKEN if accepted else Outcome.REJECTED
    action.pk = pk
    action._state.adding = False
    action._state.db = db.alias
    audit.object_id = str(pk)
    if claimed:
        record.pk = claimed[0]
        record._state.adding = False
        record.response_body["id"] = pk
    return Outcome.STORED


def _populated(model: type, key: str, extra: str = "") -> str:
    """The row of `model` that the document's `key` holds, as a FROM item `r`: its id taken
    from the table's sequence, and `extra` (jsonb_build_object pairs) set over it."""
    table = model._meta.db_table
    pairs = f"'id', nextval('{_id_sequence(table)}'::regclass){extra}"
    return f"jsonb_populate_record(NULL::{table}, %(doc)s -> '{key}' || jsonb_build_object({pairs})) r"


@functools.cache
def _id_sequence(table: str) -> str:
    """The sequence of `table`'s id, looked up once (pg_get_serial_sequence searches the
    catalog on every call): the statement names it, and the server resolves it when it
    prepares the statement."""
    with prepared_cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return cursor.fetchone()[0].replace("'", "''")


@functools.lru_cache(maxsize=64)
def _statement(
    counters: tuple[tuple[type, tuple[str, ...], tuple[str, ...]], ...],
    *,
    claims: bool,
    completes: bool,
    checks_key: bool,
    unless_rejected: bool,
) -> str:
    """The statement of one proposal; its values are in the JSON document %(doc)s:

        new AS (the action's row, its id taken first from the sequence)
        [fresh AS (the cached API key is still active and its deployment unchanged)]
        accepted AS (SELECT * FROM new [WHERE fresh] [AND NOT already rejected])
        [claim AS (INSERT the Idempotency-Key with its reply FROM accepted ON CONFLICT DO NOTHING)]
        action AS (INSERT ... SELECT FROM accepted [WHERE EXISTS claim] RETURNING id)
        then one CTE per other row, each reading `action`: none of them writes when it is empty;
        [replay AS (UPDATE the Idempotency-Key claimed before with its reply)]
        SELECT the action's id, whether it was accepted, whether the key was fresh[, the claim's id]

    The id is taken first so that the claim can store the reply that names it. Rows are whole
    rows of their tables (jsonb_populate_record of the table's own type), so the text names no
    column but the few it sets itself; a new field needs no change here. A handful of shapes
    exist (with or without a claim, a key check, a breaker minute): the cache holds them all."""
    actions = ProposedAction._meta.db_table
    parts = [f"new AS (SELECT r.* FROM {_populated(ProposedAction, 'a')})"]
    conditions = []
    if checks_key:
        parts.append(
            f"fresh AS (SELECT 1 FROM {ApiKey._meta.db_table} k JOIN {Deployment._meta.db_table} d "
            "ON d.id = k.deployment_id WHERE k.id = %(key_id)s AND k.revoked_at IS NULL "
            f"AND d.id = (SELECT deployment_id FROM new) AND {ROW_VERSION_SQL} = %(key_version)s)"
        )
        conditions.append("EXISTS (SELECT 1 FROM fresh)")
    if unless_rejected:  # _already_rejected(), written out: the ORM would compile it per request
        same = " AND ".join(f"a.{c} = new.{c}" for c in SAME_PROPOSAL)
        conditions.append(f"NOT EXISTS (SELECT 1 FROM {actions} a WHERE {same} AND a.status = '{REJECTED}')")
    parts.append(f"accepted AS (SELECT * FROM new{' WHERE ' if conditions else ''}{' AND '.join(conditions)})")

    claimed = ""
    if claims:
        reply = ", 'response_body', jsonb_set(%(doc)s -> 'k' -> 'response_body', '{id}', to_jsonb(accepted.id))"
        parts.append(
            f"claim AS (INSERT INTO {IdempotencyRecord._meta.db_table} SELECT r.* "
            f"FROM accepted, {_populated(IdempotencyRecord, 'k', reply)} "
            "ON CONFLICT (deployment_id, key) DO NOTHING RETURNING id)"
        )
        claimed = " WHERE EXISTS (SELECT 1 FROM claim)"
    parts.append(f"action AS (INSERT INTO {actions} SELECT * FROM accepted{claimed} RETURNING id)")
    object_id = ", 'object_id', action.id::text"
    parts.append(
        f"audit AS (INSERT INTO {AuditEvent._meta.db_table} SELECT r.* "
        f"FROM action, {_populated(AuditEvent, 'e', object_id)})"
    )
    for i, (model, keys, adds) in enumerate(counters):
        table = model._meta.db_table
        row = [*(f"r.{k}" for k in keys), f"floor(random() * {int(model.SHARDS)})::int", *(f"r.{a}" for a in adds)]
        parts.append(
            f"counter{i} AS (INSERT INTO {table} ({', '.join([*keys, 'shard', *adds])}) "
            f"SELECT {', '.join(row)} FROM action, jsonb_populate_record(NULL::{table}, %(doc)s -> 'c{i}') r "
            f"{counter_upsert_tail(table, keys, adds)})"
        )
    if completes:
        table = IdempotencyRecord._meta.db_table
        parts.append(
            f"replay AS (UPDATE {table} SET in_flight = false, response_status = {int(REPLAY_STATUS)}, "
            "response_body = jsonb_set(%(reply)s, '{id}', to_jsonb(action.id)) "
            f"FROM action WHERE {table}.id = %(record_id)s)"
        )

    fresh = "EXISTS (SELECT 1 FROM fresh)" if checks_key else "true"
    returned = f"(SELECT id FROM action), EXISTS (SELECT 1 FROM accepted), {fresh}"
    if claims:
        returned += ", (SELECT id FROM claim)"
    return f"WITH {', '.join(parts)} SELECT {returned}"
