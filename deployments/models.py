"""Deployments, their stage and thresholds, API keys, members, evidence and the audit log."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from deployments import policy
from deployments.rules import payload_rules_errors
from deployments.scopes import default_scopes
from deployments.validators import (
    breaker_settings_errors,
    gate_criteria_errors,
    input_fields_errors,
    reviewer_flags_errors,
)

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
    # Escalation chain (reviews/escalation.py): once this share of review_sla has passed, a
    # reviewer-queue item moves to the senior queue (seniors told) instead of only expiring.
    # Empty: off.
    escalate_at_sla_share = models.FloatField(null=True, blank=True, validators=UNIT)

    paused = models.BooleanField(default=False, help_text="Kill switch: nothing is auto-executed.")
    breaker_tripped_at = models.DateTimeField(null=True, blank=True)
    breaker_reason = models.CharField(max_length=500, blank=True)
    # The breaker window never reaches back before the last reset, so a reset is not undone
    # at once by the very events that tripped it.
    breaker_reset_at = models.DateTimeField(null=True, blank=True)
    # Overrides of deployments.validators.DEFAULT_BREAKER_SETTINGS, e.g. {"max_failure_rate": 0.1}.
    breaker_settings = models.JSONField(default=dict, blank=True)
    # Overrides of deployments.validators.DEFAULT_CRITERIA per target stage,
    # e.g. {"supervised": {"min_decisions": 300}}.
    gate_criteria = models.JSONField(default=dict, blank=True)
    # When each action type's cap was set ({"refund.issue": "2026-11-25T10:00:00+00:00"}): the
    # start of that type's evidence window.
    stage_caps_entered_at = models.JSONField(default=dict, blank=True)

    # Blast radius (SPEC §1): past either limit within the rolling window, actions that would
    # be auto-executed go to the reviewer queue. Empty = no limit.
    blast_max_auto = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many auto-executions per window."
    )
    blast_value_field = models.CharField(
        max_length=100, blank=True, default="amount_cents", help_text="Numeric payload field summed for the budget."
    )
    blast_max_value = models.BigIntegerField(
        null=True, blank=True, help_text="At most this sum of the value field auto-executed per window."
    )
    blast_window = models.DurationField(default=timedelta(hours=1))

    # Shadow mode: how an AI proposal is compared with the human outcome (reviews/shadow/compare.py):
    # {"ignore": [path], "numeric_tolerance": x, "field_tolerances": {path: x},
    #  "case_insensitive": bool | [path], "lists_as_sets": bool | [path]}. Change it through
    # reviews.shadow.services.comparison_rules_set, which recomputes every comparison.
    comparison_rules = models.JSONField(default=dict, blank=True)

    # Payload rules per action type (deployments.rules): CEL expressions that can only raise a
    # route or refuse a proposal, e.g. {"refund.issue": [{"name": "big", "expression":
    # "payload.amount_cents >= 50000", "effect": "senior"}]}.
    payload_rules = models.JSONField(default=dict, blank=True)

    # Measuring the humans (reviews/humans, README "Measuring the humans"). Stage 2 only: this
    # share of reviewed actions is shown blind (no proposal) until the reviewer answers.
    blind_review_rate = models.FloatField(default=0.0, validators=UNIT)
    # Payload fields (dotted paths) that are the item's inputs, shown on a blind sample.
    blind_input_fields = models.JSONField(default=list, blank=True)
    # This share of reviewed actions is decided by two people independently.
    double_review_rate = models.FloatField(default=0.0, validators=UNIT)
    # Fire drills: with this chance per proposal routed to the reviewer queue, a copy of one of
    # the action type's drill templates (known-bad samples, reviews.DrillTemplate) joins it too.
    drill_rate = models.FloatField(default=0.0, validators=UNIT)
    # Overrides of deployments.validators.DEFAULT_REVIEWER_FLAGS: when the reviewer-quality page
    # flags a reviewer's pattern as rubber-stamping ({"fast_seconds": 5}).
    reviewer_flags = models.JSONField(default=dict, blank=True)

    # Requests per minute per API key of this deployment; empty: API_RATE_LIMIT_PER_MINUTE.
    api_rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute per API key (empty: the site default; 0: no limit)."
    )

    # Signs webhook deliveries (Standard Webhooks, "whsec_" + base64 secret); rotatable.
    webhook_secret = models.CharField(max_length=100, blank=True)

    # Slack approvals (integrations.slack): the channel id (C…) where actions entering a queue,
    # breaker trips and items near their SLA are posted. Empty: nothing goes to Slack.
    slack_channel = models.CharField(
        max_length=32, blank=True, help_text="Slack channel id (C…) for approvals; empty: none."
    )

    # Re-certification (deployments.recertify, daily): the last check of the criteria of the
    # gate that led into the current stage, and whether a failed check demotes one stage.
    recertify_demotes = models.BooleanField(
        default=False, help_text="Demote one stage when the daily re-certification finds a criterion failed."
    )
    recertification = models.JSONField(default=dict, blank=True)

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
        if errors := gate_criteria_errors(self.gate_criteria):
            raise ValidationError({"gate_criteria": errors})
        if errors := breaker_settings_errors(self.breaker_settings):
            raise ValidationError({"breaker_settings": errors})
        if errors := payload_rules_errors(self.payload_rules):
            raise ValidationError({"payload_rules": errors})
        if errors := reviewer_flags_errors(self.reviewer_flags):
            raise ValidationError({"reviewer_flags": errors})
        if errors := input_fields_errors(self.blind_input_fields):
            raise ValidationError({"blind_input_fields": errors})
        if self.blast_window is not None and self.blast_window.total_seconds() <= 0:
            raise ValidationError({"blast_window": "the window must be positive"})

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

    @property
    def has_blast_limits(self) -> bool:
        return self.blast_max_auto is not None or (self.blast_max_value is not None and bool(self.blast_value_field))


def hash_api_key(raw: str) -> str:
    """SHA-256 of a key. Keys are 256-bit random tokens, so a fast hash is safe and lets the
    lookup be one indexed equality query."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class KeyCheck:
    """What a write verifies, in its own statement, of an API key its request took from the
    process's cache (`api_key_authenticate(..., cached=True)`): the key is still active, and
    its deployment's row is still the version that was read.

    The version is PostgreSQL's `xmin` and `ctid` of the row (ROW_VERSION_SQL): the id of the
    transaction that wrote this version of the row, and where it lies. Every UPDATE of the row
    writes a new version, which another transaction writes with another xmin, and the same
    transaction at another place (its older version cannot be reclaimed while it is open).
    Nothing needs to remember to bump it: a save, a queryset update, an admin edit or raw SQL
    all change it; row locks (SELECT ... FOR UPDATE) do not. (xmin alone is the token Npgsql
    and EF Core use for optimistic concurrency.)"""

    key_id: int
    deployment_version: str


# The version of a row of alias `d`, as KeyCheck compares it.
ROW_VERSION_SQL = "concat(d.xmin, '/', d.ctid)"


class ApiKey(models.Model):
    """A bearer key of one deployment. Only its hash is stored; the raw key is shown once."""

    PREFIX = "tl_"
    # last_used_at is written at most this often (deployments.services.api_key_mark_used).
    LAST_USED_RESOLUTION = timedelta(minutes=5)
    # Set on a key taken from the process's cache, which a write must verify; None when the
    # key was read from the database for this request.
    key_check: KeyCheck | None = None

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # What the key may do (deployments.scopes): fixed when it is made, never changed.
    scopes = models.JSONField(default=default_scopes)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.deployment.slug})"

    @classmethod
    def generate_raw(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())


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


class Delegation(models.Model):
    """Out-of-office: `delegator` hands their queues to `delegate` from `starts_at` until
    `ends_at` (deployments.delegations). While in effect the delegate works the delegator's
    assigned deployments, the senior and audit queues only if the delegator is a senior, and
    every decision they take there is audited "delegate for delegator"
    (deployments.permissions.member_reach). Cancelled, never deleted."""

    delegator = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="delegations_out")
    delegate = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="delegations_in")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(delegator=models.F("delegate")), name="delegation_not_to_self"),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="delegation_ends_after_start"
            ),
        ]
        indexes = [
            # The reach of a member: the delegations to them that are not cancelled.
            models.Index(
                fields=["delegate", "ends_at"], condition=models.Q(cancelled_at__isnull=True), name="delegation_to"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delegator} → {self.delegate} ({self.starts_at:%Y-%m-%d}–{self.ends_at:%Y-%m-%d})"

    def in_effect(self, now=None) -> bool:
        now = now or timezone.now()
        return self.cancelled_at is None and self.starts_at <= now < self.ends_at


def one_row_per_shard(name: str, *key: str) -> models.UniqueConstraint:
    """A sharded counter's key is unique per shard: concurrent writers of one key spread over
    SHARDS rows, and a fold sums them into shard 0 (deployments.counters)."""
    return models.UniqueConstraint(fields=[*key, "shard"], name=name)


def unfolded_shards(name: str, period: str) -> models.Index:
    """The rows a fold has yet to fold (shard > 0), found by their `period` column."""
    return models.Index(fields=[period], condition=models.Q(shard__gt=0), name=name)


class EvidenceCount(models.Model):
    """Evidence counters: how many times `metric` happened, per deployment, day and action type.

    Services that record evidence (a decision, a comparison, an execution result, an audit
    verdict) add to these rows in the same transaction; the gate and the breakers read only
    these rows, so their cost does not grow with history. `shard` spreads concurrent
    increments of one hot (deployment, day, type, metric) over several rows.
    """

    # 32, not fewer: every proposal adds to one of these rows and holds its lock until its commit,
    # so two concurrent proposals that pick the same shard commit one after the other. With 8
    # server threads, 8 shards cost PostgreSQL 0.14 ms more per proposal than 32 (measured:
    # docs/performance.md). A reader sums at most 32 rows per (day, type, metric) for today:
    # past days are folded into one row each (deployments.fold_evidence, hourly).
    SHARDS = 32

    # No database constraint: every proposal writes this row in the statement that writes its
    # action (reviews.ingest), from the action's deployment_id, whose own foreign key checks
    # it. Each constraint checks by locking the deployment's row (FOR KEY SHARE), one row that
    # every concurrent proposal of the deployment locks: one such check per proposal is
    # enough. The ORM's on_delete applies as before.
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="evidence", db_constraint=False)
    day = models.DateField()
    action_type = models.CharField(max_length=100)
    metric = models.CharField(max_length=64)  # a deployments.counters.Metric
    shard = models.PositiveSmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)
    # Sum of a measured quantity (e.g. seconds to decision), so means can be derived.
    total = models.FloatField(default=0.0)

    class Meta:
        constraints = [one_row_per_shard("evidence_count_unique", "deployment", "day", "action_type", "metric")]
        indexes = [
            # Gate and dashboard: sum by metric over a deployment's recent days.
            models.Index(fields=["deployment", "metric", "day"], name="evidence_by_metric_day"),
            # The fold (evidence_counts_fold, hourly) finds the rows it folds: only today's
            # shards are in it.
            unfolded_shards("evidence_unfolded", "day"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.day} {self.action_type} {self.metric}={self.n}"


class ReviewerCount(models.Model):
    """Per reviewer counters: how often `metric` happened for one person, per deployment and day.

    Written in the transaction of the decision (or blind answer, or double-review pair) by
    `deployments.reviewers.reviewer_counts_add`; the reviewer-quality page and the gate's
    flagged-reviewer split read only these rows. One person decides one item at a time, so
    the rows are not sharded (`shard` is always 0: the counter statement's shape).
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    metric = models.CharField(max_length=64)  # a deployments.counters.Metric
    shard = models.PositiveSmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)
    total = models.FloatField(default=0.0)

    class Meta:
        constraints = [one_row_per_shard("reviewer_count_unique", "deployment", "user", "day", "metric")]
        indexes = [models.Index(fields=["deployment", "day"], name="reviewer_count_by_day")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.user_id} {self.day} {self.metric}={self.n}"


class ReviewerStreak(models.Model):
    """A reviewer's run of approvals without a change on one deployment: the current one and
    the longest so far (all time), updated in the decision's transaction."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    current = models.PositiveIntegerField(default=0)
    longest = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "user"], name="reviewer_streak_unique")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.user_id} streak {self.current} (longest {self.longest})"


class AuditEvent(models.Model):
    """Append-only audit log. On PostgreSQL a trigger refuses UPDATE and DELETE."""

    verb = models.CharField(max_length=100)  # dotted, e.g. "reviews.action.approved"
    # Indexed only where set (audit_by_actor): agents' and the system's events have no actor.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    actor_label = models.CharField(max_length=150, help_text="Username, 'api-key:<prefix>' or 'system'.")
    # No index of its own: audit_by_deployment leads with it. No database constraint: a
    # proposal's event is written in the statement that writes its action (reviews.ingest),
    # from the action's deployment_id, which the action's own foreign key checks; other events
    # come from the ORM with a deployment it has. See EvidenceCount.deployment.
    deployment = models.ForeignKey(
        Deployment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
        db_index=False,
        db_constraint=False,
    )
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    # The hash chain (deployments.auditchain): set once, by the sealer, after the event is
    # written; the trigger lets exactly that update through.
    chain_seq = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    chain_hash = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sealer's next batch, and the page's count of events waiting for it.
            models.Index(fields=["id"], condition=models.Q(chain_seq__isnull=True), name="audit_unsealed"),
            # Audit log page filtered by deployment, newest first.
            models.Index(fields=["deployment", "-created_at"], name="audit_by_deployment"),
            # History of one object on the action detail page.
            models.Index(fields=["object_type", "object_id"], name="audit_by_object"),
            # Audit log filtered by verb.
            models.Index(fields=["verb", "-created_at"], name="audit_by_verb"),
            # One person's events (and the PROTECT check when a user is deleted).
            models.Index(fields=["actor"], condition=models.Q(actor__isnull=False), name="audit_by_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.verb}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


class AuditVerification(models.Model):
    """One check of the audit log's hash chain (deployments.auditchain.audit_chain_verify):
    the head it verified, or the first event it found broken. Append-only like the log; the
    last verified head anchors the next check."""

    created_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    checked = models.BigIntegerField()
    head_seq = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    broken_event_id = models.BigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'BROKEN'} @{self.head_seq}"


class FourEyesRequest(models.Model):
    """A change one admin requests and a different admin decides (promotions, governed
    settings): who asked and when, who decided, when and why. Open while `status` is open."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["-requested_at", "-id"]

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class PromotionRequest(FourEyesRequest):
    """A request to move a deployment (or one action type) up one stage, with frozen evidence.

    Requested by one admin, approved or rejected by another (four-eyes). At most one open
    request per deployment and action type, a database fact. `action_type` "" means the whole
    deployment.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        APPROVED = "approved"
        REJECTED = "rejected"
        CANCELLED = "cancelled"  # the stage changed underneath it (demotion)

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="promotion_requests")
    action_type = models.CharField(max_length=100, blank=True)
    from_stage = models.CharField(max_length=16, choices=Deployment.StageChoices.choices)
    to_stage = models.CharField(max_length=16, choices=Deployment.StageChoices.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    request_reason = models.TextField(blank=True)
    # The gate evaluation at request time, exactly as shown (deployments.gate.GateEvaluation.as_dict).
    evidence = models.JSONField()
    # The gate re-evaluated at approval time (approval needs it to pass too).
    decision_evidence = models.JSONField(null=True, blank=True)

    class Meta(FourEyesRequest.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "action_type"],
                condition=models.Q(status="open"),
                name="promotion_one_open_request",
            )
        ]

    def __str__(self) -> str:
        scope = f" [{self.action_type}]" if self.action_type else ""
        return f"{self.deployment_id}{scope} {self.from_stage}→{self.to_stage} ({self.status})"


class ReplayCount(models.Model):
    """What people did with proposals, by risk × confidence cell, per deployment, day and
    action type: the simulator's pre-aggregated input (deployments.simulator). Written in the
    transaction of each decision (and of each auto-execution's result report), like the
    evidence counters; sharded the same way. Cells: risk in 20 bands [j/20, (j+1)/20),
    confidence in 100 bands (k/100, (k+1)/100], so every threshold on a band edge replays exactly.
    """

    SHARDS = 8

    # No database constraint: see EvidenceCount.deployment.
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    day = models.DateField()
    action_type = models.CharField(max_length=100)
    risk_band = models.PositiveSmallIntegerField()
    confidence_band = models.PositiveSmallIntegerField()
    needs_human = models.BooleanField()
    # approve, edit, reject, escalate, expire (a person or the clock decided); auto (executed
    # without a person, counted when its result is reported).
    outcome = models.CharField(max_length=16)
    shard = models.PositiveSmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0)  # summed time to decision

    class Meta:
        constraints = [
            one_row_per_shard(
                "replay_count_unique",
                *("deployment", "day", "action_type", "risk_band", "confidence_band", "needs_human", "outcome"),
            )
        ]
        indexes = [models.Index(fields=["deployment", "day"], name="replay_by_day")]

    def __str__(self) -> str:
        cell = f"r{self.risk_band} c{self.confidence_band}"
        return f"{self.deployment_id} {self.day} {self.action_type} {cell} {self.outcome}={self.n}"


class SettingsChangeRequest(FourEyesRequest):
    """A change of a deployment's governed settings that may lower oversight
    (deployments.settings_changes): requested by one admin with before/after and the replay
    of recent traffic frozen in, applied only when a different admin approves. At most one
    open request per deployment, a database fact."""

    class Status(models.TextChoices):
        OPEN = "open"
        APPROVED = "approved"
        REJECTED = "rejected"

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="settings_changes")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # {field: value} of the changed fields only, as JSON (durations in seconds).
    before = models.JSONField()
    after = models.JSONField()
    # The fields whose change may lower oversight (why this is a request, not applied at once).
    lowering = models.JSONField(default=list)
    simulation = models.JSONField(default=dict, blank=True)
    request_reason = models.TextField()

    class Meta(FourEyesRequest.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["deployment"], condition=models.Q(status="open"), name="settings_change_one_open_request"
            )
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} settings change #{self.pk} ({self.status})"


class BreakerCount(models.Model):
    """Fine-grained counters for the circuit breakers: per deployment, minute and metric.

    Written by `deployments.counters.counters_add` beside the daily EvidenceCount for the few metrics the breakers
    watch, so a sliding window of an hour is a sum over at most 60 rows per metric and shard.
    Purged after BREAKER_RETENTION by a periodic task.
    """

    # See EvidenceCount.SHARDS. The minutes that are over are folded into one row each by the
    # breaker task (breaker_counts_fold), so a window sums one row per minute and metric, and
    # up to 32 for the last two minutes.
    SHARDS = 32

    # No database constraint: see EvidenceCount.deployment.
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    minute = models.DateTimeField()
    metric = models.CharField(max_length=64)
    shard = models.PositiveSmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [one_row_per_shard("breaker_count_unique", "deployment", "minute", "metric")]
        indexes = [
            models.Index(fields=["deployment", "metric", "minute"], name="breaker_by_metric_minute"),
            # The fold (breaker_counts_fold, every minute) finds the rows it folds: only the
            # last minutes' shards are in it.
            unfolded_shards("breaker_unfolded", "minute"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.minute:%H:%M} {self.metric}={self.n}"


class CalibrationCount(models.Model):
    """The evidence counters split by the proposal's confidence: per deployment, day, action
    type, outcome metric and confidence band (deployments.calibration). Written beside the
    EvidenceCount row of the same decision, result or audit verdict, in its transaction, by
    `deployments.counters.counters_add`; sharded and folded as EvidenceCount is.

    Band k holds confidences in (k/20, (k+1)/20] (band 0 also holds 0), so a threshold
    `confidence > t` on a band edge keeps whole bands. `confidence_sum` and `confidence_sq`
    sum the confidences and their squares: the bands' mean confidence and the Brier score
    come out exact, not from band midpoints.
    """

    # Written only by people's decisions, results and audit verdicts (not by every proposal):
    # far fewer concurrent writers than EvidenceCount's.
    SHARDS = 8

    # No database constraint: see EvidenceCount.deployment.
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    day = models.DateField()
    action_type = models.CharField(max_length=100)
    metric = models.CharField(max_length=64)  # a deployments.counters.Metric (an outcome)
    band = models.PositiveSmallIntegerField()
    shard = models.PositiveSmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)
    confidence_sum = models.FloatField(default=0.0)
    confidence_sq = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            one_row_per_shard("calibration_count_unique", "deployment", "day", "action_type", "metric", "band")
        ]
        indexes = [
            models.Index(fields=["deployment", "day"], name="calibration_by_day"),
            unfolded_shards("calibration_unfolded", "day"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.day} {self.action_type} {self.metric} band {self.band}={self.n}"


class BlastRadiusUse(models.Model):
    """One auto-execution counted against the deployment's blast-radius budget.

    Appended under the deployment's row lock by `blast_radius_reserve`; the budget in use is
    the count and sum of rows inside the rolling window. Purged by a periodic task.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    value = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["deployment", "at"], name="blast_use_by_time")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.at:%H:%M:%S} value={self.value}"


class RateLimitBucket(models.Model):
    """The API rate limiter's counters when there is no Redis: one row per bucket (API key),
    holding the count of the current fixed window. Written only by deployments.ratelimit."""

    bucket = models.CharField(max_length=100, primary_key=True)
    window_no = models.BigIntegerField()
    count = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.bucket} @{self.window_no}: {self.count}"
