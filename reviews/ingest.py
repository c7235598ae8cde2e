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

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction

from deployments.models import AuditEvent
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


@dataclass
class NewProposal:
    """The rows of one new proposal, unsaved."""

    action: ProposedAction
    audit: AuditEvent  # its object_id is filled in with the action's id
    counters: Sequence[CounterDelta]
    # Write nothing if the same proposal (deployment, external_id, action_type, proposal
    # hash) was already rejected.
    unless_rejected: bool
    # A claimed Idempotency-Key: it is completed with the action's representation as its
    # stored 201 reply.
    replay: IdempotencyRecord | None


def proposal_insert(proposal: NewProposal) -> bool:
    """Write `proposal`, all or nothing. False (nothing written) when it was refused as
    already rejected; on True, `proposal.action.pk` is set. Raises IdempotencyKeyReused (422)
    when an earlier action already carries the Idempotency-Key."""
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


def _insert_orm(proposal: NewProposal) -> bool:
    action, audit, replay = proposal.action, proposal.audit, proposal.replay
    with transaction.atomic():
        if proposal.unless_rejected and _already_rejected(action).exists():
            return False
        action.save()
        audit.object_id = str(action.pk)
        audit.save()
        counters_apply(proposal.counters)
        if replay is not None:
            idempotency_complete(record=replay, status=REPLAY_STATUS, body=_reply(action))
    return True


def _reply(action: ProposedAction) -> dict:
    return action_representation(action, deployment_slug=action.deployment.slug)


def _insert_postgresql(proposal: NewProposal) -> bool:
    """WITH new AS (SELECT the action's values), action AS (INSERT ... SELECT FROM new
    [WHERE NOT already rejected] RETURNING id), then one CTE per other row, each reading
    `action`: none of them writes when it is empty.

    Table and column names are the models' own; every value is a parameter (hence the S608
    waivers below). Their number stays within what psycopg caches the parsed query for
    (tests/reviews/test_ingest.py checks it)."""
    action, audit, replay = proposal.action, proposal.audit, proposal.replay
    actions = ProposedAction._meta.db_table
    params: list = []

    columns, values, types = insert_row(action)
    params += values
    new = ", ".join(f"%s::{type_} AS {column}" for column, type_ in zip(columns, types, strict=True))
    guard = ""
    if proposal.unless_rejected:  # _already_rejected(), written out: the ORM would compile it per request
        same = " AND ".join(f"a.{c} = new.{c}" for c in SAME_PROPOSAL)
        guard = f"WHERE NOT EXISTS (SELECT 1 FROM {actions} a WHERE {same} AND a.status = '{REJECTED}')"  # noqa: S608
    parts = [
        f"new AS (SELECT {new})",
        f"action AS (INSERT INTO {actions} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(columns)} FROM new {guard} RETURNING {', '.join(RETURNED)})",
    ]

    def select(column: str, type_: str, value: Any) -> str:
        """The SQL of one value of a row hanging off `action`: read from it when the action
        has the same value (fewer parameters), else a parameter."""
        if column in RETURNED and value == getattr(action, column):
            return f"action.{column}"
        params.append(value)
        return f"%s::{type_}"

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

    if replay is not None:
        field = IdempotencyRecord._meta.get_field("response_body")
        table = IdempotencyRecord._meta.db_table
        # The reply's id is the new action's: set in SQL, as it is known only there.
        params += [field.get_db_prep_save(_reply(action), connection), replay.pk]
        parts.append(
            f"replay AS (UPDATE {table} SET in_flight = false, response_status = {int(REPLAY_STATUS)}, "  # noqa: S608
            "response_body = jsonb_set(%s::jsonb, '{id}', to_jsonb(action.id)) "
            f"FROM action WHERE {table}.id = %s)"
        )

    # Alone, the statement is its own transaction. Inside a caller's, a savepoint keeps a
    # failure (a reused Idempotency-Key) from aborting the caller's transaction.
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), prepared_cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT id FROM action", params)  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        return False
    action.pk = row[0]
    action._state.adding = False
    action._state.db = connection.alias
    audit.object_id = str(action.pk)
    return True
