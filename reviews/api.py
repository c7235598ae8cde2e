"""Agent API: propose actions and read them back (SPEC §5); the execution claim, results,
reconciliation, cancellation and lists are reviews.execution_api's (issue 15)."""

from dataclasses import fields
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import Field, Header, Path, Router, Schema
from ninja.errors import AuthenticationError
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.fastjson import json_bytes
from core.tracing import traceparent_clean
from deliveries.egress import url_host_not_public
from deployments.api import AUTH_ERRORS, ErrorOut, bearer, bearer_verified_by_write
from reviews.canonical import request_fingerprint
from reviews.execution import proposed_action_expire_if_due
from reviews.models import DECISION_VALUES, ProposedAction
from reviews.representation import action_representation
from reviews.selectors import action_get_for_deployment
from reviews.services import Proposal, proposed_action_submit

# The fields of a Proposal read as they are from the body (the callback URL is made a string).
PROPOSAL_FIELDS = [f.name for f in fields(Proposal) if f.name != "callback_url"]

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


def _nul_free(value: Any, info: ValidationInfo) -> Any:
    _no_nul(value, info.field_name or "body")
    return value


# Text that PostgreSQL can store: a NUL is refused (422) naming the field.
NulFreeText = Annotated[str, AfterValidator(_nul_free)]


class ProposalIn(BaseModel):
    """One proposal as a list of them carries it (POST /actions/batch); ActionIn adds its run.

    A plain pydantic model, not ninja's Schema: a Schema validates its input through a
    wrapper that reads each field by attribute (it can take ORM objects, which an input
    never is); this validates the parsed JSON directly, on the hot path.
    """

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
    # Issue 15 (reviews.runs, reviews.execution): a parent and the agent's deadline.
    parent_id: StrictInt | None = Field(None, ge=1, le=2**63 - 1, description="The action this one depends on")
    expires_in: StrictInt | None = Field(
        None, ge=1, le=10 * 365 * 86400, description="Deadline in seconds from now (at most the SLA)"
    )
    expires_at: AwareDatetime | None = Field(None, description="Absolute deadline (at most the SLA)")

    @field_validator("payload", "external_id", "model_version", "rationale")
    @classmethod
    def no_nul(cls, value: Any) -> Any:
        _no_nul(value)
        return value

    @model_validator(mode="after")
    def one_deadline(self) -> "ProposalIn":
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("send expires_in or expires_at, not both")
        return self

    def proposal(self) -> Proposal:
        """SPEC §5's fields as reviews.services takes them (the callback URL as the body spells it)."""
        values = {name: getattr(self, name) for name in PROPOSAL_FIELDS}
        return Proposal(**values, callback_url=str(self.callback_url) if self.callback_url else "")

    def deadline(self) -> datetime | None:
        """The deadline the proposal asks for, as a time (checked against the SLA by the service)."""
        if self.expires_in is not None:
            return timezone.now() + timedelta(seconds=self.expires_in)
        return self.expires_at

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


class ActionIn(ProposalIn):
    run_id: NulFreeText = Field("", max_length=200, description="Groups the proposals of one agent run")
    run_hold: StrictBool = Field(False, description="Hold the whole run while any of its actions waits for a person")

    def linked_fields(self) -> dict[str, Any]:
        """The issue-15 fields as proposed_action_create takes them ({} when none was sent)."""
        if not (self.run_id or self.parent_id or self.expires_in or self.expires_at or self.run_hold):
            return {}
        links = {"run_id": self.run_id, "run_hold": self.run_hold, "parent_id": self.parent_id}
        return {**links, "deadline": self.deadline()}


class ComparisonOut(Schema):
    agree: bool
    diff: Any


class ActionOut(Schema):
    id: int
    deployment: str
    action_type: str
    external_id: str | None
    status: Literal[tuple(ProposedAction.Status.values)]  # type: ignore[valid-type]
    route: Literal["shadow", "auto", "review", "senior"]
    stage: str
    decision: Literal[DECISION_VALUES] = Field(  # type: ignore[valid-type]
        description="What to do now: `execute` (approved: claim the execution, then run it), `wait`, `shadow`, "
        "`reject`, `expired`, `cancelled`, `claimed` (someone holds the execution claim), `reconcile` (the "
        "result is unknown) or `done` (a result is recorded)"
    )
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
    deadline: str | None = Field(None, description="The agent's deadline, ISO 8601 UTC")
    run_id: str | None = None
    parent_id: int | None = None
    execution_claims: int = Field(0, description="Execution claims granted (one per approval)")
    approvals_required: int = Field(
        1, description="Different people who must approve it (a payload rule's quorum; 1 for most actions)"
    )
    approvals: int = Field(0, description="Approvals given so far: `1` of `approvals_required` 2 leaves it pending")


LINK_FIELDS = {"run_id", "run_hold", "parent_id", "expires_in", "expires_at"}
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
    # The issue-15 fields count only when sent, so keys stored before them still replay.
    linked = data.linked_fields()
    fingerprint = ""
    if idempotency_key is not None:
        fingerprint = request_fingerprint(data.model_dump(mode="json", exclude=None if linked else LINK_FIELDS))
    proposal = {
        "proposal": data.proposal(),
        "idempotency_key": idempotency_key,
        **linked,
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
    return action_representation(proposed_action_expire_if_due(action=action))
