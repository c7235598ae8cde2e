"""Operability: /metrics, structured logs with a request id, and the compose file."""

import json
import logging
from pathlib import Path

import pytest
import yaml

from deployments.services import api_key_create
from tests.conftest import ApiClient, proposal
from tests.factories import DeploymentFactory, ProposedActionFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_metrics_expose_queue_depths_routes_and_breakers(client):
    deployment = DeploymentFactory(slug="inv", stage="supervised")
    _, raw = api_key_create(deployment=deployment)
    api = ApiClient(raw)
    api.post("/api/v1/actions", proposal())  # auto
    api.post("/api/v1/actions", proposal(risk_score=0.5))  # review
    ProposedActionFactory(deployment=deployment, status="pending_senior", route="senior")
    text = client.get("/metrics").content.decode()
    assert 'trustladder_queue_depth{deployment="inv",queue="review"} 1.0' in text
    assert 'trustladder_queue_depth{deployment="inv",queue="senior"} 1.0' in text
    assert 'trustladder_proposals_total{deployment="inv",route="auto"} 1.0' in text
    assert 'trustladder_proposals_total{deployment="inv",route="review"} 1.0' in text
    assert 'trustladder_breaker_tripped{deployment="inv"} 0.0' in text
    assert 'trustladder_stage{deployment="inv"} 3.0' in text
    # django-prometheus' own request metrics are there too.
    assert "django_http_requests_total_by_method_total" in text


@pytest.mark.django_db
def test_metrics_count_claims_unknown_results_cancellations_and_in_flight_actions(client):
    deployment = DeploymentFactory(slug="life", stage="supervised")
    api = ApiClient(api_key_create(deployment=deployment)[1])
    running = api.post("/api/v1/actions", proposal()).json()
    api.post(f"/api/v1/actions/{running['id']}/claim", {})
    unknown = api.post("/api/v1/actions", proposal()).json()
    api.post(f"/api/v1/actions/{unknown['id']}/claim", {})
    api.post(
        f"/api/v1/actions/{unknown['id']}/result", {"status": "unknown", "payload_sha256": unknown["payload_sha256"]}
    )
    pending = api.post("/api/v1/actions", proposal(risk_score=0.5)).json()
    api.post(f"/api/v1/actions/{pending['id']}/cancel", {})
    text = client.get("/metrics").content.decode()
    assert 'trustladder_lifecycle_events_total{deployment="life",event="claimed"} 2.0' in text
    assert 'trustladder_lifecycle_events_total{deployment="life",event="unknown"} 1.0' in text
    assert 'trustladder_lifecycle_events_total{deployment="life",event="cancelled"} 1.0' in text
    assert 'trustladder_actions_in_flight{deployment="life",status="executing"} 1.0' in text
    assert 'trustladder_actions_in_flight{deployment="life",status="unknown"} 1.0' in text
    assert 'trustladder_actions_in_flight{deployment="life",status="held"} 0.0' in text
    assert 'trustladder_queue_depth{deployment="life",queue="review"} 0.0' in text


@pytest.mark.django_db
def test_metrics_refuse_public_clients_and_honour_the_token(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="1.2.3.4").status_code == 403
    settings.TRUSTLADDER_METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


@pytest.mark.django_db
def test_logs_are_json_lines_with_the_request_id(api, caplog, settings):
    from config.logging import build_logging

    formatter_config = build_logging(fmt="json", level="INFO")["formatters"]["structured"]
    formatter = formatter_config.pop("()")(**formatter_config)
    with caplog.at_level(logging.INFO):
        response = api.post("/api/v1/actions", proposal(), headers={"X-Request-ID": "req-abc-123"})
    assert response.status_code == 201
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name.startswith("django_structlog")]
    assert lines, "django-structlog logged nothing"
    assert all(line["request_id"] == "req-abc-123" for line in lines)
    assert {"request_started", "request_finished"} <= {line["event"] for line in lines}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_stack_with_health_checks():
    services = _compose()["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
    for name in ("web", "worker", "postgres", "redis"):
        assert "healthcheck" in services[name], name
    assert "pgdata" in _compose()["volumes"]
    assert services["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")


def test_every_compose_command_points_at_something_that_exists():
    import importlib

    from django.core.management import get_commands

    services = _compose()["services"]
    for name, service in services.items():
        command = service.get("command")
        if service.get("image") or command is None:
            continue
        program = command[0]
        if program == "gunicorn":
            if "-c" in command:
                assert (ROOT / command[command.index("-c") + 1]).exists(), name
            module, _, attr = command[-1].partition(":")
            assert hasattr(importlib.import_module(module), attr), name
        elif program == "celery":
            module = command[command.index("-A") + 1]
            app = importlib.import_module(module).app
            assert command[command.index("-A") + 2] in {"worker", "beat"}, name
            assert app.main == "trustladder"
        elif program == "python":
            assert command[1] == "manage.py" and (ROOT / "manage.py").exists()
            assert command[2] in get_commands(), f"{name}: no manage.py {command[2]}"
        else:
            pytest.fail(f"{name}: unknown program {program}")
    assert (ROOT / "Dockerfile").exists() and "build" in services["web"]
