"""Shared fixtures. Service-dependent tests carry a marker (`postgres`, `redis`): without the
service they skip, and under TRUSTLADDER_REQUIRE_SERVICES=1 (CI) a skip is a failure."""

import os

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API + live_server

import pytest
from django.conf import settings
from django.test import Client

from deployments.models import Member
from deployments.services import api_key_create
from tests.factories import DeploymentFactory, MemberFactory

REQUIRE_SERVICES = os.environ.get("TRUSTLADDER_REQUIRE_SERVICES") == "1"


def _on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def _redis_ok() -> bool:
    if not settings.REDIS_URL:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = []
    if item.get_closest_marker("postgres") and not _on_postgres():
        missing.append("PostgreSQL (set DATABASE_URL)")
    if item.get_closest_marker("redis") and not _redis_ok():
        missing.append("Redis (set REDIS_URL)")
    if missing:
        message = "needs " + " and ".join(missing)
        if REQUIRE_SERVICES:
            pytest.fail(message + " — TRUSTLADDER_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under TRUSTLADDER_REQUIRE_SERVICES=1 any skip at all fails the run."""
    if not REQUIRE_SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped under TRUSTLADDER_REQUIRE_SERVICES=1", red=True)
        session.exitstatus = 1


@pytest.fixture
def deployment(db):
    return DeploymentFactory(stage="supervised")


@pytest.fixture
def reviewer(db, deployment) -> Member:
    return MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])


@pytest.fixture
def senior(db, deployment) -> Member:
    return MemberFactory(role=Member.Role.SENIOR, deployments=[deployment])


@pytest.fixture
def admin(db) -> Member:
    return MemberFactory(role=Member.Role.ADMIN)


@pytest.fixture
def api_key(deployment) -> str:
    _, raw = api_key_create(deployment=deployment)
    return raw


class ApiClient:
    """Django's test client speaking JSON with a bearer key."""

    def __init__(self, key: str | None) -> None:
        self.client = Client()
        self.key = key

    def _headers(self, headers: dict | None) -> dict:
        h = {"HTTP_AUTHORIZATION": f"Bearer {self.key}"} if self.key else {}
        for name, value in (headers or {}).items():
            h["HTTP_" + name.upper().replace("-", "_")] = value
        return h

    def post(self, path: str, body=None, *, raw: bytes | str | None = None, headers: dict | None = None):
        import json

        data = raw if raw is not None else json.dumps(body)
        return self.client.post(path, data=data, content_type="application/json", **self._headers(headers))

    def get(self, path: str, headers: dict | None = None):
        return self.client.get(path, **self._headers(headers))


@pytest.fixture
def api(api_key) -> ApiClient:
    return ApiClient(api_key)


def proposal(**overrides) -> dict:
    body = {
        "action_type": "refund.issue",
        "payload": {"amount_cents": 1200, "order": "A-1"},
        "risk_score": 0.1,
        "confidence": 0.99,
    }
    body.update(overrides)
    return body
