"""Agent API: authentication by bearer key, and the key's deployment."""

import threading
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from core.jsonlimits import JsonProblem, body_check, json_parse
from deployments.calibration import DEFAULT_DAYS as CALIBRATION_DAYS
from deployments.calibration import MAX_DAYS as CALIBRATION_MAX_DAYS
from deployments.calibration import calibration_evaluate
from deployments.gate import gate_evaluate
from deployments.models import ApiKey, Deployment
from deployments.policy import Stage, Thresholds
from deployments.ratelimit import rate_limit_hit
from deployments.rules import payload_rules_errors
from deployments.scopes import Scope
from deployments.services import api_key_authenticate, api_key_mark_used
from deployments.simulator import DEFAULT_DAYS, MAX_DAYS, simulate


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer <key>`; `request.auth` becomes the ApiKey (with its deployment).

    `cached=True` is for an operation whose write verifies the key itself (POST /actions):
    the key may come from the process's cache, carrying the `key_check` that write makes, and any
    error answer confirms it first (config.api). See api_key_authenticate.

    `scope` (deployments.scopes): an active key without it is refused with 403, naming the
    scope it lacks."""

    def __init__(self, *, cached: bool = False, scope: Scope = Scope.PROPOSE) -> None:
        super().__init__()
        self.cached = cached
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = api_key_authenticate(token, cached=self.cached)
        if key is not None:
            if not key.has_scope(self.scope):
                has = ", ".join(key.scopes)
                raise HttpError(403, f"this API key lacks the {self.scope.value!r} scope (it has: {has})")
            api_key_mark_used(key, now=timezone.now())
        return key


bearer = ApiKeyAuth()
# The same scheme in the OpenAPI document (the class names it).
bearer_verified_by_write = ApiKeyAuth(cached=True)
# POST /outcomes: what humans did, from the system of record rather than the agent.
bearer_outcomes = ApiKeyAuth(scope=Scope.OUTCOMES)


class ApiKeyRateThrottle(BaseThrottle):
    """At most N requests per minute per API key (the deployment's `api_rate_limit`, else
    API_RATE_LIMIT_PER_MINUTE); past it django-ninja answers 429 with Retry-After.

    Runs after authentication; unauthenticated requests are refused (401) before it."""

    def __init__(self) -> None:
        # One instance serves every request; the wait belongs to the request's thread.
        self._local = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        key = getattr(request, "auth", None)
        if not isinstance(key, ApiKey):
            return True
        limit = key.deployment.api_rate_limit
        if limit is None:
            limit = settings.API_RATE_LIMIT_PER_MINUTE
        self._local.wait = rate_limit_hit(bucket=f"api-key:{key.pk}:{key.prefix}", limit=limit, period=60)
        return self._local.wait is None

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)


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


class ErrorOut(Schema):
    """Every API error: a stable code and a human-readable detail (SPEC §5)."""

    error: str
    detail: Any


# The errors any authenticated operation can answer, declared in the OpenAPI document.
AUTH_ERRORS = {401: ErrorOut, 403: ErrorOut, 429: ErrorOut}


@router.get("/deployment", response={200: DeploymentOut, **AUTH_ERRORS}, summary="The deployment of this API key")
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


class CalibrationBandOut(Schema):
    band: int
    low: float
    high: float
    n: int
    good: int
    rate: float | None
    lower: float | None
    upper: float | None
    mean_confidence: float | None


class CalibrationKindOut(Schema):
    kind: Literal["review", "audit", "execution"]
    label: str
    n: int
    good: int
    rate: float | None
    mean_confidence: float | None
    ece: float | None
    brier: float | None
    bands: list[CalibrationBandOut]


class CalibrationTypeKindOut(Schema):
    n: int
    rate: float | None
    mean_confidence: float | None
    ece: float | None
    brier: float | None


class CalibrationCandidateOut(Schema):
    auto_min_confidence: float | None
    n: int | None
    changed: int | None
    upper: float | None
    threshold: float
    min_n: float
    current: float
    simulate: dict[str, float] | None


class CalibrationOut(Schema):
    deployment: str
    action_type: str | None
    stage: str
    since: str
    days: int
    band_width: float
    primary: list[str]
    kinds: dict[str, CalibrationKindOut]
    by_action_type: dict[str, dict[str, CalibrationTypeKindOut]]
    candidate: CalibrationCandidateOut


class RateOut(Schema):
    n: int
    agree: int
    rate: float | None
    lower: float | None
    upper: float | None


class KappaOut(Schema):
    kappa: float | None
    lower: float | None
    upper: float | None


class DoubleReviewOut(Schema):
    pairs: int
    human_human: RateOut
    ai_human: RateOut
    human_human_kappa: KappaOut
    ai_human_kappa: KappaOut


class FlaggedOut(Schema):
    """Decisions by reviewers the quality page flags (deployments/reviewers.py), in the window."""

    reviewers: list[str]
    approve: int
    edit: int
    reject: int
    excluded: bool


class HumansOut(Schema):
    """How the people behind the evidence agree: blind answers with the AI, and the baseline
    of double review (human–human against AI–human, with Cohen's kappa)."""

    blind: RateOut
    double: DoubleReviewOut
    flagged: FlaggedOut | None = None


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
    humans: HumansOut
    calibration: CalibrationOut


class EvidenceQuery(Schema):
    action_type: str = Field("", max_length=100, description="Evaluate one action type's own gate (its cap).")
    calibration_days: int = Field(
        CALIBRATION_DAYS, ge=1, le=CALIBRATION_MAX_DAYS, description="Days of outcomes the calibration reads."
    )


@router.get(
    "/deployment/evidence",
    response=EvidenceOut,
    summary="The gate to the next stage, evaluated now",
)
def deployment_evidence(request: HttpRequest, query: Query[EvidenceQuery]) -> dict:
    """Each criterion with its measured value, 95% Wilson interval and sample size; the same numbers as
    the gate page. `by_action_type.agreement` is how often people agreed with the AI in this stage
    (shadow: AI–human agreement). `calibration`: confidence in bands 0.05 wide against observed
    outcomes over the last `calibration_days` days, with ECE, Brier score and a candidate
    `auto_min_confidence` (docs/gate.md, Calibration)."""
    deployment = request.auth.deployment
    evidence = gate_evaluate(deployment=deployment, action_type=query.action_type).as_dict()
    evidence["calibration"] = calibration_evaluate(
        deployment=deployment, action_type=query.action_type, days=query.calibration_days
    )
    return evidence


class SimulateQuery(Schema):
    auto_max_risk: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    auto_min_confidence: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    review_max_risk: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    days: int = Field(DEFAULT_DAYS, ge=1, le=MAX_DAYS)
    payload_rules: str | None = Field(
        None,
        max_length=100_000,
        description="A payload_rules document as JSON (as on the settings page): the candidate rules to replay",
    )


def _candidate_rules(text: str | None) -> dict[str, Any] | None:
    """The `payload_rules` query parameter: a payload_rules document as JSON (422 if it is not one)."""
    if text is None:
        return None
    try:
        document = json_parse(text)
        body_check(document)
    except (ValueError, JsonProblem) as exc:
        raise HttpError(422, f"payload_rules: {exc}") from None
    errors = payload_rules_errors(document)
    if errors:
        raise HttpError(422, "payload_rules: " + "; ".join(errors))
    return document


@router.get(
    "/deployment/simulate",
    response={200: dict[str, Any], **AUTH_ERRORS},
    summary="Replay recent decisions under candidate thresholds",
)
def deployment_simulate(request: HttpRequest, query: Query[SimulateQuery]) -> dict:
    """The human-decided actions of the last `days` days (default 30) replayed under the candidate
    `auto_max_risk`, `auto_min_confidence`, `review_max_risk` (each defaults to the current value),
    next to the current settings: per route counts, how often people changed, rejected or escalated
    what would newly auto-execute (count, rate, Wilson 95% upper bound), reviewer hours freed or
    costed; overall and per action type. From pre-aggregated counts (README: the simulator).
    `payload_rules` (a payload_rules document as JSON, as on the settings page) replays the rules it
    adds or changes over the window's decided proposals."""
    deployment = request.auth.deployment
    current = deployment.thresholds
    candidate = Thresholds(
        auto_max_risk=current.auto_max_risk if query.auto_max_risk is None else query.auto_max_risk,
        auto_min_confidence=current.auto_min_confidence
        if query.auto_min_confidence is None
        else query.auto_min_confidence,
        review_max_risk=current.review_max_risk if query.review_max_risk is None else query.review_max_risk,
    )
    rules = _candidate_rules(query.payload_rules)
    return simulate(deployment=deployment, candidate=candidate, days=query.days, candidate_rules=rules)
