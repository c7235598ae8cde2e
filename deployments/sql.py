"""Pieces of hand-written SQL for the few hot paths where the ORM's cost per statement shows.

The ORM compiles every statement anew (a few hundred microseconds each); the agent API's
ingest writes five rows per request, so it writes them in one PostgreSQL statement instead
(`reviews.ingest`). These helpers keep such SQL tied to the models: the columns, values and
types come from the model's fields, exactly as the ORM would write them.
"""

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model


def prepared_cursor() -> CursorWrapper:
    """A cursor for the hot path's hand-written statements (use it as a context manager).

    On PostgreSQL the statements are bound server-side and prepared once per connection, so
    the server parses and plans each of them once, not per request. (The project's other
    queries keep Django's default of client-side binding; Django cannot prepare ORM SQL.)
    It is Django's cursor wrapper all the same: errors, execute_wrappers and query logging
    behave as for any other cursor. Elsewhere (SQLite) it is Django's plain cursor.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return db.cursor()
    db.ensure_connection()
    cursor = _PreparingCursor(db.connection)
    return db.make_debug_cursor(cursor) if db.queries_logged else db.make_cursor(cursor)


def insert_row(obj: Model) -> tuple[list[str], list[Any], list[str]]:
    """(columns, values, SQL types) of an unsaved instance, as the ORM's INSERT would write
    them: every concrete field but the primary key, defaults applied, values prepared for the
    database. The types are for explicit casts (`%s::jsonb`), which `INSERT ... SELECT` needs."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: the fields ask it a lot, the proxy costs each time
    fields, columns, types = _insert_shape(type(obj), db.vendor)
    values = []
    for field, kind in zip(fields, _unchanged_types(type(obj), db.vendor), strict=True):
        if kind is not None:
            value = getattr(obj, field.attname)
            if value is None or (type(value) is kind and (kind is not datetime or value.tzinfo is not None)):
                values.append(value)  # what get_db_prep_save would return, without its layers of calls
                continue
        values.append(field.get_db_prep_save(field.pre_save(obj, True), db))
    return columns, values, types


# Field classes whose get_db_prep_save returns a value of this Python type (or None) as it is,
# on PostgreSQL (which adapts datetimes as they are; SQLite turns them into text). Exact
# classes: a subclass may change that.
_UNCHANGED = {
    models.CharField: str,
    models.TextField: str,
    models.SlugField: str,
    models.BooleanField: bool,
    models.FloatField: float,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.SmallIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.PositiveBigIntegerField: int,
}


@functools.cache
def _unchanged_types(model: type[Model], vendor: str) -> list[type | None]:
    """Per field of `_insert_shape`: the Python type whose values (and None) the field writes
    unchanged, or None if its own get_db_prep_save must see every value (JSON, auto_now...;
    every field, on another database than PostgreSQL).
    tests/deployments/test_sql.py checks the shortcut against the fields themselves."""
    kinds: list[type | None] = []
    for field in _insert_shape(model, vendor)[0]:
        if vendor != "postgresql":
            kinds.append(None)
            continue
        kind = _UNCHANGED.get(type(field))
        if isinstance(field, models.ForeignKey) and type(field.target_field) in (models.AutoField, models.BigAutoField):
            kind = int  # the referenced row's id
        elif type(field) is models.DateTimeField and not (field.auto_now or field.auto_now_add):
            kind = datetime  # aware: adapted as it is (a naive one gets the field's warning)
        kinds.append(kind)
    return kinds


def insert_columns(model: type[Model]) -> list[str]:
    """The columns `insert_row` writes, in its order."""
    return _insert_shape(model, connection.vendor)[1]


@functools.cache
def _insert_shape(model: type[Model], vendor: str) -> tuple[list[Field], list[str], list[str]]:
    fields = [f for f in model._meta.local_concrete_fields if not f.primary_key]
    return fields, [f.column for f in fields], [f.cast_db_type(connection) for f in fields]


@functools.cache
def cast_types(model: type[Model], vendor: str, columns: tuple[str, ...]) -> list[str]:
    """The SQL types of `columns` of `model`, for casts."""
    return [model._meta.get_field(column).cast_db_type(connection) for column in columns]


def counter_upsert_tail(table: str, keys: Sequence[str], values: Sequence[str]) -> str:
    """The ON CONFLICT clause that adds to a sharded counter row instead of inserting it."""
    sets = ", ".join(f"{v} = {table}.{v} + excluded.{v}" for v in values)
    return f"ON CONFLICT ({', '.join([*keys, 'shard'])}) DO UPDATE SET {sets}"


def select_list(model: type[Model], alias: str) -> str:
    """`alias.col, ...` of every concrete field, in the order `instance_from_row` reads them."""
    return ", ".join(f"{alias}.{f.column}" for f in model._meta.concrete_fields)


def instance_from_row(model: type[Model], row: Sequence[Any]) -> Model:
    """An instance from the first columns of `row` (as `select_list` wrote them), converted
    from database values exactly as the ORM's compiler does (backend and field converters,
    e.g. JSONField decoding, SQLite datetimes)."""
    db = connections[DEFAULT_DB_ALIAS]
    names, converters = _row_shape(model, db.vendor)
    values = list(row[: len(names)])
    for i, (expression, functions) in converters:
        for convert in functions:
            values[i] = convert(values[i], expression, db)
    return model.from_db(db.alias, names, values)


@functools.cache
def _row_shape(model: type[Model], vendor: str) -> tuple[list[str], list[tuple[int, tuple[Any, list]]]]:
    names, converters = [], []
    for i, field in enumerate(model._meta.concrete_fields):
        names.append(field.attname)
        col = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if functions:
            converters.append((i, (col, functions)))
    return names, converters


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-side binding cursor, preparing every statement it runs on its first
    run. These statements are few and fixed, and run on Django's own persistent connections.
    psycopg prepares nothing while the connection's prepare_threshold is None, which is how
    TRUSTLADDER_DB_PREPARED_STATEMENTS=false turns this off (config/settings/base.py)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> "_PreparingCursor":
        return super().execute(query, params, prepare=True, **kwargs)
