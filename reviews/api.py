"""Agent API: propose actions, read them back, report execution results (SPEC §5)."""

from typing import Annotated, Any, Literal

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Field, Header, Path, Router, Schema
from ninja.errors import AuthenticationError
from pydantic import AnyHttpUrl, BaseModel, field_validator

from core.fastjson import json_bytes
from core.tracing import traceparent_clean
from deliveries.egress import url_host_not_public
from deployments.api import AUTH_ERRORS, ErrorOut, bearer, bearer_verified_by_write
from reviews.canonical import request_fingerprint
from reviews.representation import action_representation
from reviews.selectors import action_get_for_deployment
from reviews.services import proposed_action_report_result, proposed_action_submit

router = Router(auth=bearer, tags=["actions"])
# Ids past a 64-bit integer are a 422, not a database error.
ActionId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _no_nul(value: Any, path: str = "payload") -> None:
    """PostgreSQL text and jsonb cannot hold U+0000; refuse it as bad input, not a 500."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path} contains a NUL character")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k, path)
            _no_nul(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_nul(v, f"{path}[{i}]")


class ActionIn(BaseModel):
    # A plain pydantic model, not ninja's Schema: a Schema validates its input through a
    # wrapper that reads each field by attribute (it can take ORM objects, which an input
    # never is); this validates the parsed JSON directly, on the hot path.
    action_type: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-/]+$")
    payload: dict[str, Any]
    # Strict: a JSON number only (an integer is one); no string or boolean taken for it.
    risk_score: float = Field(ge=0.0, le=1.0, strict=True)
    confidence: float = Field(ge=0.0, le=1.0, strict=True)
    external_id: str = Field("", max_length=200)
    model_version: str = Field("", max_length=100)
    rationale: str = Field("", max_length=20_000)
    needs_human: bool = Field(False, strict=True)
    # AnyHttpUrl's schema says only "format: uri"; the pattern tells clients (and the fuzzer)
    # that the scheme must be http or https.
    callback_url: AnyHttpUrl | None = Field(
        None, max_length=2000, json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}
    )

    @field_validator("payload", "external_id", "model_version", "rationale")
    @classmethod
    def no_nul(cls, value: Any) -> Any:
        _no_nul(value)
        return value

    @field_validator("callback_url")
    @classmethod
    def public_callback(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        """Early word on a URL the worker would refuse. From the URL alone: a name is resolved,
        and its addresses checked, only when the worker connects (deliveries.egress)."""
        if value is not None and not settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE:
            reason = url_host_not_public(str(value))
            if reason:
                raise ValueError(f"webhooks go only to public addresses: {reason}")
        return value


class ComparisonOut(Schema):
    agree: bool
    diff: Any


class ActionOut(Schema):
    id: int
    deployment: str
    action_type: str
    external_id: str | None
    status: str
    route: Literal["shadow", "auto", "review", "senior"]
    stage: str
    decision: Literal["execute", "wait", "shadow", "reject", "expired"]
    payload: dict[str, Any]
    final_payload: dict[str, Any] | None
    payload_sha256: str | None
    risk_score: float
    confidence: float
    needs_human: bool
    model_version: str | None
    reason: str | None
    created_at: str = Field(description="ISO 8601, UTC")
    decided_at: str | None
    executed_at: str | None
    error: str | None
    comparison: ComparisonOut | None = None


class ResultIn(Schema):
    status: Literal["executed", "failed"]
    payload_sha256: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    error: str = Field("", max_length=20_000)

    @field_validator("error")
    @classmethod
    def no_nul(cls, value: str) -> str:
        _no_nul(value, "error")
        return value


ERRORS = {**AUTH_ERRORS, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut}


@router.post(
    "/actions",
    auth=bearer_verified_by_write,
    response={201: ActionOut, **ERRORS},
    summary="Propose an action",
    description="Routes the action by the deployment's stage. `decision` says what to do now: "
    "`execute`, `wait` (a person decides) or `shadow` (do not execute). Send an `Idempotency-Key` "
    "header to make retries safe.",
)
def action_create(
    request: HttpRequest,
    data: ActionIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255, min_length=1),
) -> Any:
    """The hot path: validation here, every step of storing in `proposed_action_submit` (one
    statement stores the action, its Idempotency-Key with the reply, and checks the API key if
    it came from the process's cache; the rarer cases take a second look there)."""
    # The request's fingerprint, only for an Idempotency-Key: the body as JSON, hashed.
    fingerprint = request_fingerprint(data.model_dump(mode="json")) if idempotency_key is not None else ""
    proposal = {
        "action_type": data.action_type,
        "payload": data.payload,
        "risk_score": data.risk_score,
        "confidence": data.confidence,
        "external_id": data.external_id,
        "model_version": data.model_version,
        "rationale": data.rationale,
        "needs_human": data.needs_human,
        "callback_url": str(data.callback_url) if data.callback_url else "",  # as the body's JSON spells it
        "idempotency_key": idempotency_key,
        # W3C trace context: an invalid header is ignored, as the spec says.
        "traceparent": traceparent_clean(request.headers.get("traceparent")),
    }
    reply = proposed_action_submit(key=request.auth, proposal=proposal, fingerprint=fingerprint)
    if reply is None:
        raise AuthenticationError()  # the key was revoked since it was cached
    if reply.replayed:
        return JsonResponse(reply.body, status=reply.status, headers={"Idempotent-Replayed": "true"})
    # The action's representation (the reply stored with its Idempotency-Key, if one was sent:
    # the same document), returned as it is: it is the declared shape (tests/reviews/test_api.py),
    # so django-ninja's re-validation of it would only cost time on the hot path.
    return HttpResponse(json_bytes(reply.body), content_type="application/json", status=reply.status)


@router.get("/actions/{action_id}", response={200: ActionOut, **ERRORS}, summary="Read an action")
def action_detail(request: HttpRequest, action_id: ActionId) -> Any:
    action = action_get_for_deployment(deployment=request.auth.deployment, action_id=action_id)
    return action_representation(action)


@router.post(
    "/actions/{action_id}/result",
    response={200: ActionOut, **ERRORS},
    summary="Report the execution result",
    description="Allowed once the action is approved, with the SHA-256 of its final payload (409 otherwise).",
)
def action_result(request: HttpRequest, action_id: ActionId, data: ResultIn) -> Any:
    action = action_get_for_deployment(deployment=request.auth.deployment, action_id=action_id)
    action = proposed_action_report_result(
        action_id=action.pk,
        status=data.status,
        payload_hash=data.payload_sha256,
        error=data.error,
        actor_label=f"api-key:{request.auth.prefix}",
    )
    return action_representation(action, deployment_slug=request.auth.deployment.slug)
