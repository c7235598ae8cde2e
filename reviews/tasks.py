"""Periodic work on proposed actions, run by Celery beat (see CELERY_BEAT_SCHEDULE).

Thin: each task finds ids and calls one service per action. Every task is safe to repeat and
to run twice at once: expiry locks the row and does nothing to an action no longer pending or
no longer overdue; the claim release and the purge are conditional statements. They run on
the `default` queue (CELERY_TASK_ROUTES).
"""

from celery import shared_task
from django.utils import timezone

from reviews.claims import proposed_action_claims_release_stale
from reviews.escalation import escalation_due_ids, escalation_notify
from reviews.execution import proposed_action_deadline_expire
from reviews.idempotency import idempotency_purge
from reviews.models import ProposedAction
from reviews.services import proposed_action_auto_escalate, proposed_action_expire

# Also the project-wide defaults (config/settings/base.py); said here so the guarantee is local.
TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}
EXPIRE_BATCH = 200
EXPIRE_MAX_BATCHES = 50  # at most 10 000 per run; the next run takes the rest


@shared_task(name="reviews.expire_overdue_actions", **TASK_OPTIONS)
def expire_overdue_actions() -> int:
    """Expire pending actions past their SLA (or the agent's deadline), and approved or held
    ones not claimed by the agent's deadline, in batches; each expiry is audited (and,
    with a callback_url, delivered to the agent). Returns how many this run expired."""
    expired = 0
    for _ in range(EXPIRE_MAX_BATCHES):
        now = timezone.now()
        ids = list(
            ProposedAction.objects.overdue(now).order_by("expires_at", "id").values_list("pk", flat=True)[:EXPIRE_BATCH]
        )
        for action_id in ids:
            if proposed_action_expire(action_id=action_id, now=now) is not None:
                expired += 1
        # Held or approved actions not claimed by the agent's deadline (issue 15): fail closed.
        late = list(
            ProposedAction.objects.deadline_passed(now)
            .order_by("deadline", "id")
            .values_list("pk", flat=True)[:EXPIRE_BATCH]
        )
        for action_id in late:
            if proposed_action_deadline_expire(action_id=action_id, now=now) is not None:
                expired += 1
        if len(ids) < EXPIRE_BATCH and len(late) < EXPIRE_BATCH:
            break
    return expired


@shared_task(name="reviews.escalate_due_actions", **TASK_OPTIONS)
def escalate_due_actions() -> int:
    """Move reviewer-queue actions past their deployment's escalation point to the senior queue
    (reviews/escalation.py), in batches. Safe to repeat. Returns how many this run moved."""
    moved = 0
    for _ in range(EXPIRE_MAX_BATCHES):
        now = timezone.now()
        ids = escalation_due_ids(now=now, limit=EXPIRE_BATCH)
        moved += sum(1 for action_id in ids if proposed_action_auto_escalate(action_id=action_id, now=now) is not None)
        if len(ids) < EXPIRE_BATCH:
            break
    return moved


@shared_task(name="reviews.escalation_notify", **TASK_OPTIONS)
def escalation_notify_task(action_id: int) -> bool:
    """Tell the deployment's seniors an action was escalated to them (skipped when stale)."""
    return escalation_notify(action_id=action_id)


@shared_task(name="reviews.release_stale_claims", **TASK_OPTIONS)
def release_stale_claims() -> int:
    """Clear reviewers' claims older than REVIEW_CLAIM_TIMEOUT."""
    return proposed_action_claims_release_stale()


@shared_task(name="reviews.purge_idempotency_keys", **TASK_OPTIONS)
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records past IDEMPOTENCY_KEY_TTL."""
    return idempotency_purge()
