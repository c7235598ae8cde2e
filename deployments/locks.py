"""Locking a deployment's row: the one place that knows how, on PostgreSQL and on SQLite.

Lock order, everywhere: the deployment row first, then the rows under it (requests, actions).

- `deployment_lock`: FOR NO KEY UPDATE, for a writer of the deployment (stage, kill switch,
  breaker, rules, budget). Writers serialise on it, while inserts of rows that merely
  reference it (counters, actions: FOR KEY SHARE) are not blocked, and a transaction that
  already inserted such a row can still take it without a deadlock.
- `deployments_lock_shared`: FOR SHARE, for readers that must see settings that hold until
  they commit (shadow comparisons read the comparison rules): many at once, none while a
  writer holds the row.

The ORM writes FOR NO KEY UPDATE on PostgreSQL and nothing on SQLite (one writer at a time,
no row locks), so `deployment_lock` needs no fork. The ORM has no FOR SHARE: on PostgreSQL
`deployments_lock_shared` runs it by hand, elsewhere it is the ORM's plain read
(`_read_orm`), the reference that tests/deployments/test_locks.py compares it against.
"""

from collections.abc import Iterable, Sequence

from django.db import connection

from deployments.errors import InvalidInput
from deployments.models import Deployment


def deployment_lock(deployment_id: int) -> Deployment:
    """The deployment row, locked FOR NO KEY UPDATE until the caller's transaction ends.
    Raises InvalidInput when there is no such deployment. Caller is inside a transaction."""
    try:
        return Deployment.objects.select_for_update(no_key=True).get(pk=deployment_id)
    except Deployment.DoesNotExist:
        raise InvalidInput(f"deployment {deployment_id} does not exist") from None


def deployments_lock_shared(deployment_ids: Iterable[int], *, fields: Sequence[str]) -> dict[int, Deployment]:
    """{id: the deployment with only `fields` loaded}, the rows held FOR SHARE (in id order, so
    that two such lockers never deadlock) until the caller's transaction ends. Missing ids are
    left out. Caller is inside a transaction."""
    ids = sorted({int(pk) for pk in deployment_ids})
    if not ids:
        return {}
    if connection.vendor != "postgresql":
        return _read_orm(ids, fields)
    columns = ", ".join(Deployment._meta.get_field(name).column for name in fields)
    rows = Deployment.objects.raw(
        f"SELECT id, {columns} FROM {Deployment._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR SHARE",  # noqa: S608 -- names are ours
        [ids],
    )
    return {d.pk: d for d in rows}


def _read_orm(ids: list[int], fields: Sequence[str]) -> dict[int, Deployment]:
    return {d.pk: d for d in Deployment.objects.filter(pk__in=ids).only(*fields).order_by("pk")}
