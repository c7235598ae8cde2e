"""Ingest under faults: PostgreSQL restarted, a web worker SIGKILLed, Redis restarted, while
agents stream proposals with Idempotency-Keys. Afterwards every accepted key exists exactly
once, with the id the agent was told, and nothing was counted, audited or executed twice."""

import os
import signal
import time

import httpx
import pytest

from tests.faults.traffic import Agents, progress, reconcile, wait_until

pytestmark = pytest.mark.faults

# Each fault is repeated this many times in a test (more: TRUSTLADDER_FAULT_CYCLES=20).
CYCLES = int(os.environ.get("TRUSTLADDER_FAULT_CYCLES", "3"))


def _agents(stack, seeded, *, seconds: float, **options) -> Agents:
    """Four agents streaming at the stack; every key given up after `seconds` at the latest."""
    return Agents(
        base_url=stack.base_url, api_key=seeded["key"], clients=4, deadline=time.monotonic() + seconds, **options
    ).start()


def _finish(stack, seeded, agents: Agents) -> dict:
    traffic = agents.stop()
    with stack.pg.connect() as conn:
        result = reconcile(conn, deployment_id=seeded["deployment_id"], traffic=traffic)
    print(f"statuses={dict(traffic.statuses)} accepted={len(traffic.accepted)} reconciled={result}")
    assert traffic.unexpected == []
    assert traffic.abandoned == []
    assert result["problems"] == []
    assert result["actions"] == len(traffic.accepted)
    return result


def test_postgres_restart_during_ingest_gives_503_then_every_key_exactly_once(live_stack, seeded):
    agents = _agents(live_stack, seeded, seconds=150)
    try:
        for cycle in range(CYCLES):
            progress(agents, 20)
            before = agents.traffic.count(503)
            live_stack.pg.stop("immediate" if cycle % 2 else "fast")
            # Agents keep sending while the database is down: each is answered 503, not 500.
            wait_until(lambda b=before: agents.traffic.count(503) >= b + 4, timeout=30, what="503 answers")
            health = httpx.get(live_stack.base_url + "/healthz", timeout=5)
            assert health.status_code == 503
            # A signed-in page (its session lives in the database) is a plain 503 page.
            page = httpx.get(
                live_stack.base_url + "/deployments/", cookies={"__Host-trustladder_session": "s" * 32}, timeout=5
            )
            assert page.status_code == 503, page.text[:300]
            assert page.headers["content-type"].startswith("text/html") and page.headers["retry-after"]
            live_stack.pg.start()
        progress(agents, 20)
    finally:
        result = _finish(live_stack, seeded, agents)
    traffic = agents.traffic
    assert traffic.count(500) == 0
    assert traffic.count(503) >= CYCLES * 4
    # Some keys were retried through an outage and still stored once.
    assert any(a.attempts > 1 for a in traffic.accepted.values())
    assert result["executed"] > 0


def test_sigkill_of_a_web_worker_mid_request_loses_and_duplicates_nothing(live_stack, seeded):
    agents = _agents(live_stack, seeded, seconds=150)
    kills = 0
    try:
        # Kill until an agent has seen a request cut off (it nearly always happens at once: with
        # four agents on two sync workers, a worker is in the middle of a request almost always).
        while kills < CYCLES or (agents.traffic.connection_errors() == 0 and kills < 15):
            progress(agents, 10)
            pids = live_stack.web_worker_pids()
            assert len(pids) == live_stack.web_workers
            os.kill(pids[kills % len(pids)], signal.SIGKILL)
            kills += 1
            # gunicorn replaces the worker.
            wait_until(
                lambda p=pids: (
                    len(set(live_stack.web_worker_pids()) - set(p)) == 1
                    and len(live_stack.web_worker_pids()) == live_stack.web_workers
                ),
                timeout=60,
                what="gunicorn to replace the killed worker",
            )
        progress(agents, 20)
    finally:
        _finish(live_stack, seeded, agents)
    traffic = agents.traffic
    assert traffic.connection_errors() >= 1, "no request was cut off; the test proved nothing"
    assert traffic.count(500) == 0


def test_redis_restart_during_ingest_does_not_fail_a_single_request(live_stack, seeded):
    agents = _agents(live_stack, seeded, seconds=120)
    try:
        for _ in range(CYCLES):
            progress(agents, 20)
            live_stack.redis.stop()
            health = httpx.get(live_stack.base_url + "/healthz", timeout=5).json()
            assert health["broker"].startswith("down"), health
            # Ingest goes on while the broker is down.
            progress(agents, 20)
            live_stack.redis.start()
        progress(agents, 20)
    finally:
        _finish(live_stack, seeded, agents)
    traffic = agents.traffic
    assert set(traffic.statuses) <= {200, 201}, traffic.statuses
