"""reviews.ingest: a new proposal's rows, written in one PostgreSQL statement or by the ORM.

Both writers must write the same rows; the statement must stay one statement. "before": the
Idempotency-Key claimed beforehand (reviews.idempotency), "here": claimed by the writer."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import AuditEvent, BreakerCount, Deployment, EvidenceCount, KeyCheck
from deployments.services import (
    api_key_authenticate,
    api_key_confirm,
    api_key_create,
    api_key_revoke,
    audit_event_build,
    evidence_deltas,
)
from reviews import ingest
from reviews.canonical import payload_sha256
from reviews.idempotency import idempotency_claim
from reviews.ingest import NewProposal, Outcome, proposal_insert
from reviews.models import IdempotencyRecord, ProposedAction
from reviews.representation import action_representation
from tests.conftest import proposal as proposal_body

pytestmark = pytest.mark.django_db

# Fields that differ between two otherwise equal rows.
ROW_IDENTITY = {"id", "idempotency_key", "external_id", "created_at", "decided_at", "expires_at"}


def _new(
    deployment, *, key: str, external_id: str = "E-1", auto: bool = True, claim: str = "before", check=None
) -> NewProposal:
    now = timezone.now()
    payload = {"amount_cents": 1250, "order": "A-7", "lines": [{"sku": "X", "qty": 2}]}
    action = ProposedAction(
        deployment=deployment,
        action_type="refund.issue",
        external_id=external_id,
        idempotency_key=key,
        payload=payload,
        proposal_sha256=payload_sha256(payload),
        risk_score=0.1,
        confidence=0.99,
        model_version="m-1",
        rationale="why",
        stage="supervised",
        route="auto" if auto else "review",
        status="approved" if auto else "pending_review",
        final_payload=payload if auto else None,
        payload_sha256=payload_sha256(payload) if auto else "",
        decided_at=now if auto else None,
        expires_at=None if auto else now + timedelta(hours=1),
        created_at=now,
    )
    metric = "proposed.auto" if auto else "proposed.review"
    if claim == "before":
        record = idempotency_claim(deployment=deployment, key=key, fingerprint="f" * 64)
    else:
        record = IdempotencyRecord(deployment=deployment, key=key, request_sha256="f" * 64)
    return NewProposal(
        action=action,
        audit=audit_event_build(
            verb="reviews.action.auto_approved",
            actor_label="api-key:tl_x",
            deployment=deployment,
            obj=action,
            data={"route": action.route, "nested": {"a": [1, 2]}},
        ),
        counters=evidence_deltas(deployment_id=deployment.pk, action_type="refund.issue", metric=metric),
        unless_rejected=True,
        idempotency=record,
        key_check=check,
    )


def _row(model, pk, drop=()):
    values = model.objects.filter(pk=pk).values().get()
    return {k: v for k, v in values.items() if k not in drop}


def _counts(deployment) -> tuple[int, int]:
    """(evidence, breaker) counts of the deployment, over all shards."""
    evidence = sum(EvidenceCount.objects.filter(deployment=deployment).values_list("n", flat=True))
    breaker = sum(BreakerCount.objects.filter(deployment=deployment).values_list("n", flat=True))
    return evidence, breaker


def _write_both(deployment, **kw):
    """The same proposal through each writer; returns the two stored actions."""
    sql = _new(deployment, key="k-sql", external_id="E-sql", **kw)
    orm = _new(deployment, key="k-orm", external_id="E-orm", **kw)
    assert ingest._insert_postgresql(sql) is Outcome.STORED
    assert ingest._insert_orm(orm) is Outcome.STORED
    return sql, orm


@pytest.mark.postgres
@pytest.mark.parametrize("claim", ["before", "here"])
@pytest.mark.parametrize("auto", [True, False])
def test_statement_and_orm_write_the_same_rows(deployment, auto, claim):
    sql, orm = _write_both(deployment, auto=auto, claim=claim)
    for written in (sql, orm):
        assert written.action.pk and not written.action._state.adding
    # The actions: equal but for their identity.
    assert _row(ProposedAction, sql.action.pk, ROW_IDENTITY) == _row(ProposedAction, orm.action.pk, ROW_IDENTITY)
    # The audit events: equal, each naming its own action.
    events = {e.object_id: e for e in AuditEvent.objects.filter(object_type="reviews.proposedaction")}
    a, b = events[str(sql.action.pk)], events[str(orm.action.pk)]
    drop = {"id", "object_id", "created_at"}
    assert _row(AuditEvent, a.pk, drop) == _row(AuditEvent, b.pk, drop)
    assert a.data == {"route": sql.action.route, "nested": {"a": [1, 2]}}
    # The counters: each writer added one proposal (and, for auto, one breaker minute).
    evidence, breaker = _counts(deployment)
    assert evidence == 2
    assert breaker == (2 if auto else 0)
    # The stored replies: the action's representation, with its own id.
    for written in (sql, orm):
        record = IdempotencyRecord.objects.get(deployment=deployment, key=written.action.idempotency_key)
        assert record.pk == written.idempotency.pk
        assert (record.in_flight, record.response_status, record.request_sha256) == (False, 201, "f" * 64)
        stored = ProposedAction.objects.get(pk=written.action.pk)
        assert record.response_body == action_representation(stored)


def _everything(deployment) -> tuple:
    return (
        ProposedAction.objects.count(),
        AuditEvent.objects.count(),
        IdempotencyRecord.objects.count(),
        _counts(deployment),
    )


@pytest.mark.postgres
@pytest.mark.parametrize("claim", ["before", "here"])
@pytest.mark.parametrize("writer", ["_insert_postgresql", "_insert_orm"])
def test_a_rejected_proposal_writes_nothing(deployment, writer, claim):
    first = _new(deployment, key="k-1", auto=False)
    assert proposal_insert(first) is Outcome.STORED
    ProposedAction.objects.filter(pk=first.action.pk).update(status="rejected")

    again = _new(deployment, key="k-2", auto=False, claim=claim)
    before = _everything(deployment)
    assert getattr(ingest, writer)(again) is Outcome.REJECTED
    assert again.action.pk is None
    assert _everything(deployment) == before
    if claim == "before":  # left in flight for the caller to release
        assert IdempotencyRecord.objects.get(pk=again.idempotency.pk).in_flight is True

    # Another external_id, or the same one with another payload, is not "the same proposal".
    other = _new(deployment, key="k-3", external_id="E-2", auto=False, claim=claim)
    assert getattr(ingest, writer)(other) is Outcome.STORED


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["_insert_postgresql", "_insert_orm"])
def test_a_claimed_key_writes_nothing(deployment, writer):
    """An Idempotency-Key to claim that another request claimed (or finished) first."""
    first = _new(deployment, key="k-1", external_id="E-1")
    assert proposal_insert(first) is Outcome.STORED
    idempotency_claim(deployment=deployment, key="k-2", fingerprint="f" * 64)  # in flight elsewhere
    for key in ("k-1", "k-2"):
        again = _new(deployment, key=key, external_id=f"E-{key}", claim="here")
        before = _everything(deployment)
        assert getattr(ingest, writer)(again) is Outcome.KEY_TAKEN
        assert again.action.pk is None
        assert _everything(deployment) == before


def _check(deployment) -> tuple[KeyCheck, str]:
    _, raw = api_key_create(deployment=deployment)
    assert api_key_authenticate(raw, cached=True).key_check is None  # read afresh, and cached
    key = api_key_authenticate(raw, cached=True)
    assert key.key_check is not None and key.key_check.key_id == key.pk
    return key.key_check, raw


@pytest.mark.postgres
def test_a_cached_api_key_is_checked_in_the_statement(deployment):
    check, raw = _check(deployment)
    stored = _new(deployment, key="k-1", external_id="E-1", claim="here", check=check)
    assert proposal_insert(stored) is Outcome.STORED

    # A row lock is no change; an update of any column is.
    with transaction.atomic():
        Deployment.objects.select_for_update().get(pk=deployment.pk)
    assert proposal_insert(_new(deployment, key="k-2", external_id="E-2", check=check)) is Outcome.STORED
    Deployment.objects.filter(pk=deployment.pk).update(paused=False)  # the same value, a new row version
    changed = _new(deployment, key="k-3", external_id="E-3", claim="here", check=check)
    before = _everything(deployment)
    assert proposal_insert(changed) is Outcome.KEY_CHANGED
    assert _everything(deployment) == before

    # Read afresh, cached again; then revoked.
    check, raw = _check(deployment)
    assert proposal_insert(_new(deployment, key="k-4", external_id="E-4", check=check)) is Outcome.STORED
    api_key_revoke(key_id=check.key_id)
    before = _everything(deployment)
    changed = _new(deployment, key="k-5", external_id="E-5", claim="here", check=check)
    assert proposal_insert(changed) is Outcome.KEY_CHANGED
    assert _everything(deployment) == before
    # The caller confirms the key: it is gone, from the cache too.
    assert api_key_confirm(api_key_authenticate(raw, cached=True)) is None
    assert api_key_authenticate(raw, cached=True) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_a_proposal_is_one_statement_on_postgresql(deployment):
    check, _ = _check(deployment)
    new = _new(deployment, key="k-one", claim="here", check=check)
    with CaptureQueriesContext(connection) as queries:
        assert proposal_insert(new) is Outcome.STORED
    assert len(queries) == 1, [q["sql"][:80] for q in queries]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_the_api_ingest_is_one_statement(api):
    """With the API key cached, a proposal with an Idempotency-Key is one statement: a second
    is a regression of the hot path. The first request reads the key (and its last use)."""
    api.post("/api/v1/actions", proposal_body(), headers={"Idempotency-Key": "warm"})
    with CaptureQueriesContext(connection) as queries:
        r = api.post("/api/v1/actions", proposal_body(external_id="X-1"), headers={"Idempotency-Key": "k-3"})
    assert r.status_code == 201, r.content
    assert len(queries) == 1, [q["sql"][:80] for q in queries]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_the_statement_stays_within_psycopgs_query_cache(deployment):
    """psycopg re-parses a query longer than MAX_CACHED_STATEMENT_LENGTH or with more than
    MAX_CACHED_STATEMENT_PARAMS parameters on every execution; the hot path's statement must
    stay below both."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

    captured: list = []

    def spy(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    check, _ = _check(deployment)
    new = _new(deployment, key="k-params", external_id="E-9", claim="here", check=check)
    with connection.execute_wrapper(spy):
        assert proposal_insert(new) is Outcome.STORED
    assert len(captured) == 1
    sql, params = captured[0]
    assert 0 < len(params) <= MAX_CACHED_STATEMENT_PARAMS - 5  # a margin for new fields
    assert len(sql.encode()) <= MAX_CACHED_STATEMENT_LENGTH - 200
