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

from deployments.counters import (
    breaker_counts_fold,
    breaker_counts_purge,
    calibration_counts_fold,
    evidence_counts_fold,
)
from deployments.models import AuditEvent, Deployment, Member
from deployments.policy import Stage
from deployments.recertify import deployment_recertify
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
    _admins_tell(subject, body, event.reason)
    return True


def _admins_tell(subject: str, body: str, summary: str) -> None:
    """Email every admin with an address; post the subject and summary to the chat webhook."""
    recipients = sorted(
        set(Member.objects.filter(role=Member.Role.ADMIN).exclude(user__email="").values_list("user__email", flat=True))
    )
    if recipients:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    url = settings.TRUSTLADDER_SLACK_WEBHOOK_URL
    if url:
        try:
            httpx.post(url, json={"text": f"{subject}\n{summary}"}, timeout=5).raise_for_status()
        except httpx.HTTPError:
            # Email went out; a chat outage must not redeliver the email with a retry.
            logger.warning("admin notification to chat failed", exc_info=True)


@shared_task(name="deployments.recertify_all", ignore_result=True)
def recertify_all() -> int:
    """Re-certify every deployment above shadow (deployments.recertify), each in its own
    transaction. Returns how many failed now. Safe to repeat: once a day per deployment."""
    ids = Deployment.objects.exclude(stage=Stage.SHADOW).order_by("pk").values_list("pk", flat=True)
    return sum(1 for pk in ids if deployment_recertify(deployment_id=pk).get("outcome") == "failed")


@shared_task(name="deployments.recertification_notify", ignore_result=True)
def recertification_notify(deployment_id: int, event_id: int) -> bool:
    """Tell the admins a stage's re-certification failed (and whether it demoted)."""
    deployment = Deployment.objects.get(pk=deployment_id)
    event = AuditEvent.objects.get(pk=event_id)
    demoted = (deployment.recertification or {}).get("demoted_to")
    subject = f"[Trustladder] re-certification failed: {deployment.slug}"
    path = reverse("deployments:detail", kwargs={"slug": deployment.slug})
    then = f"It was demoted to {demoted}." if demoted else "It stays where it is (it does not opt in to demotion)."
    body = (
        f"The daily re-certification of {deployment.name} ({deployment.slug}) found criteria of the gate into "
        f"its stage failed at {event.created_at:%Y-%m-%d %H:%M:%S} UTC.\n\n{event.reason}\n\n{then}\n{path}\n"
    )
    _admins_tell(subject, body, event.reason)
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
    long stage window stay one row per day), and the calibration counters' likewise. Returns
    the rows folded away."""
    today = timezone.now().date()
    return evidence_counts_fold(before=today) + calibration_counts_fold(before=today)
