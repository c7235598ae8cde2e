"""Shadow mode (SPEC §1, stage 1): human outcomes, adjudications, tallies and recomputes.

The comparison itself lives on `ProposedAction.comparison`; these models hold what the human
did, what a reviewer later said about a disagreement, the per-day tallies the evidence views
read, and the background recompute of a deployment's comparisons.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.jsonlimits import NumbersAsDoubles
from deployments.models import ApiKey, Deployment, one_row_per_shard


class ShadowOutcome(models.Model):
    """What a person actually did for one item (`external_id`) while the AI ran in shadow.

    One per deployment and external_id: the first one sent wins, a repeat is a no-op. It is
    paired with the shadow action(s) of the same deployment and external_id, whichever
    arrives first.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="shadow_outcomes")
    external_id = models.CharField(max_length=200)
    action_type = models.CharField(max_length=100)
    payload = models.JSONField(decoder=NumbersAsDoubles)
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # The key that reported it (issue 16: the shadow report names it); null before keys had scopes.
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deployment", "external_id"], name="shadow_outcome_unique_external_id")
        ]

    def __str__(self) -> str:
        return f"outcome {self.external_id} {self.action_type}"


class ShadowAdjudication(models.Model):
    """A reviewer's verdict on one disagreement. Final: one per action, never changed.

    "AI right" and "both acceptable" make the pair count as agreement in the evidence.
    """

    class Verdict(models.TextChoices):
        AI_RIGHT = "ai_right", "AI right"
        HUMAN_RIGHT = "human_right", "Human right"
        BOTH_ACCEPTABLE = "both_acceptable", "Both acceptable"

    ACCEPTABLE = (Verdict.AI_RIGHT, Verdict.BOTH_ACCEPTABLE)

    action = models.OneToOneField(
        "reviews.ProposedAction", on_delete=models.PROTECT, related_name="shadow_adjudication"
    )
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.verdict} #{self.action_id}"

    @property
    def counts_as_agreement(self) -> bool:
        return self.verdict in self.ACCEPTABLE


class ShadowTally(models.Model):
    """Compared pairs per deployment, day, AI action type, human action type and model version.

    The finer-grained sibling of the `shadow.agree` / `shadow.disagree` evidence counters,
    written in the same transactions with the same deltas: it answers "by model version" and
    the confusion view without scanning the actions table. `agree` counts effective
    agreement (compared equal, or adjudicated "AI right" / "both acceptable"). Sharded like
    `EvidenceCount` so concurrent workers rarely wait on one row.
    """

    SHARDS = 8

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    action_type = models.CharField(max_length=100)
    human_action_type = models.CharField(max_length=100)
    model_version = models.CharField(max_length=100, blank=True)
    shard = models.PositiveSmallIntegerField(default=0)
    agree = models.BigIntegerField(default=0)
    disagree = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            one_row_per_shard(
                "shadow_tally_unique", "deployment", "day", "action_type", "human_action_type", "model_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.day} {self.action_type}/{self.human_action_type} +{self.agree}"


class ShadowRecompute(models.Model):
    """A background re-comparison of every compared pair of a deployment under its current rules.

    At most one runs per deployment at a time (a partial unique constraint, so a second
    start is refused by the database, not doubled). Progress is kept here for the browser.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="shadow_recomputes")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    rules = models.JSONField(default=dict)
    total = models.BigIntegerField(default=0)
    processed = models.BigIntegerField(default=0)
    changed = models.BigIntegerField(default=0)
    last_action_id = models.BigIntegerField(default=0)  # keyset cursor: resumable after a redelivery
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment"], condition=Q(status="running"), name="shadow_recompute_one_running"
            )
        ]

    def __str__(self) -> str:
        return f"recompute {self.deployment_id} {self.status} {self.processed}/{self.total}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        # Pairs compared after the start are recomputed too, so processed may pass total.
        return min(99, int(100 * self.processed / self.total)) if self.total else 0
