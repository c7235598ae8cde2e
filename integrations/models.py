"""Slack: who a Slack user is here, which message shows which action, interactions seen."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments.models import Deployment
from reviews.models import ProposedAction


class SlackUser(models.Model):
    """A Slack user id mapped to a Trustladder user (`manage.py link_slack`). A click from an
    unmapped Slack user decides nothing; a mapped one acts with that user's own roles."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack")
    slack_user_id = models.CharField(max_length=32, unique=True)
    linked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.slack_user_id} → {self.user}"


class SlackMessage(models.Model):
    """The one Slack message that shows an action (updated in place as the action moves), or a
    notice about a deployment (breaker trip) with no action."""

    class Kind(models.TextChoices):
        ACTION = "action"
        BREAKER = "breaker"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ACTION)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    action = models.OneToOneField(
        ProposedAction, null=True, blank=True, on_delete=models.CASCADE, related_name="slack_message"
    )
    channel = models.CharField(max_length=32)
    ts = models.CharField(max_length=32, blank=True, help_text="Slack's id of the message; empty until posted.")
    # What the message shows now: its buttons carry the same status and payload hash.
    shown_status = models.CharField(max_length=16, blank=True)
    shown_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The SLA deadline last warned about ("near its SLA"); an escalation moves the deadline.
    sla_warned_for = models.DateTimeField(null=True, blank=True)
    # A breaker notice: the audit event of the trip (posted once).
    audit_event_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["channel", "ts"], name="slack_message_by_ts")]
        constraints = [
            models.UniqueConstraint(
                fields=["audit_event_id"],
                condition=models.Q(audit_event_id__isnull=False),
                name="slack_one_notice_per_event",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.channel}/{self.ts or '(unposted)'}"


class SlackInteraction(models.Model):
    """One signed interaction request seen (SHA-256 of its timestamp and body). A replay of the
    same request within the signature's 5-minute window finds its row and changes nothing."""

    digest = models.CharField(max_length=64, unique=True)
    slack_user_id = models.CharField(max_length=32, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.slack_user_id} {self.received_at:%H:%M:%S} {self.digest[:12]}"
