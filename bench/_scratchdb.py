"""A throw-away PostgreSQL database for a benchmark: created afresh, migrated, Django set up."""

import os
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# The proposed-action columns a bench's INSERT ... SELECT fills, in its SELECT's order (the
# others get their defaults: column_defaults_in_the_database).
ACTION_COLUMNS = (
    "deployment_id, action_type, external_id, idempotency_key, payload, proposal_sha256, final_payload, "
    "payload_sha256, risk_score, confidence, model_version, rationale, needs_human, callback_url, stage, route, "
    "status, reason, created_at, decided_at, executed_at, expires_at, result_error, claimed_by_id, claimed_at, "
    "audit_sample, audit_verdict, comparison"
)


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def database_recreate(url: str) -> None:
    """Drop the database of `url` (closing its connections) and create it empty."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def scratch_django(name: str) -> str:
    """Drop and create database `name` next to DATABASE_URL's, point Django at it, set Django
    up and migrate. Returns its URL."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    url = base.rsplit("/", 1)[0] + "/" + name
    database_recreate(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def scratch_drop(url: str) -> None:
    """Close Django's connection and drop the scratch database."""
    from django.db import connection

    connection.close()
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def column_defaults_in_the_database(*models: type) -> None:
    """Give the scratch database's NOT NULL columns the models' constant defaults, so a bulk
    INSERT ... SELECT written for these tables keeps working when a later issue adds a column
    (Django keeps defaults in Python, not in the schema)."""
    from django.db import connection
    from django.db.models.fields import NOT_PROVIDED

    with connection.cursor() as cursor:
        for model in models:
            for field in model._meta.concrete_fields:
                constant = field.default is not NOT_PROVIDED and not callable(field.default)
                text = field.default is NOT_PROVIDED and field.empty_strings_allowed
                if field.null or field.primary_key or not (constant or text):
                    continue
                value = field.get_db_prep_save(field.get_default(), connection)  # "" for text without one
                table, column = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(field.column)
                cursor.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT %s", [value])  # noqa: S608
