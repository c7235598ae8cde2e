"""Issue 15 item 5: request bodies sent with Transfer-Encoding: chunked (no Content-Length) are
read and held to the size limits, through a real gunicorn (Django's test client and its live
server never send or decode chunked bodies)."""

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from deployments.services import api_key_create
from reviews.models import ProposedAction
from tests.factories import DeploymentFactory
from tests.support.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn (gthread, one worker) serving config.wsgi against the test database."""
    port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "2",
    }
    env.pop("REDIS_URL", None)
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 -- closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def post_chunked(port: int, path: str, key: str, body: bytes, chunk: int = 1000) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    parts = (body[i : i + chunk] for i in range(0, len(body), chunk))
    conn.request(
        "POST",
        path,
        body=parts,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def proposal_bytes(note: str = "") -> bytes:
    body = {
        "action_type": "refund.issue",
        "payload": {"order": "A-1", "amount_cents": 1200, "note": note},
        "risk_score": 0.1,
        "confidence": 0.99,
    }
    return json.dumps(body).encode()


def test_a_chunked_proposal_is_read_and_stored(gunicorn):
    _, key = api_key_create(deployment=DeploymentFactory(stage="supervised"))
    status, body = post_chunked(gunicorn, "/api/v1/actions", key, proposal_bytes("x" * 5000), chunk=700)
    assert status == 201, body
    assert body["decision"] == "execute" and body["payload"]["note"] == "x" * 5000
    assert ProposedAction.objects.get().payload["note"] == "x" * 5000


def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(gunicorn):
    _, key = api_key_create(deployment=DeploymentFactory(stage="supervised"))
    body = proposal_bytes("x" * (256 * 1024))
    status, answer = post_chunked(gunicorn, "/api/v1/actions", key, body, chunk=64 * 1024)
    assert status == 413, answer
    assert answer["error"] == "payload_too_large"
    assert not ProposedAction.objects.exists()


def test_a_chunked_body_just_under_the_limit_is_taken(gunicorn):
    _, key = api_key_create(deployment=DeploymentFactory(stage="supervised"))
    filler = 256 * 1024 - len(proposal_bytes())
    body = proposal_bytes("x" * filler)
    assert len(body) == 256 * 1024
    status, answer = post_chunked(gunicorn, "/api/v1/actions", key, body, chunk=10_000)
    assert status == 201, answer
