"""Verify Trustladder's webhooks (Standard Webhooks signatures) with the maintained
`standardwebhooks` package."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _UpstreamError

from trustladder_client.canonical import payload_sha256  # noqa: F401 -- imported from here before
from trustladder_client.errors import WebhookVerificationError


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """Check a delivery's `webhook-id`, `webhook-timestamp` (within 5 minutes) and
    `webhook-signature` against your deployment's `whsec_...` secret; return the parsed action.

    `body` must be the raw request body, byte for byte. Raises `WebhookVerificationError`.
    Deliveries are retried with the same `webhook-id`: use it to ignore duplicates.
    """
    try:
        data = Webhook(secret).verify(body, dict(headers.items()))
    except _UpstreamError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    except (ValueError, TypeError) as exc:  # malformed signature header or secret
        raise WebhookVerificationError(f"malformed webhook: {exc}") from exc
    if not isinstance(data, dict):
        raise WebhookVerificationError("the webhook body is not a JSON object")
    return data
