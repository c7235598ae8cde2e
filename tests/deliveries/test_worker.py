"""Deliveries end to end: real Celery worker processes (with embedded beat), real Redis, the
pytest-django test database shared with the worker, and a real HTTP receiver on 127.0.0.1.

The worker runs with short backoff, a 2 s HTTP timeout, a 3 s lease and a 1 s sweep
(`support.WORKER_ENV`), so retries and crash recovery happen within seconds.
"""

import threading

import pytest
from trustladder_client import payload_sha256, verify_webhook

from deliveries.models import Delivery
from deployments.models import Member
from reviews.models import ProposedAction
from reviews.services import Proposal, proposed_action_approve, proposed_action_create, proposed_action_reject
from tests.deliveries.support import Worker, celery_broker, http_receiver, purge_queues, wait_for
from tests.factories import DeploymentFactory, MemberFactory
from tests.support.servers import PrivateRedis

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def approval_deployment():
    deployment = DeploymentFactory(stage="approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    return deployment, reviewer.user


@pytest.fixture
def workers(tmp_path, settings):
    """Start workers with `workers(broker_url)`; every one is SIGKILLed at the end of the test."""
    started: list[Worker] = []

    def start(broker_url: str | None = None) -> Worker:
        worker = Worker(tmp_path, broker_url or settings.REDIS_URL).start()
        started.append(worker)
        return worker

    purge_queues()
    yield start
    for worker in started:
        worker.kill()


def propose(deployment, url: str) -> ProposedAction:
    return proposed_action_create(
        deployment=deployment,
        proposal=Proposal(
            action_type="refund.issue",
            payload={"order": "A-1", "amount_cents": 1200},
            risk_score=0.2,
            confidence=0.97,
            callback_url=url,
        ),
    )


def delivered(action: ProposedAction) -> Delivery | None:
    return Delivery.objects.filter(object_id=str(action.pk), status=Delivery.Status.DELIVERED).first()


def test_signed_delivery_verifies_and_a_failing_receiver_gets_it_once(approval_deployment, workers):
    deployment, reviewer = approval_deployment
    with http_receiver(lambda n: 500 if n < 3 else 204) as receiver:
        worker = workers()
        action = propose(deployment, receiver.url)
        proposed_action_approve(action_id=action.pk, actor=reviewer, payload={"order": "A-1", "amount_cents": 900})

        delivery = wait_for(lambda: delivered(action), 60, f"not delivered:\n{worker.output()}")

        requests = receiver.all()
        assert [r.answered for r in requests] == [500, 500, 500, 204]
        assert len(receiver.successes()) == 1
        assert {r.headers["webhook-id"] for r in requests} == {delivery.webhook_id}
        for request in requests:  # every attempt is signed, each with its own timestamp
            body = verify_webhook(request.body, request.headers, deployment.webhook_secret)
        assert body["id"] == action.pk
        assert body["decision"] == "execute" and body["status"] == "approved"
        assert body["final_payload"] == {"order": "A-1", "amount_cents": 900}
        assert body["payload_sha256"] == payload_sha256(body["final_payload"])

        attempts = list(delivery.attempt_log.all())
        assert [a.status_code for a in attempts] == [500, 500, 500, 204]
        assert all(a.latency_ms is not None and a.finished_at for a in attempts)
        assert [a.error for a in attempts[:3]] == ["HTTP 500"] * 3

        # Delivered means done: the sweeper and a duplicate message send nothing more.
        from deliveries.tasks import deliver, sweep

        assert sweep() == 0
        assert deliver(delivery.pk) == "skipped"
        assert len(receiver.all()) == 4


def test_worker_killed_mid_delivery_delivers_after_restart_with_the_same_webhook_id(approval_deployment, workers):
    deployment, reviewer = approval_deployment
    release = threading.Event()

    def respond(n: int) -> int:
        if n == 0:
            release.wait(30)  # hold the first attempt open until the worker is dead
        return 200

    with http_receiver(respond) as receiver:
        first = workers()
        action = propose(deployment, receiver.url)
        proposed_action_reject(action_id=action.pk, actor=reviewer, reason="wrong order")

        assert receiver.arrived.wait(60), first.output()
        first.kill()  # SIGKILL to the whole worker while it waits for the receiver's answer
        release.set()
        delivery = Delivery.objects.get(object_id=str(action.pk))
        assert delivery.status == Delivery.Status.PENDING
        assert delivery.attempt_log.get().finished_at is None  # the interrupted attempt is on record

        second = workers()
        delivery = wait_for(lambda: delivered(action), 60, f"not delivered after restart:\n{second.output()}")

        requests = receiver.all()
        assert len(requests) >= 2
        assert {r.headers["webhook-id"] for r in requests} == {delivery.webhook_id}
        body = verify_webhook(requests[-1].body, requests[-1].headers, deployment.webhook_secret)
        assert (body["id"], body["decision"], body["reason"]) == (action.pk, "reject", "wrong order")
        assert requests[0].body == requests[-1].body  # byte-identical on every attempt


def test_broker_down_at_decision_time_delays_delivery_but_never_drops_it(approval_deployment, workers, tmp_path):
    deployment, reviewer = approval_deployment
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    try:
        with http_receiver() as receiver, celery_broker(redis_server.url):
            worker = workers(redis_server.url)
            action = propose(deployment, receiver.url)

            redis_server.stop()
            proposed_action_approve(action_id=action.pk, actor=reviewer)  # the enqueue fails fast
            delivery = Delivery.objects.get(object_id=str(action.pk))
            assert (delivery.status, delivery.attempts) == (Delivery.Status.PENDING, 0)
            assert receiver.all() == []

            redis_server.start()
            delivery = wait_for(lambda: delivered(action), 90, f"not delivered:\n{worker.output()}")
            (request,) = receiver.successes()
            assert request.headers["webhook-id"] == delivery.webhook_id
            assert verify_webhook(request.body, request.headers, deployment.webhook_secret)["decision"] == "execute"
    finally:
        redis_server.stop()
