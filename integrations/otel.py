"""OpenTelemetry: traces of the API, the pages and the Celery tasks, exported over OTLP.

On only when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; the
exporter reads the other standard OTEL_* variables itself (headers, protocol, timeout,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). Unset, this module imports none of the SDK and
instruments nothing: requests and tasks run exactly as without it (bench/otel_overhead.py).

The instrumentations are the maintained ones (opentelemetry-instrumentation-django, -celery):
a server span per request, continuing the caller's `traceparent` header; a span per task
publish and run, with the context carried in the task's headers into the worker.
"""

import os
from collections.abc import Sequence
from typing import Any

_configured = False


def otel_endpoint() -> str:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def otel_setup(*, span_processors: Sequence[Any] = ()) -> bool:
    """Configure the tracer provider and instrument Django and Celery, once per process.

    Does nothing without an endpoint (and without `span_processors`, which tests pass to
    watch spans in memory). Returns whether tracing is on. Safe to call again.
    """
    global _configured
    if _configured:
        return True
    if not otel_endpoint() and not span_processors:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):  # the API's proxy: no SDK provider set yet
        service = os.environ.get("OTEL_SERVICE_NAME", "trustladder")
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(provider)
    if otel_endpoint():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched, off the request thread; the SDK restarts its thread in forked children
        # (gunicorn and Celery prefork workers).
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for processor in span_processors:
        provider.add_span_processor(processor)
    # /healthz and /metrics are scraped every few seconds: no spans for them.
    DjangoInstrumentor().instrument(excluded_urls="healthz,metrics")
    CeleryInstrumentor().instrument()
    _configured = True
    return True


def otel_teardown() -> None:
    """Undo the instrumentation (tests). The tracer provider stays: OpenTelemetry sets it once."""
    global _configured
    if not _configured:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()
    _configured = False
