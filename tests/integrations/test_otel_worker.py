"""The agent's trace continued in a real Celery worker process (through Redis), exported by
the worker to a real OTLP/HTTP receiver, and sent on the webhook the worker delivers."""

import pytest

from deployments.models import Member
from reviews.services import Proposal, proposed_action_approve, proposed_action_create
from tests.deliveries.support import Worker, http_receiver, purge_queues, wait_for
from tests.factories import DeploymentFactory, MemberFactory
from tests.integrations.support import otlp_receiver

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.broker, pytest.mark.django_db(transaction=True)]

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def test_the_worker_continues_the_agents_trace(tmp_path, settings, monkeypatch):
    deployment = DeploymentFactory(stage="approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    purge_queues()
    with otlp_receiver() as collector, http_receiver() as hooks:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within a tenth of a second
        monkeypatch.setenv("OTEL_SERVICE_NAME", "trustladder-worker")
        worker = Worker(tmp_path, settings.REDIS_URL).start()
        try:
            action = proposed_action_create(
                deployment=deployment,
                proposal=Proposal(
                    action_type="refund.issue",
                    payload={"order": "A-1"},
                    risk_score=0.2,
                    confidence=0.9,
                    callback_url=hooks.url,
                ),
                traceparent=TRACEPARENT,
            )
            proposed_action_approve(action_id=action.pk, actor=reviewer.user)
            wait_for(lambda: hooks.successes(), 60, f"no webhook:\n{worker.output()}")
            spans = wait_for(
                lambda: [s for s in collector.named("webhook action.approved") if s.trace_id == TRACE],
                30,
                f"the worker exported no span of the agent's trace:\n{worker.output()}",
            )
            # The task's own span (the instrumentation's) ends after the webhook's span, so it
            # may reach the receiver a batch later: wait for it before the worker goes.
            wait_for(lambda: collector.named("run/deliveries.deliver"), 30, f"no task span:\n{worker.output()}")
        finally:
            worker.kill()
    [span] = spans
    assert span.service == "trustladder-worker"
    assert span.parent_span_id == "b7ad6b7169203331"
    assert hooks.successes()[0].headers["traceparent"] == f"00-{TRACE}-{span.span_id}-01"
