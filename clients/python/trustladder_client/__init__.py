"""Trustladder agent client: propose actions, wait for people to decide, run only what was
approved, and verify the decision webhooks."""

from trustladder_client.canonical import canonical_json, payload_sha256
from trustladder_client.client import Action, Client
from trustladder_client.errors import (
    ActionAlreadyClaimed,
    ActionCancelled,
    ActionExpired,
    ActionNotExecuted,
    ActionRejected,
    ActionShadowed,
    ApiError,
    DecisionTimeout,
    OutcomeUnknown,
    TrustladderError,
    WebhookVerificationError,
)
from trustladder_client.webhooks import verify_webhook

__all__ = [
    "Action",
    "ActionAlreadyClaimed",
    "ActionCancelled",
    "ActionExpired",
    "ActionNotExecuted",
    "ActionRejected",
    "ActionShadowed",
    "ApiError",
    "Client",
    "DecisionTimeout",
    "OutcomeUnknown",
    "TrustladderError",
    "WebhookVerificationError",
    "canonical_json",
    "payload_sha256",
    "verify_webhook",
]
