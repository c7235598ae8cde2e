"""On PostgreSQL, a trigger refuses UPDATE and DELETE on the audit log: append-only is a
database fact, not just a promise of the ORM. (SQLite, the laptop default, relies on the model.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION trustladder_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_event_append_only ON deployments_auditevent;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON deployments_auditevent
    FOR EACH ROW EXECUTE FUNCTION trustladder_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_event_append_only ON deployments_auditevent;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("deployments", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
