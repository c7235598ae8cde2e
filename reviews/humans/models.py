"""Blind answers and double-review votes. Both are written once and never changed."""

from django.conf import settings
from django.db import models

from reviews.models import Immutable, ProposedAction


class Answer(Immutable):
    """What one person answered on an action, before or beside its decision: written once."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    payload = models.JSONField(null=True, blank=True)  # the payload they would send (None: reject)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class BlindAnswer(Answer):
    """What a reviewer would do for a blind sample, recorded before its proposal is shown.

    `decision` is "approve" (with the payload they would send) or "reject". `agree` and
    `diff` compare it with the AI's proposal under the deployment's comparison rules at the
    time of the answer (reviews/shadow/compare.py). One per action, a database fact.
    """

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    action = models.OneToOneField(ProposedAction, on_delete=models.PROTECT, related_name="blind_answer")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    agree = models.BooleanField()
    diff = models.JSONField(default=list, blank=True)
    seconds_to_answer = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"blind {self.decision} #{self.action_id} ({'agree' if self.agree else 'disagree'})"


class DoubleVote(Answer):
    """One of the two independent decisions on a double-review sample (`round` 1 or 2).

    The first vote leaves the action pending; the second settles it: the two agree and the
    second is carried out, or they differ and the action goes to the senior queue.
    """

    class Verb(models.TextChoices):
        APPROVE = "approve"
        EDIT = "edit"
        REJECT = "reject"

    action = models.ForeignKey(ProposedAction, on_delete=models.PROTECT, related_name="double_votes")
    round = models.PositiveSmallIntegerField()
    verb = models.CharField(max_length=8, choices=Verb.choices)
    # This vote against the AI's proposal under the deployment's comparison rules.
    agrees_with_ai = models.BooleanField()
    # The second vote against the first (None on the first): the pair's human–human agreement.
    matches_first = models.BooleanField(null=True, blank=True)
    seconds_to_decide = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["action_id", "round"]
        constraints = [
            models.UniqueConstraint(fields=["action", "round"], name="double_vote_one_per_round"),
            models.UniqueConstraint(fields=["action", "actor"], name="double_vote_one_per_person"),
            models.CheckConstraint(condition=models.Q(round__in=[1, 2]), name="double_vote_round_1_or_2"),
        ]

    def __str__(self) -> str:
        return f"double vote {self.round} {self.verb} #{self.action_id}"


class DrillTemplate(models.Model):
    """A known-bad sample action an admin defines for one action type: at the deployment's
    `drill_rate` a copy is placed in the reviewer queue, looking like any other item
    (reviews/humans/drills.py). `what_is_wrong` is told to the reviewer after their decision."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    action_type = models.CharField(max_length=100)
    payload = models.JSONField()
    risk_score = models.FloatField(default=0.2)
    confidence = models.FloatField(default=0.9)
    rationale = models.TextField(blank=True)
    what_is_wrong = models.TextField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["deployment", "action_type"], name="drill_template_by_type")]

    def __str__(self) -> str:
        return f"drill {self.action_type} #{self.pk}"


class Drill(models.Model):
    """One placed fire drill: its action and template, then what a reviewer did with it (caught:
    rejected or escalated; missed: approved; expired: nobody decided). Decided once; the drill
    never executes either way."""

    action = models.OneToOneField(ProposedAction, on_delete=models.PROTECT, related_name="drill")
    template = models.ForeignKey(DrillTemplate, on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=16, blank=True)  # approve, reject, escalate, expire
    caught = models.BooleanField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"drill #{self.action_id} {self.decision or 'open'}"
