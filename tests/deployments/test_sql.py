"""deployments.sql: the hot path's rows are written exactly as the ORM writes them."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps

from deployments.models import AuditEvent
from deployments.sql import json_row
from reviews.models import IdempotencyRecord, ProposedAction

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _instances(deployment):
    now = datetime(2026, 11, 26, 3, 4, 5, 678901, tzinfo=UTC)
    payload = {"amount_cents": 1250, "lines": [{"sku": "X", "qty": 2}], "note": "ü \\u0000-free", "f": 0.1}
    for route, status, decided, expires in (
        ("auto", "approved", now, None),
        ("review", "pending_review", None, now + timedelta(hours=1)),
        ("shadow", "logged", None, None),
    ):
        yield ProposedAction(
            deployment=deployment,
            action_type="refund.issue",
            external_id=f"E-{route}",
            idempotency_key=None if route == "shadow" else f"k-{route}",
            payload=payload,
            proposal_sha256="a" * 64,
            final_payload=payload if decided else None,
            payload_sha256="a" * 64 if decided else "",
            risk_score=0.1,
            confidence=1,  # an int for a float field: converted as the field converts it
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
    yield AuditEvent(verb="x", actor_label="", deployment=None, created_at=datetime(2026, 1, 1))  # naive
    yield IdempotencyRecord(deployment=deployment, key="k", request_sha256="f" * 64, response_body={"id": 1})


def _insert_from_json(obj) -> int:
    """INSERT the row as the ingest statement does: jsonb_populate_record of json_row."""
    table = type(obj)._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} SELECT r.* FROM jsonb_populate_record(NULL::{table}, "  # noqa: S608 -- our table
            f"%s::jsonb || jsonb_build_object('id', nextval(pg_get_serial_sequence('{table}', 'id')))) r "
            "RETURNING id",
            [json.dumps(json_row(obj))],
        )
        return cursor.fetchone()[0]


@pytest.mark.filterwarnings("ignore:DateTimeField AuditEvent.created_at received a naive datetime")
def test_json_rows_are_the_rows_the_orm_writes(deployment):
    for obj in _instances(deployment):
        model = type(obj)
        via_json = _insert_from_json(obj)
        if model is ProposedAction:  # unique per deployment: the copy gives its key up
            ProposedAction.objects.filter(pk=via_json).update(idempotency_key=None)
        if model is IdempotencyRecord:
            IdempotencyRecord.objects.filter(pk=via_json).update(key="copy")
        obj.save()  # the ORM's own INSERT
        rows = {pk: model.objects.filter(pk=pk).values().get() for pk in (via_json, obj.pk)}
        for row in rows.values():
            row.pop("id")
            if model is IdempotencyRecord:
                row.pop("created_at")  # auto_now_add: a moment apart
                row.pop("key")
            if model is ProposedAction:
                row.pop("idempotency_key")
        assert rows[via_json] == rows[obj.pk], model.__name__


@isolate_apps("deployments")
def test_a_field_without_a_json_form_is_refused():
    # isolate_apps: the model must not stay in the app registry, where later tests that walk
    # every model (tests/test_hostile_input_walk.py) would look for its table.
    class Odd(models.Model):  # noqa: DJ008
        span = models.DurationField()

        class Meta:
            app_label = "deployments"

    with pytest.raises(TypeError, match="Odd.span: no JSON form for a DurationField"):
        json_row(Odd(span=timedelta(seconds=1)))


def test_every_hot_model_has_a_json_form():
    for model in (ProposedAction, AuditEvent, IdempotencyRecord):
        json_row(model())  # raises if a field has none
