"""Configuration: production settings pass `check --deploy`; /healthz reports; commands work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from deployments.models import ApiKey, AuditEvent, Deployment, Member, hash_api_key

ROOT = Path(__file__).resolve().parent.parent


def test_production_settings_pass_check_deploy_with_no_warnings():
    # The browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is (rightly) an error in production.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x7" * 30 + "-production-like-secret",
        "DJANGO_ALLOWED_HOSTS": "trustladder.example",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_a_missing_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def _settings_value(module: str, name: str, **env_vars: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", name)}
    env |= {"DJANGO_SECRET_KEY": "x7" * 30 + "-production-like-secret", **env_vars}
    result = subprocess.run(
        [sys.executable, "-c", f"import {module} as s; print(s.{name})"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("module", "env_value", "expected"),
    [
        ("config.settings.production", None, "False"),  # webhooks only to public addresses
        ("config.settings.production", "true", "True"),
        ("config.settings.local", None, "True"),  # the demo's receivers are on this machine
        ("config.settings.local", "false", "False"),
        ("config.settings.test", None, "True"),
    ],
)
def test_webhooks_to_private_addresses_are_off_in_production_unless_set(module, env_value, expected):
    name = "TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE"
    env_vars = {} if env_value is None else {name: env_value}
    assert _settings_value(module, name, **env_vars) == expected


@pytest.mark.django_db
def test_healthz_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["database"] == "ok" and "broker" in r.json()


@pytest.mark.django_db
def test_healthz_503_when_the_database_is_unreachable(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        from django.db import OperationalError

        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["database"].startswith("down")


@pytest.mark.redis
@pytest.mark.django_db
def test_healthz_reports_the_real_broker(client):
    assert client.get("/healthz").json()["broker"] == "ok"


@pytest.mark.django_db
def test_operator_commands(capsys):
    call_command("create_deployment", "refunds", "--name", "Refunds", "--stage", "approval")
    deployment = Deployment.objects.get(slug="refunds")
    assert (deployment.name, deployment.stage) == ("Refunds", "approval")
    assert AuditEvent.objects.get(verb="deployments.deployment.created").data["started_above_shadow"] is True
    capsys.readouterr()
    call_command("create_api_key", "refunds")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiKey.objects.get(hashed_key=hash_api_key(raw)).deployment == deployment
    call_command("create_member", "rita", "--role", "reviewer", "--deployment", "refunds", "--password", "s3cret-pw!")
    member = Member.objects.get(user__username="rita")
    assert member.role == "reviewer" and list(member.deployments.all()) == [deployment]
    assert member.user.check_password("s3cret-pw!")
    with pytest.raises(Exception, match="already exists"):
        call_command("create_deployment", "refunds")
    with pytest.raises(Exception, match="no deployment"):
        call_command("create_member", "x", "--role", "admin", "--deployment", "nope")
