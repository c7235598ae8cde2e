"""Reads of the outbox for the sweeper and the deliveries page."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from deliveries.models import Delivery, RetiredWebhookSecret
from deployments.models import Deployment


def delivery_list(*, deployment: Deployment | None = None, limit: int = 100) -> QuerySet[Delivery]:
    """Recent deliveries, failures first (given up, then still failing), newest first within each."""
    qs = Delivery.objects.select_related("deployment")
    if deployment is not None:
        qs = qs.filter(deployment=deployment)
    since = timezone.now() - settings.WEBHOOK_PAGE_WINDOW
    # Failures stay on the page whatever their age; successes only while recent.
    qs = qs.filter(Q(created_at__gte=since) | ~Q(status=Delivery.Status.DELIVERED))
    return qs.failures_first()[:limit]


def delivery_get(*, delivery_id: int) -> Delivery:
    return Delivery.objects.select_related("deployment").prefetch_related("attempt_log").get(pk=delivery_id)


def delivery_counts_by_deployment() -> dict[int, dict[str, int]]:
    """{deployment_id: {"pending": n, "delivered": n, "failed": n}} over the page's window and open failures."""
    since = timezone.now() - settings.WEBHOOK_PAGE_WINDOW
    rows = (
        Delivery.objects.filter(Q(created_at__gte=since) | ~Q(status=Delivery.Status.DELIVERED))
        .values("deployment_id", "status")
        .annotate(n=Count("id"))
    )
    counts: dict[int, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["deployment_id"], {"pending": 0, "delivered": 0, "failed": 0})[row["status"]] = row["n"]
    return counts


def webhook_signing_secrets(*, deployment: Deployment, now: datetime | None = None) -> list[str]:
    """The deployment's current secret, then retired secrets still within the rotation grace period."""
    now = now or timezone.now()
    grace: timedelta = settings.WEBHOOK_SECRET_ROTATION_GRACE
    retired = RetiredWebhookSecret.objects.filter(deployment=deployment, retired_at__gt=now - grace).values_list(
        "secret", flat=True
    )
    return [s for s in [deployment.webhook_secret, *retired] if s]
