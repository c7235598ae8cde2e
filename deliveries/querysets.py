"""Chainable read filters for deliveries. They filter; they never write."""

from datetime import datetime

from django.db import models
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone


class DeliveryQuerySet(models.QuerySet):
    def due(self, now: datetime | None = None) -> "DeliveryQuerySet":
        """Pending, its next attempt due, and nobody holding a live claim on it."""
        now = now or timezone.now()
        return self.filter(status="pending", next_attempt_at__lte=now).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now)
        )

    def failures_first(self) -> "DeliveryQuerySet":
        """Given up first, then pending ones that have failed at least once, then the rest; newest first."""
        rank = Case(
            When(status="failed", then=Value(0)),
            When(status="pending", attempts__gt=0, then=Value(1)),
            When(status="pending", then=Value(2)),
            default=Value(3),
            output_field=IntegerField(),
        )
        return self.annotate(failure_rank=rank).order_by("failure_rank", "-created_at", "-id")
