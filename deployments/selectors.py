"""Reads of deployments for pages and the API."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from deployments.counters import Counts, Metric, counters_sum
from deployments.models import AuditEvent, Deployment, Member, PromotionRequest
from deployments.permissions import deployments_visible_to, limit_to_visible
from deployments.stats import wilson_interval

# The actions table belongs to `reviews`; reached through the reverse relation so that this
# lower app does not import the upper one. Status names are reviews.ProposedAction.Status.
PENDING_REVIEW, PENDING_SENIOR = "pending_review", "pending_senior"


def _action_model():
    return Deployment._meta.get_field("actions").related_model


def queue_depths(deployment_ids: list[int]) -> dict[int, dict[str, int]]:
    """{deployment_id: {"review": n, "senior": n, "audit": n}} (uses the partial queue indexes)."""
    depths: dict[int, dict[str, int]] = defaultdict(lambda: {"review": 0, "senior": 0, "audit": 0})
    actions = _action_model().objects
    rows = (
        actions.filter(deployment_id__in=deployment_ids, status__in=[PENDING_REVIEW, PENDING_SENIOR])
        .values("deployment_id", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        depths[row["deployment_id"]]["review" if row["status"] == PENDING_REVIEW else "senior"] = row["n"]
    audit_rows = (
        actions.filter(deployment_id__in=deployment_ids, audit_sample=True, audit_verdict="")
        .values("deployment_id")
        .annotate(n=Count("id"))
    )
    for row in audit_rows:
        depths[row["deployment_id"]]["audit"] = row["n"]
    return depths


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class Rates:
    """Key rates of one deployment over recent days, from the counters."""

    proposed: int = 0
    auto_share: float | None = None
    unchanged_rate: float | None = None
    failure_rate: float | None = None
    agreement: float | None = None
    metrics: Counts = field(default_factory=Counts)


def _rates(metrics: Counts) -> Rates:
    proposed = metrics.sum(Metric.of_kind("proposed"))
    decisions = metrics.sum([Metric.DECISION_APPROVE, Metric.DECISION_EDIT, Metric.DECISION_REJECT])
    executions = metrics.sum(Metric.of_kind("execution"))
    failures = metrics.sum(m for m in Metric.of_kind("execution") if m.rest.startswith("failed."))
    pairs = metrics[Metric.SHADOW_AGREE] + metrics[Metric.SHADOW_DISAGREE]
    return Rates(
        proposed=proposed,
        auto_share=_ratio(metrics[Metric.PROPOSED_AUTO], proposed),
        unchanged_rate=_ratio(metrics[Metric.DECISION_APPROVE], decisions),
        failure_rate=_ratio(failures, executions),
        agreement=_ratio(metrics[Metric.SHADOW_AGREE], pairs),
        metrics=metrics,
    )


def key_rates(deployment_ids: list[int], *, days: int = 7, today: date | None = None) -> dict[int, Rates]:
    """Rates over the last `days` days per deployment, one grouped query on the counters."""
    since = (today or timezone.now().date()) - timedelta(days=days - 1)
    per = counters_sum(by="deployment_id", deployment_ids=deployment_ids, since=since)
    return {pk: _rates(per.get(pk, Counts())) for pk in deployment_ids}


@dataclass
class OverviewRow:
    deployment: Deployment
    depths: dict[str, int]
    rates: Rates


def deployment_overview(member: Member) -> list[OverviewRow]:
    """Every visible deployment with its queue depths and 7-day rates: three queries."""
    deployments = list(deployments_visible_to(member))
    ids = [d.pk for d in deployments]
    depths = queue_depths(ids)
    rates = key_rates(ids)
    return [OverviewRow(d, depths[d.pk], rates[d.pk]) for d in deployments]


def daily_metrics(deployment: Deployment, *, days: int = 30, today: date | None = None) -> list[tuple[date, Counts]]:
    """[(day, counts)] for the last `days` days, oldest first, every day present."""
    today = today or timezone.now().date()
    since = today - timedelta(days=days - 1)
    per = counters_sum(by="day", deployment_id=deployment.pk, since=since)
    return [(since + timedelta(days=i), per.get(since + timedelta(days=i), Counts())) for i in range(days)]


def shadow_agreement_by_type(deployment: Deployment, *, since: date) -> dict[str, dict[str, Any]]:
    per = counters_sum(
        by="action_type",
        deployment_id=deployment.pk,
        since=since,
        metrics=[Metric.SHADOW_AGREE, Metric.SHADOW_DISAGREE],
    )
    result = {}
    for atype, m in sorted(per.items()):
        n = m[Metric.SHADOW_AGREE] + m[Metric.SHADOW_DISAGREE]
        lower, upper = wilson_interval(m[Metric.SHADOW_AGREE], n)
        result[atype] = {"n": n, "agreement": m[Metric.SHADOW_AGREE] / n, "lower": lower, "upper": upper}
    return result


TIMELINE_VERBS = (
    "deployments.deployment.created",
    "deployments.stage.promoted",
    "deployments.stage.demoted",
    "deployments.promotion.requested",
    "deployments.promotion.rejected",
    "deployments.breaker.tripped",
    "deployments.breaker.reset",
    "deployments.deployment.paused",
    "deployments.deployment.resumed",
)


def known_action_types(deployment: Deployment) -> list[str]:
    """The action types this deployment has counted evidence for, or caps, sorted."""
    seen = set(counters_sum(by="action_type", deployment_id=deployment.pk)) - {""}
    return sorted(seen | set(deployment.stage_caps or {}))


def stage_timeline(deployment: Deployment, *, limit: int = 50) -> list[AuditEvent]:
    """Stage changes, requests, breaker trips and kill-switch use, newest first."""
    return list(
        AuditEvent.objects.filter(deployment=deployment, verb__in=TIMELINE_VERBS)
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )


def promotion_requests(deployment: Deployment, *, limit: int = 20) -> list[PromotionRequest]:
    return list(
        PromotionRequest.objects.filter(deployment=deployment)
        .select_related("requested_by", "decided_by")
        .order_by("-requested_at", "-id")[:limit]
    )


def open_promotion_request(deployment: Deployment, action_type: str = "") -> PromotionRequest | None:
    return (
        PromotionRequest.objects.filter(
            deployment=deployment, action_type=action_type, status=PromotionRequest.Status.OPEN
        )
        .select_related("requested_by")
        .first()
    )


@dataclass
class AuditFilter:
    deployment: str = ""
    actor: str = ""
    verb: str = ""


def audit_events(member: Member, filters: AuditFilter) -> QuerySet[AuditEvent]:
    """Audit events the member may read, filtered; newest first.

    Admins read everything; seniors the events of their deployments. `verb` and `actor` match
    anywhere, ignoring case ("stage" finds promoted and demoted, "approved" every approval;
    "admin" finds admin and admin2).
    """
    # A seniors' page: only where the member has a senior's rights (deployments.permissions).
    events = AuditEvent.objects.select_related("deployment").order_by("-created_at", "-id")
    qs = limit_to_visible(events, member, queue="senior")
    if filters.deployment:
        qs = qs.filter(deployment__slug=filters.deployment)
    if filters.actor:
        qs = qs.filter(actor_label__icontains=filters.actor)
    if filters.verb:
        qs = qs.filter(verb__icontains=filters.verb)
    return qs


def audit_page(
    qs: QuerySet[AuditEvent], *, before: tuple[datetime, int] | None, size: int = 50
) -> tuple[list[AuditEvent], tuple[datetime, int] | None]:
    """One keyset page (newest first) and the cursor of the next, or None at the end."""
    if before is not None:
        at, pk = before
        qs = qs.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=pk))
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, ((rows[-1].created_at, rows[-1].pk) if more and rows else None)
