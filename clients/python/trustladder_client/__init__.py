"""Trustladder agent client: propose actions, wait for people to decide, run only what was
approved, and verify the decision webhooks."""

from trustladder_client import errors
from trustladder_client.canonical import canonical_json, payload_sha256
from trustladder_client.client import Action, Client
from trustladder_client.errors import *  # noqa: F403 -- errors.__all__, the package's errors
from trustladder_client.webhooks import verify_webhook

__all__ = ["Action", "Client", "canonical_json", "payload_sha256", "verify_webhook", *errors.__all__]
