"""Periodic and after-commit work of deployments: breakers, their notifications, purges.

Thin: take ids, call a service. Safe to repeat. They run on the `default` queue
(CELERY_TASK_ROUTES).
"""

import logging
from datetime import timedelta

import httpx
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from deployments.counters import breaker_counts_fold, breaker_counts_purge, evidence_counts_fold
from deployments.models import AuditEvent, Deployment, Member
from deployments.policy import Stage
from deployments.services import blast_radius_purge, breaker_check

logger = logging.getLogger(__name__)
# A breaker minute's shards are folded once it is this far in the past (its writers are done).
BREAKER_FOLD_AFTER = timedelta(minutes=2)


@shared_task(name="deployments.breakers_check_all", ignore_result=True)
def breakers_check_all() -> int:
    """Check the breaker of every stage-3/4 deployment whose breaker is not tripped. Returns
    how many tripped now. Safe to repeat: a tripped breaker is never tripped twice.

    Then the minutes that are over are folded into one row each, so the next check reads
    fewer rows; after the checks, so that nothing in the fold can hold a breaker back."""
    ids = Deployment.objects.filter(
        stage__in=[Stage.SUPERVISED, Stage.AUTONOMOUS], breaker_tripped_at__isnull=True
    ).values_list("pk", flat=True)
    tripped = sum(1 for pk in ids if breaker_check(deployment=pk))
    breaker_counts_fold(before=timezone.now() - BREAKER_FOLD_AFTER)
    return tripped


@shared_task(name="deployments.breaker_notify", ignore_result=True)
def breaker_notify(deployment_id: int, event_id: int) -> bool:
    """Tell the admins a breaker tripped: an email, and the Slack-compatible webhook if set.

    Skips (returns False) when the breaker was reset since: the news is stale.
    """
    deployment = Deployment.objects.get(pk=deployment_id)
    event = AuditEvent.objects.get(pk=event_id)
    if not deployment.breaker_tripped:
        return False
    subject = f"[Trustladder] circuit breaker tripped: {deployment.slug}"
    path = reverse("deployments:detail", kwargs={"slug": deployment.slug})
    body = (
        f"The circuit breaker of {deployment.name} ({deployment.slug}, stage {deployment.stage}) tripped at "
        f"{event.created_at:%Y-%m-%d %H:%M:%S} UTC.\n\nWhy: {event.reason}\n\n"
        f"Every action now goes to a person until an admin resets the breaker: {path}\n"
    )
    recipients = sorted(
        set(Member.objects.filter(role=Member.Role.ADMIN).exclude(user__email="").values_list("user__email", flat=True))
    )
    if recipients:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    url = settings.TRUSTLADDER_SLACK_WEBHOOK_URL
    if url:
        try:
            httpx.post(url, json={"text": f"{subject}\n{event.reason}"}, timeout=5).raise_for_status()
        except httpx.HTTPError:
            # Email went out; a chat outage must not redeliver the email with a retry.
            logger.warning("breaker webhook to chat failed", exc_info=True)
    return True


@shared_task(name="deployments.purge_windows", ignore_result=True)
def purge_windows() -> int:
    """Delete breaker buckets past retention and blast-radius rows past every window."""
    now = timezone.now()
    deleted = breaker_counts_purge(older_than=now - settings.TRUSTLADDER_BREAKER_RETENTION)
    for pk, window in Deployment.objects.values_list("pk", "blast_window"):
        deleted += blast_radius_purge(deployment_id=pk, older_than=now - window)
    return deleted


@shared_task(name="deployments.fold_evidence", ignore_result=True)
def fold_evidence() -> int:
    """Fold the shards of past days' evidence counters into one row each (the gate's reads of a
    long stage window stay one row per day). Returns the rows folded away."""
    return evidence_counts_fold(before=timezone.now().date())
