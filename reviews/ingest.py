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

import enum
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction

from deployments.models import ROW_VERSION_SQL, ApiKey, AuditEvent, Deployment, KeyCheck
from deployments.services import CounterDelta, counters_apply
from deployments.sql import cast_types, counter_upsert_tail, insert_row, prepared_cursor
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
    """One statement:

        new AS (SELECT nextval(the actions' id sequence) AS id, the action's values)
        [fresh AS (the cached API key, if any, is still active and its deployment unchanged)]
        accepted AS (SELECT * FROM new [WHERE fresh] [AND NOT already rejected])
        [claim AS (INSERT the Idempotency-Key with its reply ... FROM accepted ON CONFLICT DO NOTHING)]
        action AS (INSERT ... SELECT FROM accepted [WHERE EXISTS claim] RETURNING id)
        then one CTE per other row, each reading `action`: none of them writes when it is empty.

    The id is taken first so that the claim can store the reply that names it. Table and column
    names are the models' own; every value is a parameter (hence the S608 waivers below).
    Their number stays within what psycopg caches the parsed query for
    (tests/reviews/test_ingest.py checks it)."""
    action, audit, record = proposal.action, proposal.audit, proposal.idempotency
    actions = ProposedAction._meta.db_table
    params: list = []
    parts = []

    def value_sql(value: Any, type_: str) -> str:
        """A value's SQL: NULL written out (fewer parameters), anything else a parameter."""
        if value is None:
            return f"NULL::{type_}"
        params.append(value)
        return f"%s::{type_}"

    columns, values, types = insert_row(action)
    new = ", ".join(
        f"{value_sql(value, type_)} AS {column}" for column, type_, value in zip(columns, types, values, strict=True)
    )
    parts.append(f"new AS (SELECT nextval(pg_get_serial_sequence('{actions}', 'id')) AS id, {new})")  # noqa: S608
    conditions = []
    if proposal.key_check is not None:
        params += [proposal.key_check.key_id, proposal.key_check.deployment_version]
        parts.append(
            f"fresh AS (SELECT 1 FROM {ApiKey._meta.db_table} k JOIN {Deployment._meta.db_table} d "  # noqa: S608
            "ON d.id = k.deployment_id WHERE k.id = %s AND k.revoked_at IS NULL "
            f"AND d.id = (SELECT deployment_id FROM new) AND {ROW_VERSION_SQL} = %s)"
        )
        conditions.append("EXISTS (SELECT 1 FROM fresh)")
    if proposal.unless_rejected:  # _already_rejected(), written out: the ORM would compile it per request
        same = " AND ".join(f"a.{c} = new.{c}" for c in SAME_PROPOSAL)
        conditions.append(f"NOT EXISTS (SELECT 1 FROM {actions} a WHERE {same} AND a.status = '{REJECTED}')")  # noqa: S608
    parts.append(f"accepted AS (SELECT * FROM new{' WHERE ' if conditions else ''}{' AND '.join(conditions)})")  # noqa: S608

    claimed = ""
    if record is not None and record.pk is None:
        # The Idempotency-Key with its reply, as the action has it; the reply's id is the new
        # action's, set in SQL.
        record.in_flight, record.response_status = False, REPLAY_STATUS
        record.response_body = _reply(action)
        from_action = {
            "deployment_id": "accepted.deployment_id",
            "key": "accepted.idempotency_key",
            "created_at": "accepted.created_at",
            "in_flight": "false",
            "response_status": str(int(REPLAY_STATUS)),
        }
        claim_columns, claim_values, claim_types = insert_row(record)
        row = []
        for column, type_, value in zip(claim_columns, claim_types, claim_values, strict=True):
            if column in from_action:
                row.append(from_action[column])
            elif column == "response_body":
                params.append(value)
                row.append(f"jsonb_set(%s::{type_}, '{{id}}', to_jsonb(accepted.id))")
            else:
                row.append(value_sql(value, type_))
        record.created_at = action.created_at
        parts.append(
            f"claim AS (INSERT INTO {IdempotencyRecord._meta.db_table} ({', '.join(claim_columns)}) "  # noqa: S608
            f"SELECT {', '.join(row)} FROM accepted ON CONFLICT (deployment_id, key) DO NOTHING RETURNING id)"
        )
        claimed = " WHERE EXISTS (SELECT 1 FROM claim)"
    parts.append(
        f"action AS (INSERT INTO {actions} (id, {', '.join(columns)}) "  # noqa: S608
        f"SELECT id, {', '.join(columns)} FROM accepted{claimed} RETURNING {', '.join(RETURNED)})"
    )

    def select(column: str, type_: str, value: Any) -> str:
        """The SQL of one value of a row hanging off `action`: read from it when the action
        has the same value (fewer parameters), else a parameter."""
        if column in RETURNED and value == getattr(action, column):
            return f"action.{column}"
        return value_sql(value, type_)

    columns, values, types = insert_row(audit)
    row = [
        "action.id::text" if column == "object_id" else select(column, type_, value)
        for column, type_, value in zip(columns, types, values, strict=True)
    ]
    parts.append(
        f"audit AS (INSERT INTO {AuditEvent._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(row)} FROM action)"
    )

    for i, delta in enumerate(proposal.counters):
        meta = delta.model._meta
        keys, adds = list(delta.key), list(delta.add)
        types = cast_types(delta.model, connection.vendor, (*keys, *adds))
        row = [select(c, t, v) for c, t, v in zip(keys, types, delta.key.values(), strict=False)]
        row.append(f"floor(random() * {int(delta.model.SHARDS)})::int")  # one of the row's shards, at random
        row += [f"%s::{t}" for t in types[len(keys) :]]
        params += delta.add.values()
        parts.append(
            f"counter{i} AS (INSERT INTO {meta.db_table} ({', '.join([*keys, 'shard', *adds])}) "  # noqa: S608
            f"SELECT {', '.join(row)} FROM action {counter_upsert_tail(meta.db_table, keys, adds)})"
        )

    if record is not None and record.pk is not None:
        field = IdempotencyRecord._meta.get_field("response_body")
        table = IdempotencyRecord._meta.db_table
        # The reply's id is the new action's: set in SQL, as it is known only there.
        params += [field.get_db_prep_save(_reply(action), connection), record.pk]
        parts.append(
            f"replay AS (UPDATE {table} SET in_flight = false, response_status = {int(REPLAY_STATUS)}, "  # noqa: S608
            "response_body = jsonb_set(%s::jsonb, '{id}', to_jsonb(action.id)) "
            f"FROM action WHERE {table}.id = %s)"
        )

    # Alone, the statement is its own transaction. Inside a caller's, a savepoint keeps a
    # failure (a reused Idempotency-Key) from aborting the caller's transaction.
    fresh = "EXISTS (SELECT 1 FROM fresh)" if proposal.key_check is not None else "true"
    returned = f"(SELECT id FROM action), EXISTS (SELECT 1 FROM accepted), {fresh}"  # noqa: S608
    if claimed:
        returned += ", (SELECT id FROM claim)"
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), prepared_cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {returned}", params)  # noqa: S608
        pk, accepted, fresh, *claim = cursor.fetchone()
    if pk is None:
        if not fresh:
            return Outcome.KEY_CHANGED
        return Outcome.KEY_TAKEN if accepted else Outcome.REJECTED
    action.pk = pk
    action._state.adding = False
    action._state.db = connection.alias
    audit.object_id = str(pk)
    if claim:
        record.pk = claim[0]
        record._state.adding = False
        record.response_body["id"] = pk
    return Outcome.STORED
