"""deployments/locks.py: every lock of a deployment row, and the ORM reference of the shared one."""

import threading

import psycopg
import pytest
from django.db import OperationalError, connection, connections, transaction

from deployments.errors import InvalidInput
from deployments.locks import _read_orm, deployment_lock, deployments_lock_shared
from tests.factories import DeploymentFactory


def _probe(sql: str, pk: int) -> str:
    """Try `sql` (a NOWAIT lock) in another session: a thread has its own connection."""
    result = []

    def probe() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute(sql, [pk])
            result.append("free")
        except OperationalError as exc:
            assert isinstance(exc.__cause__, psycopg.errors.LockNotAvailable), exc
            result.append("blocked")
        finally:
            connections.close_all()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(timeout=30)
    return result[0]


FOR_UPDATE = "SELECT 1 FROM deployments_deployment WHERE id = %s FOR UPDATE NOWAIT"
FOR_SHARE = "SELECT 1 FROM deployments_deployment WHERE id = %s FOR SHARE NOWAIT"
FOR_KEY_SHARE = "SELECT 1 FROM deployments_deployment WHERE id = %s FOR KEY SHARE NOWAIT"


@pytest.mark.django_db
def test_a_missing_deployment_is_invalid_input():
    with transaction.atomic(), pytest.raises(InvalidInput, match="deployment 0 does not exist"):
        deployment_lock(0)


@pytest.mark.django_db
def test_no_ids_lock_nothing_and_ask_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert deployments_lock_shared([], fields=["comparison_rules"]) == {}


@pytest.mark.django_db
def test_the_shared_lock_reads_what_the_orm_reads():
    """On PostgreSQL the shared lock is hand-written SQL; elsewhere it is the ORM reference."""
    a = DeploymentFactory(comparison_rules={"ignore": ["note"], "numeric_tolerance": 0.5})
    b = DeploymentFactory(comparison_rules={})
    ids = [b.pk, a.pk, a.pk, 10**9]  # unordered, repeated, one missing
    with transaction.atomic():
        locked = deployments_lock_shared(ids, fields=["comparison_rules", "slug"])
    reference = _read_orm(sorted({a.pk, b.pk}), ["comparison_rules", "slug"])
    assert list(locked) == list(reference) == sorted([a.pk, b.pk])
    for pk, d in locked.items():
        assert (d.comparison_rules, d.slug) == (reference[pk].comparison_rules, reference[pk].slug)
    assert locked[a.pk].comparison_rules == {"ignore": ["note"], "numeric_tolerance": 0.5}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_shared_lock_holds_off_writers_until_commit_but_not_other_readers():
    assert connection.vendor == "postgresql"
    d = DeploymentFactory()
    with transaction.atomic():
        deployments_lock_shared([d.pk], fields=["comparison_rules"])
        assert _probe(FOR_UPDATE, d.pk) == "blocked"
        assert _probe(FOR_SHARE, d.pk) == "free"
    assert _probe(FOR_UPDATE, d.pk) == "free"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_writer_lock_leaves_rows_that_reference_the_deployment_free():
    """FOR NO KEY UPDATE: another writer waits, an insert that references the row (FOR KEY
    SHARE, the foreign key check) does not."""
    assert connection.vendor == "postgresql"
    d = DeploymentFactory()
    with transaction.atomic():
        assert deployment_lock(d.pk) == d
        assert _probe(FOR_UPDATE, d.pk) == "blocked"
        assert _probe(FOR_SHARE, d.pk) == "blocked"
        assert _probe(FOR_KEY_SHARE, d.pk) == "free"
    assert _probe(FOR_UPDATE, d.pk) == "free"
