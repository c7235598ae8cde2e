"""deployments.sql: the hot path's rows are written exactly as the ORM writes them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from deployments.models import AuditEvent
from deployments.sql import _insert_shape, _unchanged_types, insert_row
from reviews.models import IdempotencyRecord, ProposedAction

pytestmark = pytest.mark.django_db


def _orm_values(obj) -> list:
    """What the ORM's INSERT sends for `obj`: each field's own get_db_prep_save."""
    fields = _insert_shape(type(obj), connection.vendor)[0]
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _comparable(value):
    return getattr(value, "obj", value)  # a JSON adapter: the document it wraps


def _instances(deployment):
    now = datetime(2026, 11, 26, 3, 4, 5, 678901, tzinfo=UTC)
    payload = {"amount_cents": 1250, "lines": [{"sku": "X", "qty": 2}], "note": "ü"}
    for route, status, decided, expires in (
        ("auto", "approved", now, None),
        ("review", "pending_review", None, now + timedelta(hours=1)),
        ("shadow", "logged", None, None),
    ):
        yield ProposedAction(
            deployment=deployment,
            action_type="refund.issue",
            external_id="E-1",
            idempotency_key=None if route == "shadow" else "k-1",
            payload=payload,
            proposal_sha256="a" * 64,
            final_payload=payload if decided else None,
            payload_sha256="a" * 64 if decided else "",
            risk_score=0.1,
            confidence=1,  # an int for a float field: the field's own conversion
            model_version="m-1",
            rationale="why",
            needs_human=False,
            stage="supervised",
            route=route,
            status=status,
            decided_at=decided,
            expires_at=expires,
            created_at=now,
            audit_sample=route == "auto",
        )
    yield AuditEvent(verb="reviews.action.proposed", actor_label="api-key:tl_x", deployment=deployment, data={"a": 1})
    yield AuditEvent(verb="x", actor_label="", deployment=None, created_at=datetime(2026, 1, 1))  # naive: the field's


@pytest.mark.parametrize("index", range(5))
def test_insert_row_writes_what_each_field_would(deployment, index):
    obj = list(_instances(deployment))[index]
    columns, values, _ = insert_row(obj)
    assert [_comparable(v) for v in values] == [_comparable(v) for v in _orm_values(obj)], columns


def test_fields_that_must_see_their_values_are_asked(deployment):
    """JSON documents and auto_now_add timestamps never take the shortcut."""
    for model, column in ((ProposedAction, "payload"), (AuditEvent, "data"), (IdempotencyRecord, "created_at")):
        fields = _insert_shape(model, connection.vendor)[0]
        kinds = dict(zip([f.column for f in fields], _unchanged_types(model, connection.vendor), strict=True))
        assert kinds[column] is None, (model, column)
    record = IdempotencyRecord(deployment_id=1, key="k", request_sha256="f" * 64)
    columns, values, _ = insert_row(record)
    assert values[columns.index("created_at")] is not None  # auto_now_add ran
