"""POST /integrations/slack/interactions: Slack's interactivity requests, signature checked."""

import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from integrations.slack.services import interaction_digest, slack_interaction_handle

logger = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


def _refuse(status: int, detail: str) -> JsonResponse:
    return JsonResponse(
        {"error": "forbidden" if status in (401, 403) else "bad_request", "detail": detail}, status=status
    )


@csrf_exempt  # Slack cannot send a CSRF token: the request's signature authenticates it instead
@require_POST
def slack_interactions(request: HttpRequest) -> HttpResponse:
    """Verify Slack's v0 signature (HMAC-SHA256 of "v0:timestamp:body" with the signing secret,
    timestamp within 5 minutes: slack-sdk's SignatureVerifier), then handle the payload."""
    secret = settings.TRUSTLADDER_SLACK_SIGNING_SECRET
    if not secret:
        return _refuse(403, "Slack approvals are not configured (TRUSTLADDER_SLACK_SIGNING_SECRET)")
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_BODY:
        return _refuse(400, "the request body is too big (or its length unreadable)")
    body = request.body
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return _refuse(401, "missing or malformed X-Slack-Request-Timestamp")
    if not SignatureVerifier(secret).is_valid_request(body, dict(request.headers)):
        return _refuse(401, "the request's Slack signature is invalid or too old")
    try:
        form = QueryDict(body.decode("utf-8"))
        payload = json.loads(form.get("payload", ""), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _refuse(400, "the payload is not JSON")
    if not isinstance(payload, dict):
        return _refuse(400, "the payload is not a JSON object")
    reply = slack_interaction_handle(payload=payload, digest=interaction_digest(timestamp, body))
    if reply.body is None:
        return HttpResponse(status=200)
    return JsonResponse(reply.body)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
