"""Proposed actions, their lifecycle (SPEC §4), human decisions and idempotency records."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.jsonlimits import NumbersAsDoubles
from deployments.models import Deployment
from deployments.policy import Route, Stage
from reviews.querysets import ProposedActionQuerySet


class Immutable(models.Model):
    """A row written once and never changed or deleted (decisions, approvals, votes)."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError(f"{type(self).__name__} rows are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError(f"{type(self).__name__} rows are immutable.")


class ProposedAction(models.Model):
    """An action an agent wants to take. Status changes only through reviews.services."""

    class Status(models.TextChoices):
        LOGGED = "logged"  # shadow: waiting for the human outcome
        COMPARED = "compared"  # shadow: compared with the human outcome
        PENDING_REVIEW = "pending_review"
        PENDING_SENIOR = "pending_senior"
        HELD = "held"  # approved, but its run's hold or its parent keeps it back (reviews.runs)
        APPROVED = "approved"  # by a person or by policy; the agent may claim its execution
        EXECUTING = "executing"  # the agent claimed the execution (reviews.execution): granted once
        REJECTED = "rejected"
        EXPIRED = "expired"
        CANCELLED = "cancelled"  # withdrawn by the agent before its execution was claimed
        EXECUTED = "executed"
        FAILED = "failed"
        UNKNOWN = "unknown"  # the agent cannot tell whether the effect happened: to reconcile

    class RouteChoices(models.TextChoices):
        SHADOW = Route.SHADOW.value
        AUTO = Route.AUTO.value
        REVIEW = Route.REVIEW.value
        SENIOR = Route.SENIOR.value

    PENDING_STATUSES = (Status.PENDING_REVIEW, Status.PENDING_SENIOR)
    TERMINAL_STATUSES = (
        Status.COMPARED,
        Status.REJECTED,
        Status.EXPIRED,
        Status.CANCELLED,
        Status.EXECUTED,
        Status.FAILED,
    )
    # Not yet claimed for execution: the agent may still cancel these, and a deadline expires them.
    OPEN_STATUSES = (Status.PENDING_REVIEW, Status.PENDING_SENIOR, Status.HELD, Status.APPROVED)

    # No index of its own: action_by_external_id and action_by_deployment_recent lead with it.
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="actions", db_index=False)
    action_type = models.CharField(max_length=100)
    external_id = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)

    # Read back with numbers as doubles, as they were sent and hashed (core.jsonlimits).
    payload = models.JSONField(decoder=NumbersAsDoubles)
    # SHA-256 of the proposed payload: finds "the same proposal" for the rejected-stays-rejected rule.
    proposal_sha256 = models.CharField(max_length=64)
    final_payload = models.JSONField(null=True, blank=True, decoder=NumbersAsDoubles)
    payload_sha256 = models.CharField(max_length=64, blank=True)

    risk_score = models.FloatField()
    confidence = models.FloatField()
    model_version = models.CharField(max_length=100, blank=True)
    rationale = models.TextField(blank=True)
    needs_human = models.BooleanField(default=False)
    callback_url = models.URLField(max_length=2000, blank=True)

    stage = models.CharField(max_length=16, choices=Deployment.StageChoices.choices)
    route = models.CharField(max_length=8, choices=RouteChoices.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The agent's own deadline (expires_in / expires_at on the proposal): past it, an action
    # not yet claimed for execution expires, whatever people decided (fail closed).
    deadline = models.DateTimeField(null=True, blank=True)
    result_error = models.TextField(blank=True)

    # The execution claim (reviews.execution): granted once per approval. The key is the
    # claimer's (or the server's) token; a retry with it is answered again, any other refused.
    execution_claim_key = models.CharField(max_length=255, blank=True)
    execution_claimed_at = models.DateTimeField(null=True, blank=True)
    execution_claims = models.PositiveSmallIntegerField(default=0)  # 2 after a "not committed" reconcile

    # Runs and parents (reviews.runs). Indexed only where set: most actions have neither.
    run = models.ForeignKey(
        "reviews.ActionRun", null=True, blank=True, on_delete=models.PROTECT, related_name="actions", db_index=False
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", db_index=False
    )
    # Set (under the parent's lock) when a child is proposed: a transition looks for children
    # to release or refuse only then, so an ordinary decision reads nothing more.
    has_children = models.BooleanField(default=False)

    # Indexed only where set (action_claimed_by): most actions are never claimed.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    # Stages 3 and 4: a random share of auto-executed actions is reviewed after the fact.
    audit_sample = models.BooleanField(default=False)
    audit_verdict = models.CharField(max_length=16, blank=True)  # "", "correct", "incorrect"

    # Shadow: the comparison with what the human did, once made.
    comparison = models.JSONField(null=True, blank=True)

    # The agent's W3C trace context (`traceparent` header, or `_meta.traceparent` over MCP) as
    # sent, so the worker's tasks, the webhooks and the MCP gateway continue the agent's trace.
    traceparent = models.CharField(max_length=55, blank=True)

    # Measuring the humans (reviews/humans): a blind sample is shown without the AI's proposal
    # until its reviewer records their own answer; a double sample is decided by two people.
    class Sample(models.TextChoices):
        NONE = ""
        BLIND = "blind"
        DOUBLE = "double"
        DRILL = "drill"  # a known-bad fire drill (reviews/humans/drills.py): never executes

    review_sample = models.CharField(max_length=8, choices=Sample.choices, blank=True, default="")

    # Quorum (reviews/quorum.py): how many different people must approve (a matching payload
    # rule's `approvals_required`, set at ingest; 1 for most actions), and how many have.
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approvals_given = models.PositiveSmallIntegerField(default=0)

    objects = ProposedActionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One action per Idempotency-Key and deployment, a database fact.
            models.UniqueConstraint(
                fields=["deployment", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="action_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(risk_score__gte=0, risk_score__lte=1, confidence__gte=0, confidence__lte=1),
                name="action_scores_in_unit_interval",
            ),
        ]
        indexes = [
            # Review and senior queues: oldest pending first, keyset-paged on (created_at, id).
            models.Index(
                fields=["status", "created_at", "id"],
                condition=Q(status__in=["pending_review", "pending_senior"]),
                name="action_queue",
            ),
            # Queues filtered by deployment (and the nav's queue counts per deployment).
            models.Index(
                fields=["deployment", "status", "created_at", "id"],
                condition=Q(status__in=["pending_review", "pending_senior"]),
                name="action_queue_by_deployment",
            ),
            # Expiry sweep: pending actions whose SLA deadline has passed.
            models.Index(
                fields=["expires_at"],
                condition=Q(status__in=["pending_review", "pending_senior"]),
                name="action_expiry",
            ),
            # Audit queue: auto-executed samples awaiting a verdict, oldest first.
            models.Index(
                fields=["created_at", "id"],
                condition=Q(audit_sample=True, audit_verdict=""),
                name="action_audit_queue",
            ),
            # Shadow matching and rejected-stays-rejected: one deployment's actions by external_id.
            models.Index(fields=["deployment", "external_id"], name="action_by_external_id"),
            # A user's claims (released when the user is deleted: SET NULL); most rows have none.
            models.Index(fields=["claimed_by"], condition=Q(claimed_by__isnull=False), name="action_claimed_by"),
            # Shadow sweep: logged shadow actions still waiting for their human outcome.
            models.Index(
                fields=["deployment", "id"],
                condition=Q(route="shadow", status="logged"),
                name="action_shadow_logged",
            ),
            # Shadow recompute and disagreement list: one deployment's compared pairs by id.
            models.Index(
                fields=["deployment", "id"],
                condition=Q(status="compared"),
                name="action_shadow_compared",
            ),
            # Deployment dashboards: recent actions of one deployment.
            models.Index(fields=["deployment", "-created_at"], name="action_by_deployment_recent"),
            # Deadline sweep: approved or held actions, not yet claimed, past the agent's deadline.
            models.Index(
                fields=["deadline"],
                condition=Q(status__in=["approved", "held"], deadline__isnull=False),
                name="action_deadline",
            ),
            # Metrics: actions held, executing or with an unknown result, per deployment.
            models.Index(
                fields=["deployment", "status"],
                condition=Q(status__in=["held", "executing", "unknown"]),
                name="action_in_flight",
            ),
            # A run's actions (its hold, its release); a parent's children.
            models.Index(fields=["run", "status"], condition=Q(run__isnull=False), name="action_by_run"),
            models.Index(fields=["parent", "status"], condition=Q(parent__isnull=False), name="action_by_parent"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action_type} ({self.status})"

    def save(self, *args, **kwargs) -> None:
        """The proposed payload is written once, with the proposal: an update leaves it out
        (what a reviewer changes is `final_payload`), so no transition rewrites what the agent
        sent, nor re-encodes it."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = _UPDATABLE
        super().save(*args, **kwargs)

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING_STATUSES

    @property
    def quorum_label(self) -> str:
        """The words "1 of 2 approvals" for an action that needs several (reviews/quorum.py), else ''."""
        if self.approvals_required <= 1:
            return ""
        return f"{self.approvals_given} of {self.approvals_required} approvals"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES

    @property
    def queue(self) -> str | None:
        """The browser queue the action is in now ("review", "senior", "audit"), if any."""
        if self.status == self.Status.PENDING_REVIEW:
            return "review"
        if self.status == self.Status.PENDING_SENIOR:
            return "senior"
        if self.audit_sample and not self.audit_verdict:
            return "audit"
        return None

    @property
    def decision(self) -> str:
        """What the agent should do now (docs/spec-decisions.md, "decision"):

        execute (approved, not yet claimed: claim it, then run it), wait (a person, the run's
        hold or the parent decides first), shadow, reject, expired, cancelled, claimed (its
        execution is claimed; only the claim's holder runs it), reconcile (the result is
        unknown), done (a result is recorded). Only `approved` says execute.
        """
        return DECISIONS.get(self.status, "shadow") if self.route != Route.SHADOW else "shadow"

    @property
    def effective_stage(self) -> Stage:
        return Stage(self.stage)


_S = ProposedAction.Status
DECISIONS = {
    _S.PENDING_REVIEW: "wait",
    _S.PENDING_SENIOR: "wait",
    _S.HELD: "wait",
    _S.APPROVED: "execute",
    _S.EXECUTING: "claimed",
    _S.UNKNOWN: "reconcile",
    _S.EXECUTED: "done",
    _S.FAILED: "done",
    _S.REJECTED: "reject",
    _S.EXPIRED: "expired",
    _S.CANCELLED: "cancelled",
}
DECISION_VALUES = ("execute", "wait", "shadow", "reject", "expired", "cancelled", "claimed", "reconcile", "done")


class ActionRun(models.Model):
    """A run of an agent (`run_id` on its proposals): with `hold`, no action of the run is told
    `execute` while one of its gated actions waits for a person (reviews.runs)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="+", db_index=False)
    key = models.CharField(max_length=200)
    hold = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "key"], name="run_unique_key")]

    def __str__(self) -> str:
        return f"run {self.key}{' (hold)' if self.hold else ''}"


class Decision(Immutable):
    """One decision on an action, by a person, by policy or by the clock. Never changed."""

    class Verb(models.TextChoices):
        AUTO_APPROVE = "auto_approve"
        APPROVE = "approve"
        EDIT = "edit"  # approved with an edited payload
        REJECT = "reject"
        ESCALATE = "escalate"
        EXPIRE = "expire"
        AUDIT_CORRECT = "audit_correct"
        AUDIT_INCORRECT = "audit_incorrect"

    action = models.ForeignKey(ProposedAction, on_delete=models.PROTECT, related_name="decisions")
    verb = models.CharField(max_length=20, choices=Verb.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    payload_before = models.JSONField(null=True, blank=True, decoder=NumbersAsDoubles)
    payload_after = models.JSONField(null=True, blank=True, decoder=NumbersAsDoubles)
    claimed_at = models.DateTimeField(null=True, blank=True)
    seconds_to_decide = models.FloatField(null=True, blank=True)  # from claim (or creation) to decision
    # Taken under an out-of-office delegation: the person the actor decided for ("X for Y").
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # A reviewer's recent decisions (dashboards, per-reviewer rates).
            models.Index(fields=["actor", "-created_at"], name="decision_by_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.verb} #{self.action_id}"


_UPDATABLE = [f.name for f in ProposedAction._meta.concrete_fields if not f.primary_key and f.name != "payload"]


class IdempotencyRecord(models.Model):
    """An Idempotency-Key seen on POST /api/v1/actions (IETF httpapi idempotency draft).

    Claimed in its own short transaction before the work starts (state `in_flight`), then
    completed with the response in the same transaction as the work. Kept for at least
    IDEMPOTENCY_KEY_TTL.
    """

    # No index of its own: idempotency_unique_key leads with it. No database constraint: see
    # deployments.models.EvidenceCount.deployment.
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    key = models.CharField(max_length=255)
    request_sha256 = models.CharField(max_length=64)
    in_flight = models.BooleanField(default=True)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True, decoder=NumbersAsDoubles)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "key"], name="idempotency_unique_key")]
        # Purge of expired keys.
        indexes = [models.Index(fields=["created_at"], name="idempotency_by_age")]

    def __str__(self) -> str:
        return f"{self.key} ({'in flight' if self.in_flight else self.response_status})"


class QuorumApproval(Immutable):
    """One person's approval of an action that needs several (reviews/quorum.py): one per
    person and action, a database fact. The last one carries the action out (its Decision);
    the earlier ones leave it pending. Never changed."""

    action = models.ForeignKey(ProposedAction, on_delete=models.PROTECT, related_name="quorum_approvals")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    number = models.PositiveSmallIntegerField()  # 1 for the first approval, … approvals_required for the last
    reason = models.TextField(blank=True)
    seconds_to_decide = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["action_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["action", "actor"], name="quorum_one_approval_per_person"),
            models.UniqueConstraint(fields=["action", "number"], name="quorum_one_approval_per_number"),
        ]

    def __str__(self) -> str:
        return f"approval {self.number} of #{self.action_id}"


# Shadow-mode models live in their own module; imported here so the app registry finds them.
# So are blind answers and double-review votes (reviews/humans).
from reviews.humans.models import BlindAnswer, DoubleVote, Drill, DrillTemplate  # noqa: E402, F401
from reviews.shadow.models import ShadowAdjudication, ShadowOutcome, ShadowRecompute, ShadowTally  # noqa: E402, F401
