"""Agent API: authentication by bearer key, and the key's deployment."""

from datetime import datetime, timedelta
from typing import Literal

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.security import HttpBearer

from deployments.models import ApiKey, Deployment
from deployments.services import api_key_authenticate

LAST_USED_RESOLUTION = timedelta(minutes=5)


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer <key>`; `request.auth` becomes the ApiKey (with its deployment)."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = api_key_authenticate(token)
        if key is not None and (key.last_used_at is None or timezone.now() - key.last_used_at > LAST_USED_RESOLUTION):
            # Throttled so that the hot path does not write the key row on every request.
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key


bearer = ApiKeyAuth()
router = Router(auth=bearer, tags=["deployment"])


class ThresholdsOut(Schema):
    auto_max_risk: float
    auto_min_confidence: float
    review_max_risk: float
    audit_sample_rate: float


class DeploymentOut(Schema):
    slug: str
    name: str
    stage: str
    next_stage: str | None
    stage_entered_at: datetime
    stage_caps: dict[str, str]
    thresholds: ThresholdsOut
    review_sla_seconds: int
    senior_sla_seconds: int
    paused: bool
    breaker_tripped: bool
    breaker_tripped_at: datetime | None
    fail_closed: bool


def deployment_representation(deployment: Deployment) -> dict:
    from deployments.policy import Stage

    next_stage = Stage(deployment.stage).next
    return {
        "slug": deployment.slug,
        "name": deployment.name,
        "stage": deployment.stage,
        "next_stage": next_stage.value if next_stage else None,
        "stage_entered_at": deployment.stage_entered_at,
        "stage_caps": deployment.stage_caps or {},
        "thresholds": {
            "auto_max_risk": deployment.auto_max_risk,
            "auto_min_confidence": deployment.auto_min_confidence,
            "review_max_risk": deployment.review_max_risk,
            "audit_sample_rate": deployment.audit_sample_rate,
        },
        "review_sla_seconds": int(deployment.review_sla.total_seconds()),
        "senior_sla_seconds": int(deployment.senior_sla.total_seconds()),
        "paused": deployment.paused,
        "breaker_tripped": deployment.breaker_tripped,
        "breaker_tripped_at": deployment.breaker_tripped_at,
        "fail_closed": deployment.fail_closed,
    }


@router.get("/deployment", response=DeploymentOut, summary="The deployment of this API key")
def deployment_detail(request: HttpRequest) -> dict:
    return deployment_representation(request.auth.deployment)


class CriterionOut(Schema):
    name: str
    met: bool
    value: float | None
    lower: float | None
    upper: float | None
    n: int | None
    threshold: float | None
    status: Literal["met", "failed", "insufficient"]
    label: str
    detail: str


class TypeAgreementOut(Schema):
    n: int
    agreement: float
    lower: float
    upper: float


class EvidenceOut(Schema):
    deployment: str
    action_type: str | None
    stage: str
    next_stage: str | None
    outcome: Literal["pass", "fail", "inconclusive"]
    window_start: datetime
    evaluated_at: datetime
    criteria: list[CriterionOut]
    by_action_type: dict[str, TypeAgreementOut]


class EvidenceQuery(Schema):
    action_type: str = Field("", max_length=100, description="Evaluate one action type's own gate (its cap).")


@router.get(
    "/deployment/evidence",
    response=EvidenceOut,
    summary="The gate to the next stage, evaluated now",
    description="Each criterion with its measured value, 95% Wilson interval and sample size; the same "
    "numbers as the gate page. `by_action_type.agreement` is how often people agreed with the AI in this "
    "stage (shadow: AI–human agreement). Formulas: docs/gate.md.",
)
def deployment_evidence(request: HttpRequest, query: Query[EvidenceQuery]) -> dict:
    from deployments.gate import gate_evaluate

    return gate_evaluate(deployment=request.auth.deployment, action_type=query.action_type).as_dict()
