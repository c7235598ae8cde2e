"""API key lookup: the hand-written query of the hot path agrees with the ORM."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import ApiKey, Deployment
from deployments.services import api_key_authenticate, api_key_create, api_key_revoke
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_lookup_equals_the_orm_for_key_and_deployment():
    deployment = DeploymentFactory(
        stage="approval",
        stage_caps={"refund.issue": "shadow"},
        review_sla=timedelta(minutes=7),
        blast_max_auto=3,
        breaker_settings={"failure_rate": 0.2},
    )
    key, raw = api_key_create(deployment=deployment, name="ci")
    with CaptureQueriesContext(connection) as queries:
        found = api_key_authenticate(raw)
    assert len(queries) == 1
    expected = ApiKey.objects.select_related("deployment").get(pk=key.pk)
    assert _fields(found) == _fields(expected)
    assert _fields(found.deployment) == _fields(expected.deployment)
    # Converted as the ORM converts: JSON decoded, durations, aware datetimes.
    assert found.deployment.stage_caps == {"refund.issue": "shadow"}
    assert found.deployment.review_sla == timedelta(minutes=7)
    assert found.created_at.tzinfo is not None
    # A usable instance: saved state, the deployment attached without another query.
    assert not found._state.adding and isinstance(found.deployment, Deployment)
    with CaptureQueriesContext(connection) as queries:
        assert found.deployment.slug == deployment.slug
    assert len(queries) == 0


@pytest.mark.parametrize("raw", ["", "tl_", "tl_unknown", "nope", "tl_" + "x" * 300])
def test_unknown_keys_find_nothing(raw):
    DeploymentFactory()
    assert api_key_authenticate(raw) is None


def test_a_revoked_key_finds_nothing():
    key, raw = api_key_create(deployment=DeploymentFactory())
    assert api_key_authenticate(raw) is not None
    api_key_revoke(key_id=key.pk)
    assert api_key_authenticate(raw) is None


@pytest.mark.postgres
def test_hot_path_statements_are_prepared_once_per_connection():
    from deployments.sql import prepared_cursor

    for _ in range(3):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int + 1 AS trustladder_prepared_probe", [41])
            assert cursor.fetchone() == (42,)
        with connection.cursor() as cursor:  # Django's own cursor: never prepared
            cursor.execute("SELECT 1 AS trustladder_unprepared_probe")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%trustladder_%prepared_probe%"],
        )
        assert [row[0] for row in cursor.fetchall()] == ["SELECT $1::int + 1 AS trustladder_prepared_probe"]
