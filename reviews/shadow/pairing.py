"""Shadow pairing: where a logged shadow action meets the human outcome of the same
external_id, and where their comparisons are written back. The one place shadow mode forks by
database vendor (the deployments' own lock forks in deployments.locks).

On PostgreSQL, pairs are taken in one statement with their action rows locked
(`FOR UPDATE OF a SKIP LOCKED`, so parallel workers never compare the same pair), the
deployments are held `FOR SHARE` by deployments.locks (their comparison rules cannot change
under a comparison), and a batch of comparisons is one UPDATE from a JSON document. The ORM versions below each are
the reference (SQLite, the embedded default: one writer at a time, no row locks);
tests/shadow/test_pairing.py checks on PostgreSQL that both give the same answers.
"""

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from django.db import connection

from core.fastjson import json_bytes
from core.jsonlimits import NumbersAsDoubles
from deployments.locks import deployments_lock_shared
from deployments.policy import Route
from reviews.models import ProposedAction
from reviews.shadow.models import ShadowOutcome

Status = ProposedAction.Status
PAIR_FIELDS = ("id", "deployment_id", "action_type", "external_id", "payload", "model_version", "created_at")


class Pair(NamedTuple):
    """A logged shadow action with the human outcome of the same external_id."""

    id: int
    deployment_id: int
    action_type: str
    payload: Any
    model_version: str
    created_at: datetime
    human_type: str
    human_payload: Any


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


# 16 digits in a row: perhaps an integer past ±(2^53 − 1), which the models read as a double.
_LONG_DIGITS = re.compile(r"\d{16}")


def _json(value: Any) -> Any:
    """A jsonb column as Python (Django's psycopg hands jsonb over as text), as the models'
    JSONField reads it (core.jsonlimits.NumbersAsDoubles). orjson parses several times faster
    and gives the same values for every document without 16 digits in a row (no integer past
    the safe range) whose numbers fit a double; the others are read by the models' decoder."""
    if not isinstance(value, str):
        return value
    if _LONG_DIGITS.search(value) is None:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    return json.loads(value, cls=NumbersAsDoubles)


# ---------------------------------------------------------------------------------------
# Deployments, held for the comparison
# ---------------------------------------------------------------------------------------


def comparison_rules_hold(deployment_ids: Iterable[int]) -> dict[int, dict]:
    """{deployment_id: comparison_rules}, the rows held FOR SHARE until the transaction ends
    (deployments.locks, which owns that fork and its reference)."""
    locked = deployments_lock_shared(deployment_ids, fields=["comparison_rules"])
    return {pk: d.comparison_rules or {} for pk, d in locked.items()}


# ---------------------------------------------------------------------------------------
# Pairs, locked
# ---------------------------------------------------------------------------------------
PAIRS_SQL = """
SELECT a.id, a.deployment_id, a.action_type, a.payload, a.model_version, a.created_at, o.action_type, o.payload
FROM {actions} a
JOIN {outcomes} o ON o.deployment_id = a.deployment_id AND o.external_id = a.external_id
WHERE a.route = 'shadow' AND a.status = 'logged' AND {where}
ORDER BY a.id {limit}
FOR UPDATE OF a SKIP LOCKED
"""


def pairs_lock(*, action_ids: list[int]) -> tuple[dict[int, dict], list[Pair]]:
    """The comparison rules of the actions' deployments (held FOR SHARE) and the pairs among
    `action_ids` (logged shadow actions with an outcome), locked; the deployments are locked
    before the actions (lock order)."""
    if not _on_postgres():
        pairs = pairs_orm(_logged().filter(pk__in=action_ids))
        return comparison_rules_hold({p.deployment_id for p in pairs}), pairs
    ids = [int(pk) for pk in action_ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT deployment_id FROM {ProposedAction._meta.db_table} WHERE id = ANY(%s)",  # noqa: S608
            [ids],
        )
        rules = comparison_rules_hold(row[0] for row in cursor.fetchall())
    return rules, _pairs_sql(where="a.id = ANY(%s)", params=[ids])


def pairs_lock_after(*, deployment_id: int, after: int, limit: int) -> list[Pair]:
    """Up to `limit` pairs of the deployment with action ids above `after`, locked, in id
    order. The caller holds the deployment FOR SHARE."""
    if _on_postgres():
        return _pairs_sql(where="a.deployment_id = %s AND a.id > %s", params=[deployment_id, after], limit=limit)
    paired = ShadowOutcome.objects.filter(deployment_id=deployment_id).values("external_id")
    return pairs_orm(_logged().filter(deployment_id=deployment_id, external_id__in=paired, pk__gt=after), limit=limit)


def _logged():
    return ProposedAction.objects.filter(route=Route.SHADOW, status=Status.LOGGED)


def _pairs_sql(*, where: str, params: list, limit: int | None = None) -> list[Pair]:
    sql = PAIRS_SQL.format(
        actions=ProposedAction._meta.db_table,
        outcomes=ShadowOutcome._meta.db_table,
        where=where,
        limit="LIMIT %s" if limit else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit] if limit else params)
        return [
            Pair(pk, dep, t, _json(p), mv, created, ht, _json(hp))
            for pk, dep, t, p, mv, created, ht, hp in cursor.fetchall()
        ]


def pairs_orm(actions, limit: int | None = None) -> list[Pair]:
    """The reference: the pairs among the `actions` queryset through the ORM, in id order, not
    locked."""
    actions = actions.only(*PAIR_FIELDS).order_by("id")
    actions = list(actions[:limit] if limit else actions)
    outcomes = outcomes_for(actions)
    pairs = []
    for a in actions:
        o = outcomes.get((a.deployment_id, a.external_id))
        if o is not None:
            pairs.append(
                Pair(
                    a.pk,
                    a.deployment_id,
                    a.action_type,
                    a.payload,
                    a.model_version,
                    a.created_at,
                    o.action_type,
                    o.payload,
                )
            )
    return pairs


def outcomes_for(actions: list[ProposedAction]) -> dict[tuple[int, str], ShadowOutcome]:
    """{(deployment_id, external_id): outcome} for the actions' external ids."""
    by_deployment: dict[int, set[str]] = defaultdict(set)
    for a in actions:
        by_deployment[a.deployment_id].add(a.external_id)
    found: dict[tuple[int, str], ShadowOutcome] = {}
    for deployment_id, external_ids in by_deployment.items():
        rows = ShadowOutcome.objects.filter(deployment_id=deployment_id, external_id__in=external_ids).only(
            "id", "deployment_id", "external_id", "action_type", "payload"
        )
        for o in rows:
            found[(deployment_id, o.external_id)] = o
    return found


# ---------------------------------------------------------------------------------------
# Comparisons, written back
# ---------------------------------------------------------------------------------------


def comparisons_write(updates: list[tuple[int, dict]], *, status: str | None = None) -> None:
    """One UPDATE for the whole batch: comparison (and status) of each action id."""
    if not updates:
        return
    if not _on_postgres():
        comparisons_write_orm(updates, status=status)
        return
    table = ProposedAction._meta.db_table
    set_status = "status = %s, " if status else ""
    params: list[Any] = [status] if status else []
    # One JSON document as the only big parameter: cheap to bind, unpacked by the server.
    params.append(json_bytes([{"id": pk, "c": c} for pk, c in updates]).decode())
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS a SET {set_status}comparison = v.c
            FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, c jsonb) WHERE a.id = v.id
            """,  # noqa: S608 -- the table name is ours, every value is a parameter
            params,
        )


def comparisons_write_orm(updates: list[tuple[int, dict]], *, status: str | None = None) -> None:
    """The reference: the same writes through the ORM (bulk_update)."""
    objs = []
    for pk, comparison in updates:
        obj = ProposedAction(pk=pk, comparison=comparison)
        if status:
            obj.status = status
        objs.append(obj)
    ProposedAction.objects.bulk_update(objs, ["comparison", "status"] if status else ["comparison"], batch_size=500)
