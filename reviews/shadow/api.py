"""Shadow mode on the agent API: `POST /api/v1/outcomes` (SPEC §5)."""

from datetime import UTC, datetime
from typing import Any, Literal

import pydantic
from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja.errors import ValidationError
from pydantic import TypeAdapter, field_validator

from core.jsonbody import strict_json
from deployments.api import bearer_outcomes
from reviews.api import ErrorOut, _no_nul
from reviews.shadow.services import MAX_OUTCOMES, shadow_outcomes_record

router = Router(auth=bearer_outcomes, tags=["shadow"])


class OutcomeIn(Schema):
    external_id: str = Field(min_length=1, max_length=200)
    action_type: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-/]+$")
    payload: dict[str, Any]
    decided_by: str = Field("", max_length=200)
    decided_at: datetime | None = None

    model_config = pydantic.ConfigDict(extra="forbid")

    @field_validator("payload", "external_id", "decided_by")
    @classmethod
    def no_nul(cls, value: Any) -> Any:
        _no_nul(value)
        return value

    @field_validator("decided_at")
    @classmethod
    def aware(cls, value: datetime | None) -> datetime | None:
        """Stored in UTC: PostgreSQL refuses offsets past ±15:59, Python allows up to ±24 h."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("decided_at is out of range") from None


class OutcomeResult(Schema):
    external_id: str
    result: Literal["created", "duplicate", "conflict"]
    outcome_id: int
    matched_action_ids: list[int]


class OutcomesOut(Schema):
    received: int
    created: int
    duplicate: int
    conflict: int
    results: list[OutcomeResult]


_many = TypeAdapter(list[OutcomeIn])
_one_schema = OutcomeIn.model_json_schema()


def _validate(body: Any) -> list[OutcomeIn]:
    if isinstance(body, dict):
        items, single = [body], True
    elif isinstance(body, list):
        items, single = body, False
    else:
        raise ValidationError([{"loc": ["body"], "msg": "send one outcome object or a list of them"}])
    if not items:
        raise ValidationError([{"loc": ["body"], "msg": "the list of outcomes is empty"}])
    if len(items) > MAX_OUTCOMES:
        message = f"at most {MAX_OUTCOMES} outcomes per request, got {len(items)}"
        raise ValidationError([{"loc": ["body"], "msg": message}])
    try:
        return _many.validate_python(items)
    except pydantic.ValidationError as exc:
        errors = []
        for e in exc.errors():
            index, *rest = e["loc"]
            path = ".".join(str(p) for p in rest)
            loc = [path] if single else [f"[{index}]" + (f".{path}" if path else "")]
            errors.append({"loc": loc, "msg": e["msg"]})
        raise ValidationError(errors) from None


@router.post(
    "/outcomes",
    response={200: OutcomesOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 413: ErrorOut, 422: ErrorOut},
    summary="Report what humans did (shadow mode)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            _one_schema,
                            {"type": "array", "items": _one_schema, "minItems": 1, "maxItems": MAX_OUTCOMES},
                        ]
                    }
                }
            },
        }
    },
)
def outcomes_create(request: HttpRequest) -> Any:
    """Needs a key with the `outcomes` scope (403 otherwise). One outcome object, or a list of up to
    1000: `external_id`, `action_type`, `payload`, optional `decided_by`, `decided_at`. Idempotent
    per external_id: the first outcome stored wins; a repeat answers `duplicate`, a different
    outcome for a known external_id answers `conflict` and changes nothing. Each outcome is paired
    with the shadow action of the same external_id, whichever arrives first, and compared by a
    worker."""
    outcomes = _validate(strict_json.parse_body(request))
    key = request.auth
    results = shadow_outcomes_record(
        deployment=key.deployment,
        outcomes=[o.model_dump() for o in outcomes],
        actor_label=f"api-key:{key.prefix}",
        api_key=key,
    )
    summary = {"created": 0, "duplicate": 0, "conflict": 0}
    for r in results:
        summary[r["result"]] += 1
    return {"received": len(results), **summary, "results": results}
