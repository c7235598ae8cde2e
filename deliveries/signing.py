"""Standard Webhooks signatures (https://www.standardwebhooks.com/), made by the maintained
`standardwebhooks` package: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""

from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def sign_headers(*, webhook_id: str, body: str, secrets: list[str], now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt.

    One signature per secret (current first, then retired ones still in their grace period),
    space-separated as the specification allows, so a receiver holding either secret verifies.
    """
    if not secrets:
        raise ValueError("no signing secret")
    timestamp = now.astimezone(UTC)
    signatures = [Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=body) for secret in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
