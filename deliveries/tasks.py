"""Celery tasks of the webhook outbox. Thin: take ids, call the sender or a selector.

Both are safe to repeat: a delivery is claimed with a conditional update, so a duplicate
message (the sweeper and a retry at once, a redelivered message after a crash) does nothing.
They run on the `deliveries` queue (CELERY_TASK_ROUTES), so slow receivers never hold up other work.
"""

from celery import current_app, shared_task
from django.conf import settings
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.sender import delivery_send
from deliveries.services import broker_connection, deliveries_take_for_sweep, delivery_enqueue, delivery_purge_old

# acks_late + reject_on_worker_lost: a worker killed mid-task leaves the message to be redelivered.
TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="deliveries.deliver", **TASK_OPTIONS)
def deliver(delivery_id: int) -> str:
    """One attempt at a delivery. A short wait before the next attempt is scheduled here; a long
    one (beyond WEBHOOK_COUNTDOWN_MAX_SECONDS, kept below the broker's visibility timeout) is left
    to the sweeper, so no message sits in a worker's memory for hours."""
    delivery = delivery_send(delivery_id=delivery_id)
    if delivery is None:
        return "skipped"
    if delivery.status == Delivery.Status.PENDING and not current_app.conf.task_always_eager:
        wait = max((delivery.next_attempt_at - timezone.now()).total_seconds(), 0.0)
        if wait <= settings.WEBHOOK_COUNTDOWN_MAX_SECONDS:
            delivery_enqueue(delivery_id=delivery.pk, countdown=wait)
    return delivery.status


@shared_task(name="deliveries.sweep", **TASK_OPTIONS)
def sweep() -> int:
    """Enqueue every delivery that is due and has stayed unclaimed for a grace period: those the
    broker never got or lost, retries with long waits, and those whose worker died mid-attempt
    (their lease ran out). Each is marked, so the next sweeps do not queue it again at once."""
    ids = deliveries_take_for_sweep()
    with broker_connection() as connection:
        for delivery_id in ids:
            delivery_enqueue(delivery_id=delivery_id, connection=connection)
    return len(ids)


@shared_task(name="deliveries.purge", **TASK_OPTIONS)
def purge() -> int:
    """Delete finished deliveries older than WEBHOOK_RETENTION."""
    return delivery_purge_old()
