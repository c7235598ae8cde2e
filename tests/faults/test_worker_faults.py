"""Worker faults. Decisions are delivered to the agent's callback URL exactly once in effect,
even when the Celery worker is SIGKILLed in the middle of sending, or Redis (the broker)
restarts and loses every queued message; a worker SIGKILLed in the middle of the periodic
expiry run leaves every overdue action expired exactly once after the next run.

"Exactly once in effect": each decision has exactly one outbox row with one `webhook-id`
(and so has each execution result the agents report: issue 15's `action.executed`); the
receiver gets that id at least once (a send cut short by a kill is sent again, with the same
id and the same body, which Standard Webhooks receivers deduplicate on), and every delivery
ends `delivered`.
"""

import json
import os
import time
from collections import Counter

import pytest

from tests.faults.receiver import Receiver
from tests.faults.traffic import Agents, wait_until

pytestmark = pytest.mark.faults

# Kills per test (more: TRUSTLADDER_FAULT_CYCLES=20).
KILLS = int(os.environ.get("TRUSTLADDER_FAULT_CYCLES", "3"))


DECISION_EVENTS = {"approve": "action.approved", "reject": "action.rejected", "expire": "action.expired"}


def _propose(stack, seeded, receiver, n: int) -> set[int]:
    """`n` proposals from two agents (half auto-executed, reported `executed`); the ids executed."""
    agents = Agents(
        base_url=stack.base_url,
        api_key=seeded["key"],
        clients=2,
        max_keys=n,
        deadline=time.monotonic() + 60,
        callback_url=receiver.url,
    ).start()
    wait_until(lambda: agents.traffic.n_accepted >= n, timeout=60, what=f"{n} proposals")
    traffic = agents.stop()
    assert traffic.unexpected == [] and traffic.abandoned == []
    return {a.action_id for a in traffic.accepted.values() if a.executed}


def reconcile_deliveries(stack, seeded, receiver, decided: dict[int, str], executed: set[int] = frozenset()) -> dict:
    """Wait (bounded) until every delivery is delivered, then compare outbox and receiver.

    Expected: one outbox row for each decision (its event) and one for each result the agents
    reported (`action.executed`), nothing else."""
    deployment_id = seeded["deployment_id"]
    expected = {(pk, DECISION_EVENTS[verb]) for pk, verb in decided.items()}
    expected |= {(pk, "action.executed") for pk in executed}
    with stack.pg.connect() as conn:

        def by_status() -> dict:
            return dict(
                conn.execute(
                    "SELECT status, count(*) FROM deliveries_delivery WHERE deployment_id = %s GROUP BY status",
                    [deployment_id],
                ).fetchall()
            )

        try:
            wait_until(
                lambda: by_status() == {"delivered": len(expected)},
                timeout=240,
                what="every decision and result to be delivered",
                interval=0.5,
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}: outbox {by_status()}, expected {len(expected)} delivered") from None
        outbox = conn.execute(
            "SELECT webhook_id, object_id, event_type, body FROM deliveries_delivery WHERE deployment_id = %s",
            [deployment_id],
        ).fetchall()
        unfinished = conn.execute(
            "SELECT count(*) FROM deliveries_deliveryattempt t JOIN deliveries_delivery d ON d.id = t.delivery_id "
            "WHERE d.deployment_id = %s AND t.finished_at IS NULL",
            [deployment_id],
        ).fetchone()[0]
    # One outbox row per decision and per result, for the right action and event.
    rows = sorted((int(o), e) for _w, o, e, _b in outbox)
    assert rows == sorted(expected)
    # Every webhook id was received, nothing else was, every signature was valid ...
    received = receiver.by_webhook_id()
    assert set(received) == {w for w, _o, _e, _b in outbox}
    assert receiver.invalid() == []
    # ... each row got exactly one webhook id (resends reuse it), with the body stored.
    assert receiver.action_ids() == Counter(pk for pk, _e in expected)
    bodies = {w: b for w, _o, _e, b in outbox}
    for record in receiver.received:
        assert record["body"] == json.loads(bodies[record["webhook_id"]])
    result = {"received": received, "unfinished_attempts": unfinished}
    print(f"decisions={len(decided)} results={len(executed)} deliveries={len(outbox)} {result}")
    return result


def test_sigkill_of_the_worker_mid_delivery_delivers_every_decision_once_in_effect(live_stack, seeded, receiver, beat):
    executed = _propose(live_stack, seeded, receiver, max(40, KILLS * 8))
    worker = live_stack.start_worker("worker-k0", concurrency=2)
    receiver.hold()
    decided = live_stack.decide_pending(deployment_id=seeded["deployment_id"], username=seeded["reviewers"][0])
    assert len(decided) >= KILLS * 2
    try:
        for k in range(KILLS):
            # The worker is in the middle of sending: the receiver holds the request.
            assert receiver.arrived.wait(60), "no delivery reached the receiver"
            worker.kill()  # SIGKILL to the worker and its pool, at once
            receiver.release()
            time.sleep(0.2)
            receiver.hold()
            worker = live_stack.start_worker(f"worker-k{k + 1}", concurrency=2)
        receiver.release()
        result = reconcile_deliveries(live_stack, seeded, receiver, decided, executed)
    finally:
        receiver.release()
        worker.kill()
    # The kills cut sends short: those were sent again with the same webhook id.
    assert result["unfinished_attempts"] >= 1
    assert max(result["received"].values()) >= 2


def test_redis_restart_while_decisions_are_made_delays_deliveries_and_loses_none(live_stack, seeded, receiver, beat):
    worker = live_stack.start_worker("worker-r", concurrency=2)
    try:
        executed = _propose(live_stack, seeded, receiver, 30)
        # The results' webhooks go out while the broker is up.
        with live_stack.pg.connect() as conn:

            def results_delivered() -> bool:
                return conn.execute(
                    "SELECT count(*) FROM deliveries_delivery WHERE deployment_id = %s AND status = 'delivered'",
                    [seeded["deployment_id"]],
                ).fetchone()[0] == len(executed)

            wait_until(results_delivered, timeout=120, what="the results' webhooks", interval=0.2)
        live_stack.redis.stop()
        # Decisions succeed with the broker down: the outbox rows commit with them.
        decided = live_stack.decide_pending(deployment_id=seeded["deployment_id"], username=seeded["reviewers"][0])
        assert decided
        with live_stack.pg.connect() as conn:
            pending = conn.execute(
                "SELECT object_id, event_type FROM deliveries_delivery WHERE deployment_id = %s AND status = 'pending'",
                [seeded["deployment_id"]],
            ).fetchall()
        assert sorted((int(o), e) for o, e in pending) == sorted((pk, DECISION_EVENTS[v]) for pk, v in decided.items())
        assert {r["body"]["id"] for r in receiver.received} == executed
        # The broker comes back empty (no persistence): the sweeper finds the due deliveries.
        live_stack.redis.start()
        result = reconcile_deliveries(live_stack, seeded, receiver, decided, executed)
    finally:
        worker.kill()
    assert sum(result["received"].values()) >= len(decided) + len(executed)


@pytest.fixture
def overdue(live_stack, request):
    """A deployment whose reviewer-queue SLA is one second, so its pending actions expire at once."""
    return live_stack.seed(slug=f"overdue-{request.node.name[-20:].replace('_', '-')}", review_sla_seconds=1)


def test_sigkill_of_the_worker_mid_expiry_run_expires_each_action_once(live_stack, overdue, beat):
    receiver = Receiver(overdue["webhook_secret"]).start()
    n = 200
    worker = None
    try:
        ids = live_stack.propose_pending(deployment_id=overdue["deployment_id"], n=n, callback_url=receiver.url)
        time.sleep(1.1)  # past the SLA
        conn = live_stack.pg.connect()

        def expired() -> int:
            return conn.execute(
                "SELECT count(*) FROM reviews_proposedaction WHERE deployment_id = %s AND status = 'expired'",
                [overdue["deployment_id"]],
            ).fetchone()[0]

        worker = live_stack.start_worker("worker-e0", concurrency=1)
        live_stack.celery_call("reviews.expire_overdue_actions")
        wait_until(lambda: expired() >= 5, timeout=60, what="the expiry run to start")
        worker.kill()  # in the middle of the run
        cut_at = expired()
        assert cut_at < n, "the run finished before the kill; the test proved nothing"
        # After a restart the next run (beat would send it every minute) finishes the work.
        worker = live_stack.start_worker("worker-e1", concurrency=2)
        live_stack.celery_call("reviews.expire_overdue_actions")
        wait_until(lambda: expired() == n, timeout=120, what="every overdue action to expire", interval=0.5)
        # A further run finds nothing to do.
        live_stack.celery_call("reviews.expire_overdue_actions")
        decisions = conn.execute(
            "SELECT action_id, count(*) FROM reviews_decision WHERE verb = 'expire' AND action_id = ANY(%s) "
            "GROUP BY action_id",
            [ids],
        ).fetchall()
        audited = conn.execute(
            "SELECT object_id, count(*) FROM deployments_auditevent WHERE verb = 'reviews.action.expired' "
            "AND deployment_id = %s GROUP BY object_id",
            [overdue["deployment_id"]],
        ).fetchall()
        counted = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM deployments_evidencecount WHERE deployment_id = %s "
            "AND metric = 'decision.expire'",
            [overdue["deployment_id"]],
        ).fetchone()[0]
        conn.close()
        assert sorted(a for a, _n in decisions) == sorted(ids) and {c for _a, c in decisions} == {1}
        assert sorted(int(o) for o, _n in audited) == sorted(ids) and {c for _o, c in audited} == {1}
        assert counted == n
        reconcile_deliveries(live_stack, overdue, receiver, dict.fromkeys(ids, "expire"))
    finally:
        receiver.close()
        if worker is not None:
            worker.kill()
    print(f"expiry run cut at {cut_at}/{n}")
