"""W3C trace context for the apps, through the OpenTelemetry *API* only.

Without an SDK configured (integrations.otel sets one up when OTEL_EXPORTER_OTLP_ENDPOINT is
set) the API's spans are non-recording: a span started under an agent's `traceparent` carries
that same context, so the agent's trace is passed through unchanged and nothing is exported.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import extract, inject

# https://www.w3.org/TR/trace-context/#traceparent-header-field-values: version 00's layout;
# version ff is invalid, all-zero trace and parent ids are invalid.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
TRACEPARENT_LENGTH = 55

_tracer = trace.get_tracer("trustladder")


def traceparent_clean(value: object) -> str:
    """`value` if it is a valid W3C `traceparent`, else "" (the spec says: ignore it)."""
    if isinstance(value, str) and len(value) == TRACEPARENT_LENGTH and _TRACEPARENT.fullmatch(value):
        return value
    return ""


def traceparent_current() -> str:
    """The `traceparent` of the current span, or "" when there is none."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return traceparent_clean(carrier.get("traceparent", ""))


@contextmanager
def span_under(
    name: str, traceparent: str = "", *, kind: trace.SpanKind = trace.SpanKind.INTERNAL, **attributes: Any
) -> Iterator[str]:
    """A span named `name`, child of `traceparent` when one is given (else of the current span);
    yields the `traceparent` to send onwards: the span's own when an SDK records it, else the
    one given (passed through)."""
    parent = extract({"traceparent": traceparent}) if traceparent else None
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes):
        yield traceparent_current() or traceparent
