"""Deployments, their stage and thresholds, API keys, members, evidence and the audit log."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from deployments import policy

UNIT = [MinValueValidator(0.0), MaxValueValidator(1.0)]


class Deployment(models.Model):
    """One AI system in production, at one stage of the ladder."""

    class StageChoices(models.TextChoices):
        SHADOW = policy.Stage.SHADOW.value, "1 · Shadow"
        APPROVAL = policy.Stage.APPROVAL.value, "2 · Approval required"
        SUPERVISED = policy.Stage.SUPERVISED.value, "3 · Supervised autonomous"
        AUTONOMOUS = policy.Stage.AUTONOMOUS.value, "4 · Fully autonomous"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    stage = models.CharField(max_length=16, choices=StageChoices.choices, default=StageChoices.SHADOW)
    stage_entered_at = models.DateTimeField(default=timezone.now)
    # Per action type caps: {"refund.issue": "approval"}; routing uses the lower stage.
    stage_caps = models.JSONField(default=dict, blank=True)

    auto_max_risk = models.FloatField(default=policy.DEFAULT_AUTO_MAX_RISK, validators=UNIT)
    auto_min_confidence = models.FloatField(default=policy.DEFAULT_AUTO_MIN_CONFIDENCE, validators=UNIT)
    review_max_risk = models.FloatField(default=policy.DEFAULT_REVIEW_MAX_RISK, validators=UNIT)
    audit_sample_rate = models.FloatField(default=0.05, validators=UNIT)
    review_sla = models.DurationField(default=timedelta(hours=24))
    senior_sla = models.DurationField(default=timedelta(hours=8))

    paused = models.BooleanField(default=False, help_text="Kill switch: nothing is auto-executed.")
    breaker_tripped_at = models.DateTimeField(null=True, blank=True)
    breaker_reason = models.CharField(max_length=500, blank=True)

    # Requests per minute per API key of this deployment; empty: API_RATE_LIMIT_PER_MINUTE.
    api_rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute per API key (empty: the site default; 0: no limit)."
    )

    # Signs webhook deliveries (Standard Webhooks, "whsec_" + base64 secret); rotatable.
    webhook_secret = models.CharField(max_length=100, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug

    def clean(self) -> None:
        if self.auto_max_risk > self.review_max_risk:
            raise ValidationError({"auto_max_risk": "auto_max_risk must not exceed review_max_risk."})
        for action_type, cap in (self.stage_caps or {}).items():
            if cap not in {stage.value for stage in policy.Stage}:
                raise ValidationError({"stage_caps": f"{action_type}: unknown stage {cap!r}"})

    @property
    def thresholds(self) -> policy.Thresholds:
        return policy.Thresholds(
            auto_max_risk=self.auto_max_risk,
            auto_min_confidence=self.auto_min_confidence,
            review_max_risk=self.review_max_risk,
        )

    @property
    def breaker_tripped(self) -> bool:
        return self.breaker_tripped_at is not None

    @property
    def fail_closed(self) -> bool:
        return self.paused or self.breaker_tripped

    def effective_stage(self, action_type: str) -> policy.Stage:
        return policy.effective_stage(self.stage, (self.stage_caps or {}).get(action_type))


def hash_api_key(raw: str) -> str:
    """SHA-256 of a key. Keys are 256-bit random tokens, so a fast hash is safe and lets the
    lookup be one indexed equality query."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A bearer key of one deployment. Only its hash is stored; the raw key is shown once."""

    PREFIX = "tl_"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.deployment.slug})"

    @classmethod
    def generate_raw(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Member(models.Model):
    """A person's role and the deployments they are assigned to (admins see them all)."""

    class Role(models.TextChoices):
        REVIEWER = "reviewer", "Reviewer"
        SENIOR = "senior", "Senior reviewer"
        ADMIN = "admin", "Admin"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="member")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.REVIEWER)
    deployments = models.ManyToManyField(Deployment, blank=True, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN

    @property
    def is_senior(self) -> bool:
        """Seniors and admins may work the senior and audit queues."""
        return self.role in {self.Role.SENIOR, self.Role.ADMIN}


class EvidenceCount(models.Model):
    """Evidence counters: how many times `metric` happened, per deployment, day and action type.

    Services that record evidence (a decision, a comparison, an execution result, an audit
    verdict) add to these rows in the same transaction; the gate and the breakers read only
    these rows, so their cost does not grow with history. `shard` spreads concurrent
    increments of one hot (deployment, day, type, metric) over several rows.
    """

    SHARDS = 8

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="evidence")
    day = models.DateField()
    action_type = models.CharField(max_length=100)
    metric = models.CharField(max_length=64)
    shard = models.PositiveSmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)
    # Sum of a measured quantity (e.g. seconds to decision), so means can be derived.
    total = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "day", "action_type", "metric", "shard"], name="evidence_count_unique"
            )
        ]
        # Gate and dashboard: sum by metric over a deployment's recent days.
        indexes = [models.Index(fields=["deployment", "metric", "day"], name="evidence_by_metric_day")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.day} {self.action_type} {self.metric}={self.n}"


class AuditEvent(models.Model):
    """Append-only audit log. On PostgreSQL a trigger refuses UPDATE and DELETE."""

    verb = models.CharField(max_length=100)  # dotted, e.g. "reviews.action.approved"
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="Username, 'api-key:<prefix>' or 'system'.")
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Audit log page filtered by deployment, newest first.
            models.Index(fields=["deployment", "-created_at"], name="audit_by_deployment"),
            # History of one object on the action detail page.
            models.Index(fields=["object_type", "object_id"], name="audit_by_object"),
            # Audit log filtered by verb.
            models.Index(fields=["verb", "-created_at"], name="audit_by_verb"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.verb}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


class RateLimitBucket(models.Model):
    """The API rate limiter's counters when there is no Redis: one row per bucket (API key),
    holding the count of the current fixed window. Written only by deployments.ratelimit."""

    bucket = models.CharField(max_length=100, primary_key=True)
    window_no = models.BigIntegerField()
    count = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.bucket} @{self.window_no}: {self.count}"
