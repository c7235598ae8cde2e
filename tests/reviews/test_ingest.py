"""reviews.ingest: a new proposal's rows, written in one PostgreSQL statement or by the ORM.

Both writers must write the same rows; the statement must stay one statement."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import AuditEvent, BreakerCount, EvidenceCount
from deployments.services import audit_event_build, evidence_deltas
from reviews import ingest
from reviews.canonical import payload_sha256
from reviews.idempotency import idempotency_claim
from reviews.ingest import NewProposal, proposal_insert
from reviews.models import IdempotencyRecord, ProposedAction
from reviews.representation import action_representation
from tests.conftest import proposal as proposal_body

pytestmark = pytest.mark.django_db

# Fields that differ between two otherwise equal rows.
ROW_IDENTITY = {"id", "idempotency_key", "external_id", "created_at", "decided_at", "expires_at"}


def _new(deployment, *, key: str, external_id: str = "E-1", auto: bool = True) -> NewProposal:
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
    record = idempotency_claim(deployment=deployment, key=key, fingerprint="f" * 64)
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
        replay=record,
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
    assert ingest._insert_postgresql(sql) is True
    assert ingest._insert_orm(orm) is True
    return sql, orm


@pytest.mark.postgres
@pytest.mark.parametrize("auto", [True, False])
def test_statement_and_orm_write_the_same_rows(deployment, auto):
    sql, orm = _write_both(deployment, auto=auto)
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
        record = IdempotencyRecord.objects.get(pk=written.replay.pk)
        assert (record.in_flight, record.response_status) == (False, 201)
        stored = ProposedAction.objects.get(pk=written.action.pk)
        assert record.response_body == action_representation(stored)


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["_insert_postgresql", "_insert_orm"])
def test_a_rejected_proposal_writes_nothing(deployment, writer):
    first = _new(deployment, key="k-1", auto=False)
    assert proposal_insert(first)
    ProposedAction.objects.filter(pk=first.action.pk).update(status="rejected")
    before = (ProposedAction.objects.count(), AuditEvent.objects.count(), _counts(deployment))

    again = _new(deployment, key="k-2", auto=False)
    assert getattr(ingest, writer)(again) is False
    assert again.action.pk is None
    assert (ProposedAction.objects.count(), AuditEvent.objects.count(), _counts(deployment)) == before
    assert IdempotencyRecord.objects.get(pk=again.replay.pk).in_flight is True  # left for the caller to release

    # Another external_id, or the same one with another payload, is not "the same proposal".
    other = _new(deployment, key="k-3", external_id="E-2", auto=False)
    assert getattr(ingest, writer)(other) is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_a_proposal_is_one_statement_on_postgresql(deployment):
    new = _new(deployment, key="k-one")
    with CaptureQueriesContext(connection) as queries:
        assert proposal_insert(new)
    assert len(queries) == 1, [q["sql"][:80] for q in queries]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_the_api_ingest_makes_three_statements(api):
    """Key lookup, Idempotency-Key claim, the proposal: a fourth is a regression of the hot path."""
    api.post("/api/v1/actions", proposal_body(), headers={"Idempotency-Key": "warm"})  # the key's last_used_at
    with CaptureQueriesContext(connection) as queries:
        r = api.post("/api/v1/actions", proposal_body(external_id="X-1"), headers={"Idempotency-Key": "k-3"})
    assert r.status_code == 201, r.content
    assert len(queries) == 3, [q["sql"][:80] for q in queries]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as in production: no caller's transaction around it
def test_the_statement_stays_within_psycopgs_query_cache(deployment):
    """psycopg re-parses a query with more than MAX_CACHED_STATEMENT_PARAMS parameters on
    every execution; the hot path's statement must stay below that."""
    from psycopg._queries import MAX_CACHED_STATEMENT_PARAMS

    captured: list = []

    def spy(execute, sql, params, many, context):
        captured.append(params)
        return execute(sql, params, many, context)

    new = _new(deployment, key="k-params", external_id="E-9")
    with connection.execute_wrapper(spy):
        assert proposal_insert(new)
    assert len(captured) == 1
    assert 0 < len(captured[0]) <= MAX_CACHED_STATEMENT_PARAMS - 5  # a margin for new fields
