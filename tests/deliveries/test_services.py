"""The outbox's writes: claiming, recording attempts, backoff, giving up, redelivery, and the
rotation of a deployment's signing secret."""

from datetime import timedelta

import pytest
from django.utils import timezone
from trustladder_client import WebhookVerificationError, verify_webhook

from deliveries.models import Delivery, DeliveryAttempt, RetiredWebhookSecret
from deliveries.selectors import webhook_signing_secrets
from deliveries.services import (
    delivery_attempt_finish,
    delivery_backoff,
    delivery_claim,
    delivery_redeliver,
    deployment_webhook_secret_rotate,
)
from deliveries.signing import sign_headers
from deployments.models import AuditEvent
from tests.deliveries.factories import DeliveryFactory

pytestmark = pytest.mark.django_db
P = Delivery.Status


def test_backoff_grows_exponentially_with_jitter_and_is_capped(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600
    for attempts in range(1, 16):
        ceiling = min(3600, 10 * 2 ** (attempts - 1))
        waits = [delivery_backoff(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempts, waits)
        assert len(set(waits)) > 1  # jittered, so retries of many deliveries spread out


def test_claim_is_exclusive_until_the_lease_runs_out(settings):
    settings.WEBHOOK_LEASE_SECONDS = 60
    delivery = DeliveryFactory()
    now = timezone.now()
    first = delivery_claim(delivery_id=delivery.pk, now=now)
    assert first is not None and first.number == 1
    assert delivery_claim(delivery_id=delivery.pk, now=now + timedelta(seconds=59)) is None  # still held
    # The first worker died: once its lease has run out the delivery can be taken over.
    second = delivery_claim(delivery_id=delivery.pk, now=now + timedelta(seconds=61))
    assert second is not None and second.number == 2
    assert DeliveryAttempt.objects.filter(delivery=delivery, finished_at__isnull=True).count() == 2


def test_a_delivery_not_yet_due_or_finished_is_not_claimed():
    later = DeliveryFactory(next_attempt_at=timezone.now() + timedelta(minutes=5))
    done = DeliveryFactory(status=P.DELIVERED)
    given_up = DeliveryFactory(status=P.FAILED)
    for delivery in (later, done, given_up):
        assert delivery_claim(delivery_id=delivery.pk) is None
    assert delivery_claim(delivery_id=10**9) is None
    assert not DeliveryAttempt.objects.exists()


def test_success_marks_delivered_and_a_repeat_changes_nothing():
    delivery = DeliveryFactory()
    attempt = delivery_claim(delivery_id=delivery.pk)
    done = delivery_attempt_finish(attempt=attempt, status_code=204, latency_ms=12)
    assert (done.status, done.last_status_code, done.lease_until) == (P.DELIVERED, 204, None)
    assert done.delivered_at is not None
    again = delivery_attempt_finish(attempt=attempt, status_code=204, latency_ms=12)
    assert again.status == P.DELIVERED and again.attempts == 1


def test_failure_schedules_the_next_attempt_with_backoff(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    delivery = DeliveryFactory()
    now = timezone.now()
    attempt = delivery_claim(delivery_id=delivery.pk, now=now)
    failed = delivery_attempt_finish(attempt=attempt, status_code=500, latency_ms=5, error="HTTP 500", now=now)
    assert failed.status == P.PENDING
    assert now + timedelta(seconds=5) <= failed.next_attempt_at <= now + timedelta(seconds=10)
    assert (failed.last_status_code, failed.last_error, failed.lease_until) == (500, "HTTP 500", None)
    stored = DeliveryAttempt.objects.get(pk=attempt.pk)
    assert (stored.status_code, stored.latency_ms, stored.error) == (500, 5, "HTTP 500")
    assert stored.finished_at == now


def test_failures_stop_at_give_up_at():
    delivery = DeliveryFactory()
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(give_up_at=now + timedelta(seconds=30))
    attempt = delivery_claim(delivery_id=delivery.pk, now=now)
    # A retry is never scheduled past the deadline...
    failed = delivery_attempt_finish(attempt=attempt, status_code=None, latency_ms=3, error="ConnectError", now=now)
    assert failed.status == P.PENDING and failed.next_attempt_at <= failed.give_up_at
    # ...and the last attempt at the deadline gives up.
    late = failed.give_up_at
    attempt = delivery_claim(delivery_id=delivery.pk, now=late)
    given_up = delivery_attempt_finish(attempt=attempt, status_code=502, latency_ms=3, error="HTTP 502", now=late)
    assert given_up.status == P.FAILED and given_up.attempts == 2


def test_a_permanent_failure_gives_up_at_once_however_long_is_left():
    delivery = DeliveryFactory()
    attempt = delivery_claim(delivery_id=delivery.pk)
    error = "refused to connect to 10.0.0.5: not a public address (TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE is off)"
    failed = delivery_attempt_finish(attempt=attempt, status_code=None, latency_ms=1, error=error, permanent=True)
    assert failed.status == P.FAILED and failed.give_up_at > timezone.now() + timedelta(hours=23)
    assert failed.last_error == error and failed.lease_until is None
    assert delivery_claim(delivery_id=delivery.pk) is None


def test_an_attempt_finishing_after_a_takeover_is_recorded_but_decides_nothing(settings):
    settings.WEBHOOK_LEASE_SECONDS = 10
    delivery = DeliveryFactory()
    now = timezone.now()
    slow = delivery_claim(delivery_id=delivery.pk, now=now)
    fresh = delivery_claim(delivery_id=delivery.pk, now=now + timedelta(seconds=11))
    delivery_attempt_finish(attempt=fresh, status_code=200, latency_ms=1)
    after = delivery_attempt_finish(attempt=slow, status_code=500, latency_ms=20_000, error="HTTP 500")
    assert after.status == P.DELIVERED
    assert DeliveryAttempt.objects.get(pk=slow.pk).status_code == 500


def test_redeliver_sends_again_with_the_same_webhook_id_and_is_audited(admin):
    delivery = DeliveryFactory(status=P.FAILED, attempts=7, give_up_at=timezone.now() - timedelta(hours=1))
    for _ in range(2):  # safe to repeat
        again = delivery_redeliver(delivery_id=delivery.pk, actor=admin.user)
        assert again.status == P.PENDING and again.webhook_id == delivery.webhook_id
        assert again.give_up_at > timezone.now() + timedelta(hours=23)
    events = AuditEvent.objects.filter(verb="deliveries.delivery.redelivered", object_id=str(delivery.pk))
    assert events.count() == 2
    assert events.first().actor == admin.user
    assert delivery_claim(delivery_id=delivery.pk) is not None


def test_rotating_the_secret_keeps_the_old_one_signing_for_the_grace_period(deployment, admin):
    old = deployment.webhook_secret
    new = deployment_webhook_secret_rotate(deployment_id=deployment.pk, actor=admin.user)
    deployment.refresh_from_db()
    assert new.startswith("whsec_") and new != old and deployment.webhook_secret == new
    event = AuditEvent.objects.get(verb="deployments.webhook_secret.rotated")
    assert event.actor == admin.user and old not in str(event.data) and new not in str(event.data)

    now = timezone.now()
    body = '{"id":1}'
    headers = sign_headers(
        webhook_id="msg_1", body=body, secrets=webhook_signing_secrets(deployment=deployment, now=now), now=now
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify_webhook(body, headers, new) == {"id": 1}
    assert verify_webhook(body, headers, old) == {"id": 1}  # receivers not yet switched keep working

    after_grace = webhook_signing_secrets(deployment=deployment, now=now + timedelta(hours=25))
    assert after_grace == [new]
    headers = sign_headers(webhook_id="msg_1", body=body, secrets=after_grace, now=now)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, old)


def test_rotation_forgets_secrets_past_their_grace(deployment, settings):
    deployment_webhook_secret_rotate(deployment_id=deployment.pk)
    RetiredWebhookSecret.objects.update(retired_at=timezone.now() - settings.WEBHOOK_SECRET_ROTATION_GRACE)
    deployment_webhook_secret_rotate(deployment_id=deployment.pk)
    assert RetiredWebhookSecret.objects.filter(deployment=deployment).count() == 1
