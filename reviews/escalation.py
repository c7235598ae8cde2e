"""The escalation chain (issue 17, approver operations): an item left in the reviewer queue
until its deployment's `escalate_at_sla_share` of `review_sla` has passed moves to the senior
queue, with a fresh `senior_sla`, and the deployment's seniors (and whoever covers for one of
them by a delegation in effect) are told — instead of the item only expiring at its deadline.

The move itself is `reviews.services.proposed_action_auto_escalate` (the same `_move` as a
person's escalation; audited as `reviews.action.auto_escalated` by "system"); the periodic task
`reviews.escalate_due_actions` finds the due items and `reviews.escalation_notify` emails.

When: an item is due once less than (1 − share) × the deployment's *current* `review_sla` is
left before its deadline (`expires_at`), so a share of 0.75 on a 24 h SLA moves it after 18 h.
Measured from the deadline, not from `created_at`, so the query is one range on `expires_at`.

Not escalated: fire drills (they test the reviewer they were placed for; a senior seeing one
would spoil nothing but measure nobody) and double-review samples (their two independent votes
are the human baseline; a disagreement already goes to a senior). Both keep their deadline.
"""

from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse

from deployments.models import Deployment, Member
from deployments.permissions import delegations_in_effect
from reviews.models import ProposedAction

Status = ProposedAction.Status
NOT_ESCALATED = (ProposedAction.Sample.DRILL, ProposedAction.Sample.DOUBLE)


def escalation_due_at(action: ProposedAction) -> datetime | None:
    """When `action` is due to move to the senior queue; None when it never is (the
    deployment's escalation is off, the action has no deadline or is a drill or double sample)."""
    share = action.deployment.escalate_at_sla_share
    if share is None or action.expires_at is None or action.review_sample in NOT_ESCALATED:
        return None
    return action.expires_at - (1 - share) * action.deployment.review_sla


def escalation_due_ids(*, now: datetime, limit: int) -> list[int]:
    """Ids of reviewer-queue actions past their escalation point (oldest deadline first), at
    most `limit`. One range query per deployment with escalation on."""
    deployments = Deployment.objects.filter(escalate_at_sla_share__isnull=False).values_list(
        "pk", "escalate_at_sla_share", "review_sla"
    )
    due = Q(pk__in=[])
    for pk, share, sla in deployments:
        due |= Q(deployment_id=pk, expires_at__lte=now + (1 - share) * sla)
    return list(
        ProposedAction.objects.filter(due, status=Status.PENDING_REVIEW, expires_at__gt=now)
        .exclude(review_sample__in=NOT_ESCALATED)
        .order_by("expires_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def escalation_notify(*, action_id: int) -> bool:
    """Email the seniors assigned to the action's deployment, the admins, and the people
    covering for one of those seniors (an out-of-office delegation in effect) that it was moved
    to the senior queue. False (nothing sent) when it has left that queue since: stale news."""
    action = ProposedAction.objects.select_related("deployment").get(pk=action_id)
    if action.status != Status.PENDING_SENIOR:
        return False
    deployment = action.deployment
    # Who works its senior queue now: the admins, its seniors, and whoever covers for one of
    # its seniors by a delegation in effect (deployments.permissions).
    covering = delegations_in_effect(senior=True).filter(delegator__deployments=deployment)
    recipients = sorted(
        set(
            Member.objects.filter(
                Q(role=Member.Role.ADMIN)
                | Q(role=Member.Role.SENIOR, deployments=deployment)
                | Q(pk__in=covering.values("delegate_id")),
                user__is_active=True,
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )
    if not recipients:
        return False
    path = reverse("reviews:action_detail", kwargs={"action_id": action.pk})
    send_mail(
        f"[Trustladder] escalated to the senior queue: {deployment.slug} #{action.pk}",
        (
            f"Action {action.pk} ({action.action_type}) of {deployment.name} waited in the reviewer queue "
            f"past its escalation point and is now in the senior queue.\n\nWhy: {action.reason}\n"
            f"Decide by {action.expires_at:%Y-%m-%d %H:%M} UTC: {path}\n"
        ),
        settings.DEFAULT_FROM_EMAIL,
        recipients,
    )
    return True
