"""Chainable read filters for proposed actions. They filter; they never write."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from deployments.errors import InvalidInput


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

    def overdue(self, now=None) -> "ProposedActionQuerySet":
        return self.pending().filter(expires_at__lte=now or timezone.now())

    def queue_items(
        self, queue: str, *, deployment_ids=None, deployment_id: int | None = None, action_type: str = ""
    ) -> "ProposedActionQuerySet":
        """The items of one queue of the deployments `deployment_ids` (None: all), filtered,
        in queue order: oldest first, except the audit queue (newest first: a recent
        auto-execution is the one still worth catching)."""
        qs = self.in_queue(queue)
        if deployment_ids is not None:
            qs = qs.for_deployments(deployment_ids)
        if deployment_id is not None:
            qs = qs.filter(deployment_id=deployment_id)
        if action_type:
            qs = qs.filter(action_type=action_type)
        if queue == "audit":
            return qs.order_by("-created_at", "-id")
        return qs.order_by("created_at", "id")

    def locked(self, action_id: int):
        """The action with its row locked FOR NO KEY UPDATE (its key never changes, so rows that
        reference it — decisions, deliveries — are not held up), with its deployment; the caller
        is inside a transaction. InvalidInput if there is no such action."""
        try:
            # of=("self",): lock the action only, not its deployment row (blast-radius reservations lock that).
            return self.select_for_update(of=("self",), no_key=True).select_related("deployment").get(pk=action_id)
        except self.model.DoesNotExist:
            raise InvalidInput(f"action {action_id} does not exist") from None

    def locked_with_lineage(self, action_id: int):
        """`locked`, after locking the action's parent (FOR NO KEY UPDATE) and its run: every
        transition of an action that may be in a run or under a parent takes these locks in
        this order (ancestor, run, action, then what reviews.runs releases or refuses), so two
        of them never wait for each other in a circle. One read more for most actions."""
        row = self.filter(pk=action_id).values_list("parent_id", "run_id").first()
        if row is not None:
            parent_id, run_id = row
            if parent_id is not None:
                self.select_for_update(no_key=True).filter(pk=parent_id).values_list("pk").first()
            if run_id is not None:
                run_model = self.model._meta.get_field("run").related_model
                run_model.objects.select_for_update(no_key=True).filter(pk=run_id).values_list("pk").first()
        return self.locked(action_id)

    def deadline_passed(self, now=None) -> "ProposedActionQuerySet":
        """Approved or held, not claimed for execution, past the agent's deadline."""
        S = self.model.Status
        return self.filter(status__in=(S.APPROVED, S.HELD), deadline__isnull=False, deadline__lte=now or timezone.now())

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
