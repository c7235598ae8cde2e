"""Storing a new proposal: the action, its audit event, its evidence counters and the API's
stored Idempotency-Key reply, all or nothing.

This is the agent API's hot path (issue 2 measures it against a trivial endpoint: see
bench/ingest.py). On PostgreSQL it is ONE statement: data-modifying CTEs hang off the
action's INSERT ... RETURNING id, so a proposal costs one round trip and, outside a caller's
transaction, one commit, with no SQL compiled per request. Elsewhere (SQLite, the embedded
default) the ORM writes the same rows one by one inside a transaction.
tests/reviews/test_ingest.py checks that the two write the same rows.

The columns and values come from the model instances (`deployments.sql.insert_row`), so a
new field on ProposedAction or AuditEvent is written here without touching this module.
"""

# ruff: noqa: S608 -- the statement's table and column names are the models' own; every value is a parameter

import enum
import functools
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction

from deployments.models import ROW_VERSION_SQL, ApiKey, AuditEvent, Deployment, KeyCheck
from deployments.services import CounterDelta, counters_apply
from deployments.sql import cast_types, counter_upsert_tail, insert_columns, insert_row, prepared_cursor
from reviews.idempotency import IdempotencyKeyReused, idempotency_complete
from reviews.models import IdempotencyRecord, ProposedAction
from reviews.representation import action_representation

REPLAY_STATUS = 201
REJECTED = ProposedAction.Status.REJECTED.value
# What makes two proposals "the same" for the rejected-stays-rejected rule.
SAME_PROPOSAL = ("deployment_id", "external_id", "action_type", "proposal_sha256")
# What the action's INSERT returns, for the rows that hang off it.
RETURNED = ("id", "deployment_id", "action_type")


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
    # The cache of keys is PostgreSQL's alone (its check reads xmin).
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
        counters_apply(proposal.counters)
        if record is not None:
            idempotency_complete(record=record, status=REPLAY_STATUS, body=_reply(action))
    return Outcome.STORED


def _reply(action: ProposedAction) -> dict:
    return action_representation(action, deployment_slug=action.deployment.slug)


def _insert_postgresql(proposal: NewProposal) -> Outcome:
    """One statement (see `_statement`), its text cached: per request only the values are
    worked out, as named parameters. A value equal to one of an earlier column of the same
    name and type shares its parameter, and a NULL is written out, so the parameters stay
    within what psycopg caches the parsed query for (tests/reviews/test_ingest.py checks it)."""
    action, audit, record = proposal.action, proposal.audit, proposal.idempotency
    params: dict[str, Any] = {}
    shared: dict[tuple[str, str, Any], str] = {}

    def names(prefix: str, model: type, columns: Sequence[str], values: Sequence[Any]) -> tuple[str | None, ...]:
        """Each value's parameter name (None: NULL), registering new ones in `params`."""
        types = cast_types(model, "postgresql", tuple(columns))
        row = []
        for i, (column, type_, value) in enumerate(zip(columns, types, values, strict=True)):
            if value is None:
                row.append(None)
                continue
            key = (column, type_, value)
            try:
                name = shared.get(key)
            except TypeError:  # unhashable (a JSON document): a parameter of its own
                name = None
            if name is None:
                name = f"{prefix}{i}"  # short: the statement's length counts too
                params[name] = value
                with suppress(TypeError):
                    shared[key] = name
            row.append(name)
        return tuple(row)

    action_row = names("a", ProposedAction, *insert_row(action)[:2])
    columns, values, _ = insert_row(audit)
    audit_row = names("e", AuditEvent, *_without(columns, values, AUDIT_FROM_ACTION))
    counters = tuple(
        (
            delta.model,
            tuple(delta.key),
            names(f"c{i}k", delta.model, tuple(delta.key), tuple(delta.key.values())),
            tuple(delta.add),
            names(f"c{i}n", delta.model, tuple(delta.add), tuple(delta.add.values())),
        )
        for i, delta in enumerate(proposal.counters)
    )
    claim: tuple[str | None, ...] | None = None
    if record is not None and record.pk is None:
        record.in_flight, record.response_status = False, REPLAY_STATUS
        record.response_body = _reply(action)
        columns, values, _ = insert_row(record)
        claim = names("k", IdempotencyRecord, *_without(columns, values, CLAIM_FROM_ACTION))
        record.created_at = action.created_at
    elif record is not None:  # claimed before: completed
        field = IdempotencyRecord._meta.get_field("response_body")
        params["reply"] = field.get_db_prep_save(_reply(action), connection)
        params["record_id"] = record.pk
    if proposal.key_check is not None:
        params["key_id"] = proposal.key_check.key_id
        params["key_version"] = proposal.key_check.deployment_version
    sql = _statement(
        action_row,
        audit_row,
        counters,
        claim,
        completes=record is not None and record.pk is not None,
        checks_key=proposal.key_check is not None,
        unless_rejected=proposal.unless_rejected,
    )

    # Alone, the statement is its own transaction. Inside a caller's, a savepoint keeps a
    # failure (a reused Idempotency-Key) from aborting the caller's transaction.
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


# Columns written from the action's row in SQL, not from parameters.
AUDIT_FROM_ACTION = {"object_id": "action.id::text"}
CLAIM_FROM_ACTION = {
    "deployment_id": "accepted.deployment_id",
    "key": "accepted.idempotency_key",
    "created_at": "accepted.created_at",
    "in_flight": "false",
    "response_status": str(int(REPLAY_STATUS)),
}


def _without(columns: Sequence[str], values: Sequence[Any], written: dict[str, str]) -> tuple[list, list]:
    kept = [(c, v) for c, v in zip(columns, values, strict=True) if c not in written]
    return [c for c, _ in kept], [v for _, v in kept]


def _values_sql(model: type, columns: Sequence[str], names: Sequence[str | None]) -> list[str]:
    types = cast_types(model, "postgresql", tuple(columns))
    return [f"%({n})s::{t}" if n else f"NULL::{t}" for n, t in zip(names, types, strict=True)]


@functools.lru_cache(maxsize=256)
def _statement(
    action_row: tuple[str | None, ...],
    audit_row: tuple[str | None, ...],
    counters: tuple[tuple[type, tuple[str, ...], tuple[str | None, ...], tuple[str, ...], tuple[str | None, ...]], ...],
    claim: tuple[str | None, ...] | None,
    *,
    completes: bool,
    checks_key: bool,
    unless_rejected: bool,
) -> str:
    """The statement of one proposal, from the parameter names of its values (None: NULL):

        new AS (SELECT nextval(the actions' id sequence) AS id, the action's values)
        [fresh AS (the cached API key is still active and its deployment unchanged)]
        accepted AS (SELECT * FROM new [WHERE fresh] [AND NOT already rejected])
        [claim AS (INSERT the Idempotency-Key with its reply FROM accepted ON CONFLICT DO NOTHING)]
        action AS (INSERT ... SELECT FROM accepted [WHERE EXISTS claim] RETURNING id)
        then one CTE per other row, each reading `action`: none of them writes when it is empty;
        [replay AS (UPDATE the Idempotency-Key claimed before with its reply)]
        SELECT the action's id, whether it was accepted, whether the key was fresh[, the claim's id]

    The id is taken first so that the claim can store the reply that names it. Table and
    column names are the models' own; every value is a parameter (hence the S608 waivers).
    A handful of shapes exist (routes, with or without a claim, a key check, a breaker minute),
    so the cache holds them all."""
    actions = ProposedAction._meta.db_table
    action_columns = insert_columns(ProposedAction)
    values = ", ".join(
        f"{sql} AS {column}"
        for sql, column in zip(_values_sql(ProposedAction, action_columns, action_row), action_columns, strict=True)
    )
    parts = [f"new AS (SELECT nextval(pg_get_serial_sequence('{actions}', 'id')) AS id, {values})"]
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
    if claim is not None:
        table = IdempotencyRecord._meta.db_table
        columns = [c for c in insert_columns(IdempotencyRecord) if c not in CLAIM_FROM_ACTION]
        row = [
            f"jsonb_set({sql}, '{{id}}', to_jsonb(accepted.id))" if column == "response_body" else sql
            for column, sql in zip(columns, _values_sql(IdempotencyRecord, columns, claim), strict=True)
        ]
        parts.append(
            f"claim AS (INSERT INTO {table} ({', '.join([*CLAIM_FROM_ACTION, *columns])}) "
            f"SELECT {', '.join([*CLAIM_FROM_ACTION.values(), *row])} FROM accepted "
            "ON CONFLICT (deployment_id, key) DO NOTHING RETURNING id)"
        )
        claimed = " WHERE EXISTS (SELECT 1 FROM claim)"
    parts.append(
        f"action AS (INSERT INTO {actions} (id, {', '.join(action_columns)}) "
        f"SELECT * FROM accepted{claimed} RETURNING id)"  # `new`'s columns, in this order
    )

    columns = [c for c in insert_columns(AuditEvent) if c not in AUDIT_FROM_ACTION]
    parts.append(
        f"audit AS (INSERT INTO {AuditEvent._meta.db_table} ({', '.join([*AUDIT_FROM_ACTION, *columns])}) "
        f"SELECT {', '.join([*AUDIT_FROM_ACTION.values(), *_values_sql(AuditEvent, columns, audit_row)])} "
        "FROM action)"
    )

    for i, (model, keys, key_names, adds, add_names) in enumerate(counters):
        table = model._meta.db_table
        row = [
            *_values_sql(model, keys, key_names),
            f"floor(random() * {int(model.SHARDS)})::int",  # one of the row's shards, at random
            *_values_sql(model, adds, add_names),
        ]
        parts.append(
            f"counter{i} AS (INSERT INTO {table} ({', '.join([*keys, 'shard', *adds])}) "
            f"SELECT {', '.join(row)} FROM action {counter_upsert_tail(table, keys, adds)})"
        )

    if completes:
        table = IdempotencyRecord._meta.db_table
        parts.append(
            f"replay AS (UPDATE {table} SET in_flight = false, response_status = {int(REPLAY_STATUS)}, "
            "response_body = jsonb_set(%(reply)s::jsonb, '{id}', to_jsonb(action.id)) "
            f"FROM action WHERE {table}.id = %(record_id)s)"
        )

    fresh = "EXISTS (SELECT 1 FROM fresh)" if checks_key else "true"
    returned = f"(SELECT id FROM action), EXISTS (SELECT 1 FROM accepted), {fresh}"
    if claim is not None:
        returned += ", (SELECT id FROM claim)"
    return f"WITH {', '.join(parts)} SELECT {returned}"
