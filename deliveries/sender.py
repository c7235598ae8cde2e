"""One delivery attempt: claim the row, POST the signed body, record the outcome.

The HTTP call happens outside any database transaction; the claim before it and the record
after it are each one short transaction. Connections go only to public addresses unless
TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE is set (deliveries.egress checks each address as it connects).
"""

import time

import httpx
from django.conf import settings
from django.utils import timezone
from opentelemetry.trace import SpanKind

from core.tracing import span_under
from deliveries.egress import EgressRefused, EgressTransport
from deliveries.models import Delivery
from deliveries.selectors import webhook_signing_secrets
from deliveries.services import delivery_attempt_finish, delivery_claim
from deliveries.signing import sign_headers

USER_AGENT = "Trustladder-Webhooks/1.0"
EXCERPT_BYTES = 500


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Make one attempt at a delivery if it is due and unclaimed; return the delivery after the
    attempt, or None when there was nothing to do (not due, done, or held by another worker).
    Safe to repeat and to run concurrently."""
    attempt = delivery_claim(delivery_id=delivery_id)
    if attempt is None:
        return None
    delivery = attempt.delivery
    now = timezone.now()
    status_code: int | None = None
    error = excerpt = ""
    permanent = False
    started = time.monotonic()
    try:
        secrets = webhook_signing_secrets(deployment=delivery.deployment, now=now)
        if not secrets:
            raise ValueError("the deployment has no signing secret; an admin creates one with Rotate on /deliveries/")
        headers = sign_headers(webhook_id=delivery.webhook_id, body=delivery.body, secrets=secrets, now=now)
        transport = EgressTransport(allow_private=settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE)
        timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        with (
            # The agent's trace continues here (its traceparent, kept on the action): the
            # receiver gets it beside the Standard Webhooks headers.
            span_under(
                f"webhook {delivery.event_type}",
                delivery.traceparent,
                kind=SpanKind.CLIENT,
                **{"webhook.id": delivery.webhook_id},
            ) as traceparent,
            httpx.Client(transport=transport, timeout=timeout, follow_redirects=False) as client,
            client.stream(
                "POST",
                delivery.url,
                content=delivery.body.encode("utf-8"),
                headers={
                    **headers,
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    **({"traceparent": traceparent} if traceparent else {}),
                },
            ) as response,
        ):
            status_code = response.status_code
            for chunk in response.iter_bytes():
                excerpt = chunk[:EXCERPT_BYTES].decode("utf-8", errors="replace")
                break
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except EgressRefused as exc:
        # Permanent: retrying for WEBHOOK_RETRY_FOR would only aim at the internal network again
        # (a misconfigured receiver, or someone probing through us). The delivery fails now with
        # the reason on its attempt; an admin can redeliver once the DNS or the setting changes.
        error, permanent = str(exc), True
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except ValueError as exc:  # no signing secret, or a URL httpx refuses
        error = str(exc) or type(exc).__name__
    latency_ms = int((time.monotonic() - started) * 1000)
    return delivery_attempt_finish(
        attempt=attempt,
        status_code=status_code,
        latency_ms=latency_ms,
        error=error,
        response_excerpt=excerpt,
        permanent=permanent,
    )
