"""On PostgreSQL, decisions are immutable too: a trigger refuses UPDATE and DELETE."""

from django.db import migrations

CREATE = """
DROP TRIGGER IF EXISTS decision_append_only ON reviews_decision;
CREATE TRIGGER decision_append_only BEFORE UPDATE OR DELETE ON reviews_decision
    FOR EACH ROW EXECUTE FUNCTION trustladder_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS decision_append_only ON reviews_decision;")


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial"), ("deployments", "0002_audit_append_only")]
    operations = [migrations.RunPython(forwards, backwards)]
