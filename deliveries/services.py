"""Every write to the webhook outbox and to a deployment's signing secret.

Deliveries are created inside the caller's transaction (the decision they announce) and
enqueued only once it commits. A delivery is claimed with one conditional UPDATE that takes a
lease, so two workers handed the same id never both send it, and a worker that dies while
sending only delays the delivery until its lease runs out and the sweeper hands it on.
"""

import json
import logging
import random
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.tasks import task_get
from core.updates import model_update
from deliveries.models import Delivery, DeliveryAttempt, RetiredWebhookSecret
from deployments.errors import InvalidInput
from deployments.locks import deployment_lock
from deployments.services import audit_event_record, new_webhook_secret

logger = logging.getLogger(__name__)


def delivery_backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failure: exponential, capped, with "equal jitter"
    (a random point in the upper half), so retries of many deliveries spread out but still grow."""
    ceiling = min(settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


def broker_connection() -> Any:
    """A broker connection that fails at once instead of retrying when the broker is down, so
    a web request that decides an action is never held up by an unreachable Redis."""
    options = {**current_app.conf.broker_transport_options, "max_retries": 0}
    return current_app.connection_for_write(transport_options=options)


def delivery_enqueue(*, delivery_id: int, countdown: float | None = None, connection: Any = None) -> bool:
    """Hand a delivery to a worker. Never raises: with the broker down the delivery stays due in
    the outbox and the sweeper enqueues it later. Returns whether the broker took it."""
    try:
        deliver = task_get("deliveries.deliver")
        if connection is not None:
            deliver.apply_async(args=[delivery_id], countdown=countdown, retry=False, connection=connection)
        else:
            with broker_connection() as own:
                deliver.apply_async(args=[delivery_id], countdown=countdown, retry=False, connection=own)
    except Exception:  # any broker failure; the outbox row is the source of truth
        logger.warning("could not enqueue delivery %s; the sweeper will send it", delivery_id, exc_info=True)
        return False
    return True


@transaction.atomic
def deliveries_take_for_sweep(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """The due deliveries nobody has claimed for WEBHOOK_SWEEP_GRACE_SECONDS past their due time
    (oldest first), each marked due again from `now` so that the next sweeps leave it alone
    for as long while its new message waits in the queue. Returns their ids, to enqueue."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.WEBHOOK_SWEEP_GRACE_SECONDS)
    stale = Delivery.objects.due(now).filter(next_attempt_at__lte=now - grace)
    stale = stale.select_for_update(skip_locked=True).order_by("next_attempt_at")
    ids = list(stale.values_list("pk", flat=True)[:limit])
    Delivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
    return ids


@transaction.atomic
def delivery_create(
    *,
    deployment_id: int,
    url: str,
    event_type: str,
    body: dict[str, Any],
    object_type: str = "",
    object_id: str = "",
    now: datetime | None = None,
    traceparent: str = "",
) -> Delivery:
    """Write an outbox row in the caller's transaction; enqueue it once that transaction commits.

    Guarantees: if the caller's transaction commits, the delivery exists and will be attempted
    (now, or by the sweeper if the broker is unreachable) until delivered or `WEBHOOK_RETRY_FOR`
    has passed. If it rolls back, nothing is sent. `traceparent`: the trace the delivery
    continues (sent in a `traceparent` header).
    """
    now = now or timezone.now()
    delivery = Delivery.objects.create(
        deployment_id=deployment_id,
        event_type=event_type,
        object_type=object_type,
        object_id=object_id,
        url=url,
        body=json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False),
        next_attempt_at=now,
        give_up_at=now + settings.WEBHOOK_RETRY_FOR,
        traceparent=traceparent,
    )
    transaction.on_commit(partial(delivery_enqueue, delivery_id=delivery.pk), robust=True)
    return delivery


@transaction.atomic
def delivery_claim(*, delivery_id: int, now: datetime | None = None) -> DeliveryAttempt | None:
    """Claim a due delivery for one attempt, or return None if it is not due, already delivered,
    given up, or held by another worker. Safe to repeat and to race: one conditional UPDATE
    decides, so exactly one caller gets the attempt.

    The attempt row is written now, before sending, so an attempt cut short by a crash is
    still on record (without `finished_at`).
    """
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    claimed = (
        Delivery.objects.filter(pk=delivery_id)
        .due(now)
        .update(lease_until=lease_until, attempts=F("attempts") + 1, last_attempt_at=now)
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("deployment").get(pk=delivery_id)
    return DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now)


@transaction.atomic
def delivery_attempt_finish(
    *,
    attempt: DeliveryAttempt,
    status_code: int | None,
    latency_ms: int | None,
    error: str = "",
    response_excerpt: str = "",
    permanent: bool = False,
    now: datetime | None = None,
) -> Delivery:
    """Record how an attempt ended and what happens next: delivered on a 2xx; otherwise the next
    attempt after an exponential backoff, or given up once `give_up_at` has passed, or at once
    if the failure is `permanent` (retrying cannot help, e.g. a refused destination).

    Precondition: `attempt` came from `delivery_claim`. If the delivery moved on meanwhile (a
    later claim after this one's lease ran out), only the attempt is recorded.
    """
    now = now or timezone.now()
    delivery = Delivery.objects.select_for_update().get(pk=attempt.delivery_id)
    model_update(
        attempt,
        finished_at=now,
        status_code=status_code,
        latency_ms=latency_ms,
        error=error[:2000],
        response_excerpt=response_excerpt[:500],
    )
    if delivery.status != Delivery.Status.PENDING or delivery.attempts != attempt.number:
        return delivery
    delivery.last_status_code = status_code
    delivery.last_error = attempt.error
    delivery.lease_until = None
    if attempt.succeeded:
        delivery.status = Delivery.Status.DELIVERED
        delivery.delivered_at = now
    elif permanent or now >= delivery.give_up_at:
        delivery.status = Delivery.Status.FAILED
    else:
        wait = timedelta(seconds=delivery_backoff(delivery.attempts))
        delivery.next_attempt_at = min(now + wait, delivery.give_up_at)
    delivery.save(
        update_fields=[
            "status",
            "delivered_at",
            "next_attempt_at",
            "lease_until",
            "last_status_code",
            "last_error",
        ]
    )
    return delivery


@transaction.atomic
def delivery_redeliver(*, delivery_id: int, actor: AbstractBaseUser) -> Delivery:
    """Send a delivery again now, whatever its state, with the same `webhook-id` and body, and
    retry it for another `WEBHOOK_RETRY_FOR`. Audited. An attempt already in flight finishes first."""
    try:
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
    except Delivery.DoesNotExist:
        raise InvalidInput(f"delivery {delivery_id} does not exist") from None
    now = timezone.now()
    previous = delivery.status
    model_update(
        delivery, status=Delivery.Status.PENDING, next_attempt_at=now, give_up_at=now + settings.WEBHOOK_RETRY_FOR
    )
    audit_event_record(
        verb="deliveries.delivery.redelivered",
        actor=actor,
        obj=delivery,
        data={"webhook_id": delivery.webhook_id, "previous_status": previous, "attempts": delivery.attempts},
    )
    transaction.on_commit(partial(delivery_enqueue, delivery_id=delivery.pk), robust=True)
    return delivery


def delivery_purge_old(*, now: datetime | None = None) -> int:
    """Delete finished deliveries (delivered or given up), and their attempts, older than
    WEBHOOK_RETENTION; returns how many. Pending ones are never purged. Safe to repeat."""
    cutoff = (now or timezone.now()) - settings.WEBHOOK_RETENTION
    old = Delivery.objects.filter(created_at__lt=cutoff).exclude(status=Delivery.Status.PENDING)
    DeliveryAttempt.objects.filter(delivery__in=old).delete()
    deleted, _ = old.delete()
    return deleted


@transaction.atomic
def deployment_webhook_secret_rotate(
    *, deployment_id: int, actor: AbstractBaseUser | None = None, actor_label: str = ""
) -> str:
    """Give the deployment a new signing secret and return it (show it once to the admin).

    The previous secret keeps signing, beside the new one, for `WEBHOOK_SECRET_ROTATION_GRACE`,
    so receivers can switch without rejecting a delivery. Audited; the secrets are not logged.
    """
    deployment = deployment_lock(deployment_id)
    now = timezone.now()
    RetiredWebhookSecret.objects.filter(
        deployment=deployment, retired_at__lte=now - settings.WEBHOOK_SECRET_ROTATION_GRACE
    ).delete()
    if deployment.webhook_secret:
        RetiredWebhookSecret.objects.create(deployment=deployment, secret=deployment.webhook_secret, retired_at=now)
    secret = new_webhook_secret()
    model_update(deployment, webhook_secret=secret)
    audit_event_record(
        verb="deployments.webhook_secret.rotated",
        actor=actor,
        actor_label=actor_label,
        obj=deployment,
        data={"grace_hours": settings.WEBHOOK_SECRET_ROTATION_GRACE.total_seconds() / 3600},
    )
    return secret
