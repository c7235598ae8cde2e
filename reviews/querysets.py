"""Chainable read filters for proposed actions. They filter; they never write."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class ProposedActionQuerySet(models.QuerySet):
    def pending(self) -> "ProposedActionQuerySet":
        return self.filter(status__in=self.model.PENDING_STATUSES)

    def in_review_queue(self) -> "ProposedActionQuerySet":
        return self.filter(status=self.model.Status.PENDING_REVIEW)

    def in_senior_queue(self) -> "ProposedActionQuerySet":
        return self.filter(status=self.model.Status.PENDING_SENIOR)

    def in_audit_queue(self) -> "ProposedActionQuerySet":
        return self.filter(audit_sample=True, audit_verdict="")

    def for_deployments(self, deployment_ids) -> "ProposedActionQuerySet":
        return self.filter(deployment_id__in=deployment_ids)

    def unclaimed(self, now=None) -> "ProposedActionQuerySet":
        """Not claimed, or claimed longer ago than the claim timeout."""
        from django.conf import settings

        now = now or timezone.now()
        cutoff = now - settings.REVIEW_CLAIM_TIMEOUT
        return self.filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=cutoff))

    def overdue(self, now=None) -> "ProposedActionQuerySet":
        return self.pending().filter(expires_at__lte=now or timezone.now())
