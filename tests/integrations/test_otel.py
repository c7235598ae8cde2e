"""OpenTelemetry: the agent's traceparent kept on the action, shown on its page, continued
through the decision's webhook; with tracing on, the API, pages and tasks traced (the SDK's
in-memory exporter for the trace shape, a real local OTLP/HTTP receiver for the export)."""

import os
import subprocess
import sys

import pytest
from django.test import Client

from core.tracing import traceparent_clean
from deliveries.models import Delivery
from deployments.models import Member
from integrations.otel import otel_setup, otel_teardown
from reviews.models import ProposedAction
from reviews.services import proposed_action_approve
from tests.conftest import ApiClient, proposal
from tests.deliveries.support import http_receiver
from tests.factories import DeploymentFactory, MemberFactory
from tests.integrations.support import otlp_receiver

pytestmark = pytest.mark.django_db

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (TRACEPARENT, True),
        (TRACEPARENT.upper(), False),  # lowercase hex only
        ("00-" + "0" * 32 + f"-{PARENT}-01", False),  # all-zero trace id
        (f"00-{TRACE}-" + "0" * 16 + "-01", False),  # all-zero parent id
        (f"ff-{TRACE}-{PARENT}-01", False),  # version ff is invalid
        (TRACEPARENT + "-extra", False),
        ("", False),
        (None, False),
        ("00-\x00" + TRACE[1:] + f"-{PARENT}-01", False),
    ],
)
def test_traceparent_clean(value, kept):
    assert traceparent_clean(value) == (value if kept else "")


@pytest.fixture
def approval(db):
    deployment = DeploymentFactory(stage="approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    from deployments.services import api_key_create

    _, key = api_key_create(deployment=deployment)
    return deployment, reviewer, ApiClient(key)


def test_the_agents_traceparent_is_kept_shown_and_sent_on_the_webhook(approval, django_capture_on_commit_callbacks):
    deployment, reviewer, api = approval
    with http_receiver() as hooks:
        response = api.post("/api/v1/actions", proposal(callback_url=hooks.url), headers={"traceparent": TRACEPARENT})
        assert response.status_code == 201, response.content
        action = ProposedAction.objects.get(pk=response.json()["id"])
        assert action.traceparent == TRACEPARENT

        page = Client()
        page.force_login(reviewer.user)
        assert TRACEPARENT in page.get(f"/actions/{action.pk}/").content.decode()

        with django_capture_on_commit_callbacks(execute=True):
            proposed_action_approve(action_id=action.pk, actor=reviewer.user)
        [hook] = hooks.all()
    # Tracing off: the agent's context is passed through unchanged, beside the webhook headers.
    assert hook.headers["traceparent"] == TRACEPARENT
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(hook.headers)
    assert Delivery.objects.get(object_id=str(action.pk)).traceparent == TRACEPARENT


def test_an_invalid_traceparent_is_ignored_not_refused(approval):
    _, _, api = approval
    response = api.post("/api/v1/actions", proposal(), headers={"traceparent": "00-zz-nonsense"})
    assert response.status_code == 201
    assert ProposedAction.objects.get(pk=response.json()["id"]).traceparent == ""


def test_without_an_endpoint_nothing_is_instrumented():
    """Unset: the SDK is not even imported, so requests run as without OpenTelemetry."""
    code = (
        "import os, sys, django; os.environ.pop('OTEL_EXPORTER_OTLP_ENDPOINT', None);"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings.test'; django.setup();"
        "from django.conf import settings;"
        "print(any('opentelemetry' in m for m in settings.MIDDLEWARE), 'opentelemetry.sdk' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.fixture(scope="module")
def traced():
    """Tracing on for this module: spans go to a real OTLP/HTTP receiver (the exporter a
    deployment uses) and to the SDK's in-memory exporter for shape assertions."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    with otlp_receiver() as receiver:
        mp = pytest.MonkeyPatch()
        mp.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        assert otel_setup(span_processors=[SimpleSpanProcessor(memory)])
        mp.undo()
        yield memory, receiver
        otel_teardown()
        trace.get_tracer_provider().shutdown()  # flushes to the receiver, then stops exporting


def test_api_page_and_task_spans_continue_the_agents_trace(traced, approval, django_capture_on_commit_callbacks):
    from opentelemetry import trace

    memory, receiver = traced
    memory.clear()
    deployment, reviewer, api = approval
    with http_receiver() as hooks:
        response = api.post("/api/v1/actions", proposal(callback_url=hooks.url), headers={"traceparent": TRACEPARENT})
        action_id = response.json()["id"]
        page = Client()
        page.force_login(reviewer.user)
        assert page.get(f"/actions/{action_id}/").status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            proposed_action_approve(action_id=action_id, actor=reviewer.user)
        [hook] = hooks.all()
    spans = memory.get_finished_spans()
    server = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    api_span = next(s for s in server if "actions" in s.name and s.name.startswith("POST"))
    assert f"{api_span.context.trace_id:032x}" == TRACE
    assert f"{api_span.parent.span_id:016x}" == PARENT  # a child of the agent's span
    assert any(s.name.startswith("GET") for s in server)  # pages are traced too
    task = next(s for s in spans if "deliveries.deliver" in s.name)  # the Celery task's run span
    webhook = next(s for s in spans if s.name == "webhook action.approved")
    assert f"{webhook.context.trace_id:032x}" == TRACE  # the delivery continues the agent's trace
    assert task is not None
    # The receiver gets a traceparent of the agent's trace, naming the delivery's own span.
    assert hook.headers["traceparent"] == f"00-{TRACE}-{webhook.context.span_id:016x}-01"

    trace.get_tracer_provider().force_flush()
    exported = {s.name for s in receiver.spans if s.trace_id == TRACE}
    assert api_span.name in exported and "webhook action.approved" in exported
    assert {s.service for s in receiver.spans} == {"trustladder"}
