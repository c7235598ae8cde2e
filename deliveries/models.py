"""The webhook outbox: one `Delivery` per event to send, one `DeliveryAttempt` per try.

A delivery row is written in the same transaction as the fact it announces (a human decision),
so a broker that is down at that moment delays the delivery, never drops it. Its body is
stored as the exact bytes sent, and its `webhook_id` never changes, so every retry carries the
same Standard Webhooks `webhook-id` and the same body; only the timestamp and signature differ.

This app sits below `reviews` and knows nothing about actions: it sends signed JSON for a
deployment, about an object named like audit events name theirs (`object_type`, `object_id`).
"""

import uuid

from django.db import models
from django.db.models import Q

from deliveries.querysets import DeliveryQuerySet
from deployments.models import Deployment


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class Delivery(models.Model):
    """One event to POST to one URL, retried until delivered or until `give_up_at`."""

    class Status(models.TextChoices):
        PENDING = "pending"  # not delivered yet; retried when `next_attempt_at` comes
        DELIVERED = "delivered"  # a 2xx answer was received
        FAILED = "failed"  # gave up at `give_up_at` (or at once: a refused address); an admin may redeliver

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)  # e.g. "action.approved"
    object_type = models.CharField(max_length=64, blank=True)  # e.g. "reviews.proposedaction"
    object_id = models.CharField(max_length=64, blank=True)
    url = models.URLField(max_length=2000)
    webhook_id = models.CharField(max_length=64, unique=True, default=new_webhook_id)
    body = models.TextField(help_text="The exact JSON text sent, so every retry is byte-identical.")
    # The W3C trace context of the fact announced (the agent's, kept on its action): the attempt
    # continues that trace and sends it in a `traceparent` header beside the webhook headers.
    traceparent = models.CharField(max_length=55, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    give_up_at = models.DateTimeField()
    # A claimed delivery is being sent until then; a crashed worker's claim simply runs out.
    lease_until = models.DateTimeField(null=True, blank=True)

    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The sweeper: pending deliveries whose next attempt is due.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due"),
            # The deliveries page: one deployment's recent deliveries.
            models.Index(fields=["deployment", "-created_at"], name="delivery_by_deployment"),
            # Deliveries of one object (an action's page, tests).
            models.Index(fields=["object_type", "object_id"], name="delivery_by_object"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} {self.event_type} → {self.url} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP attempt. Written when the attempt starts; completed when it ends. An attempt
    with no `finished_at` was interrupted (the worker died while sending)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="delivery_attempt_unique")]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number} {self.status_code or self.error[:40]}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class RetiredWebhookSecret(models.Model):
    """A deployment's previous signing secret. For a grace period after a rotation, deliveries
    carry a signature with it beside the new one, so receivers can switch without a gap."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="retired_webhook_secrets")
    secret = models.CharField(max_length=100)
    retired_at = models.DateTimeField()

    class Meta:
        ordering = ["-retired_at"]
        indexes = [models.Index(fields=["deployment", "-retired_at"], name="retired_secret_by_deployment")]

    def __str__(self) -> str:
        return f"{self.deployment_id} retired {self.retired_at:%Y-%m-%d %H:%M}"
