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

    def deadline_passed(self, now=None) -> "ProposedActionQuerySet":
        """Approved or held, not claimed for execution, past the agent's deadline."""
        S = self.model.Status
        return self.filter(status__in=(S.APPROVED, S.HELD), deadline__isnull=False, deadline__lte=now or timezone.now())

    def claimed_by_other(self, user, now=None) -> "ProposedActionQuerySet":
        """Held by someone other than `user` with a claim that has not timed out."""
        from django.conf import settings

        now = now or timezone.now()
        return self.filter(claimed_at__gte=now - settings.REVIEW_CLAIM_TIMEOUT).exclude(claimed_by=user)

    def held_by(self, user, now=None) -> "ProposedActionQuerySet":
        """The live (not timed out) claims of `user`."""
        from django.conf import settings

        now = now or timezone.now()
        return self.filter(claimed_by=user, claimed_at__gte=now - settings.REVIEW_CLAIM_TIMEOUT)

    def in_queue(self, queue: str) -> "ProposedActionQuerySet":
        """One of the three browser queues: "review", "senior" or "audit"."""
        if queue == "review":
            return self.in_review_queue()
        if queue == "senior":
            return self.in_senior_queue()
        if queue == "audit":
            return self.in_audit_queue()
        raise ValueError(f"unknown queue {queue!r}")

    def after(self, created_at, pk: int) -> "ProposedActionQuerySet":
        """Keyset: rows after (created_at, id) in queue order. The `>=` bound lets the
        (…, created_at, id) indexes start the scan at the cursor instead of filtering."""
        return self.filter(created_at__gte=created_at).filter(Q(created_at__gt=created_at) | Q(pk__gt=pk))

    def before(self, created_at, pk: int) -> "ProposedActionQuerySet":
        """Keyset: rows before (created_at, id) in queue order."""
        return self.filter(created_at__lte=created_at).filter(Q(created_at__lt=created_at) | Q(pk__lt=pk))
