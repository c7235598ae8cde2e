"""Pieces of hand-written SQL for the few hot paths where the ORM's cost per statement shows.

The ORM compiles every statement anew (a few hundred microseconds each); the agent API's
ingest writes five rows per request, so it writes them in one PostgreSQL statement instead
(`reviews.ingest`). These helpers keep such SQL tied to the models: the rows come from the
model instances and their fields, exactly as the ORM would write them.
"""

import functools
from collections.abc import Sequence
from datetime import date, datetime
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


def json_row(obj: Model) -> dict[str, Any]:
    """The row of an instance as one JSON object, column: value, for PostgreSQL's
    `jsonb_populate_record`, which turns each value into its column's type: what the ORM's
    INSERT would write, defaults and auto_now applied. Datetimes and dates are ISO 8601 (a
    naive datetime made aware first, with the field's own warning), JSON documents as they are,
    the rest as they are or as the field prepares them. A field of another kind raises
    TypeError, so that a new one is not written wrong: tests/deployments/test_sql.py writes
    these rows both ways and compares them."""
    row = {}
    for field, kind in _json_shape(type(obj)):
        value = field.pre_save(obj, True) if kind is datetime else getattr(obj, field.attname)
        if value is not None:
            if kind is datetime:
                if value.tzinfo is None:
                    value = field.get_prep_value(value)
                value = value.isoformat()
            elif kind is date:
                value = value.isoformat()
            elif kind is not None and type(value) is not kind:
                value = field.get_prep_value(value)  # e.g. an int for a float: as the field converts it
        row[field.column] = value
    return row


# Field classes whose values are JSON as they are (as the field prepares them: of this type).
# Exact classes: a subclass may prepare its values otherwise.
_JSON_NATIVE = {
    models.CharField: str,
    models.TextField: str,
    models.SlugField: str,
    models.URLField: str,
    models.EmailField: str,
    models.BooleanField: bool,
    models.FloatField: float,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.SmallIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.PositiveBigIntegerField: int,
    models.AutoField: int,
    models.BigAutoField: int,
}


@functools.cache
def _json_shape(model: type[Model]) -> list[tuple[Field, type | None]]:
    """Per concrete field: the Python type of its JSON value (datetime, date: ISO 8601; None: a
    JSON document, as it is)."""
    shape: list[tuple[Field, type | None]] = []
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey) and type(field.target_field) in _JSON_NATIVE:
            kind = _JSON_NATIVE[type(field.target_field)]
        elif type(field) is models.JSONField and field.encoder is None:
            kind = None
        elif type(field) in (models.DateTimeField, models.DateField):
            kind = datetime if type(field) is models.DateTimeField else date
        elif type(field) in _JSON_NATIVE:
            kind = _JSON_NATIVE[type(field)]
        else:
            raise TypeError(f"{model.__name__}.{field.name}: no JSON form for a {type(field).__name__}")
        shape.append((field, kind))
    return shape


def json_value(value: Any) -> Any:
    """A counter's key or amount as JSON (see json_row)."""
    return value.isoformat() if isinstance(value, date) else value


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
