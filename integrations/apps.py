from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """Where agents and people already work: MCP, Slack approvals, OpenTelemetry (SPEC §9)."""

    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Before any request is served or task run, so the instrumentations wrap them; does
        # nothing (imports no OpenTelemetry SDK) unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
        from integrations.otel import otel_setup

        otel_setup()
