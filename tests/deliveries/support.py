"""Test doubles that are real: an HTTP receiver on 127.0.0.1, Celery worker processes and a
private redis-server (tests.support.servers), each started and stopped by the test that uses it."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery import current_app
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Records every POST; `respond(n)` gives the status of the n-th request (0-based) and may block."""

    respond: Callable[[int], int] = lambda n: 204
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/trustladder"

    def successes(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@contextlib.contextmanager
def http_receiver(respond: Callable[[int], int] = lambda n: 204) -> Iterator[Receiver]:
    receiver = Receiver(respond=respond)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                n = len(receiver.requests)
                record = Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body, answered=0)
                receiver.requests.append(record)
            receiver.arrived.set()
            status = receiver.respond(n)
            record.answered = status
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender died while we were answering (the SIGKILL test)

        def log_message(self, *args) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.server.daemon_threads = True
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_database_url() -> str:
    """The pytest-django test database, as a URL the worker process can use."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


WORKER_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.test",
    "TRUSTLADDER_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "TRUSTLADDER_WEBHOOK_TIMEOUT_SECONDS": "2",
    "TRUSTLADDER_WEBHOOK_LEASE_MARGIN_SECONDS": "1",
    "TRUSTLADDER_WEBHOOK_SWEEP_SECONDS": "1",
    "TRUSTLADDER_WEBHOOK_SWEEP_GRACE_SECONDS": "1",
}


class Worker:
    """`celery -A config.celery_app worker -B` in its own process group, on the test database."""

    def __init__(self, workdir: Path, broker_url: str) -> None:
        self.workdir = workdir
        self.broker_url = broker_url
        self.process: subprocess.Popen | None = None
        self.log = workdir / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self, timeout: float = 60) -> "Worker":
        env = {**os.environ, **WORKER_ENV, "DATABASE_URL": test_database_url(), "REDIS_URL": self.broker_url}
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "worker",
            "-B",
            "--schedule",
            str(self.workdir / "beat-schedule"),
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"test-{uuid.uuid4().hex[:8]}@%h",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b" ready." in self.log.read_bytes(), timeout, f"worker did not start:\n{self.output()}")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole worker: main process, pool child and embedded beat."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        # pool children re-parented away from the group leader are in the same session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def wait_for(predicate: Callable[[], object], timeout: float, message: str, interval: float = 0.1) -> object:
    """Poll until `predicate()` is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)


def purge_queues() -> None:
    """Drop messages left in the test broker by earlier tests (their rows are gone)."""
    current_app.control.purge()


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at another broker for the duration (test-only)."""
    app = current_app
    old = app.conf.broker_url

    def switch(to: str) -> None:
        from kombu import pools

        # kombu keeps producer/connection pools in a global registry keyed by broker; closing
        # the app's pool alone would leave a closed pool registered for the next user.
        pools.reset()
        app.conf.broker_url = to
        app._pool = None
        app.amqp._producer_pool = None

    switch(url)
    try:
        yield
    finally:
        switch(old)


@pytest.fixture
def eager_celery():
    """Run enqueued tasks in this process (Celery's own eager mode, as without REDIS_URL)."""
    conf = current_app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before
