"""One attempt over real HTTP to a receiver on 127.0.0.1: signature, recording, errors."""

import pytest
import standardwebhooks
from trustladder_client import WebhookVerificationError, verify_webhook

from deliveries.models import Delivery
from deliveries.sender import delivery_send
from deliveries.services import delivery_redeliver
from tests.deliveries.factories import DeliveryFactory
from tests.deliveries.support import http_receiver
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db


def test_a_delivery_is_signed_the_standard_webhooks_way(deployment):
    with http_receiver() as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=receiver.url)
        sent = delivery_send(delivery_id=delivery.pk)
        assert sent.status == Delivery.Status.DELIVERED
        (request,) = receiver.all()
    assert request.body == delivery.body.encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert request.headers["webhook-signature"].startswith("v1,")
    # The client's helper and the reference library agree.
    assert verify_webhook(request.body, request.headers, deployment.webhook_secret)["id"] == int(delivery.object_id)
    standardwebhooks.Webhook(deployment.webhook_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.body.replace(b"execute", b"reject"), request.headers, deployment.webhook_secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.body, {**request.headers, "webhook-signature": "garbage"}, deployment.webhook_secret)
    attempt = sent.attempt_log.get()
    assert attempt.status_code == 204 and attempt.latency_ms is not None and attempt.error == ""


def test_an_error_answer_is_recorded_and_retried_later(deployment):
    with http_receiver(lambda n: 503) as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=receiver.url)
        sent = delivery_send(delivery_id=delivery.pk)
    assert sent.status == Delivery.Status.PENDING and sent.next_attempt_at > sent.last_attempt_at
    attempt = sent.attempt_log.get()
    assert (attempt.status_code, attempt.error, attempt.response_excerpt) == (503, "HTTP 503", "ok")
    assert delivery_send(delivery_id=delivery.pk) is None  # not due yet: a repeat does nothing


def test_an_unreachable_receiver_is_recorded(deployment):
    delivery = DeliveryFactory(deployment=deployment, url=f"http://127.0.0.1:{free_port()}/gone")
    sent = delivery_send(delivery_id=delivery.pk)
    attempt = sent.attempt_log.get()
    assert attempt.status_code is None and attempt.error.startswith("ConnectError")
    assert sent.status == Delivery.Status.PENDING and sent.last_error == attempt.error


def test_a_deployment_without_a_secret_sends_nothing(deployment):
    deployment.webhook_secret = ""
    deployment.save()
    with http_receiver() as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=receiver.url)
        sent = delivery_send(delivery_id=delivery.pk)
        assert receiver.all() == []
    assert sent.status == Delivery.Status.PENDING
    assert "no signing secret" in sent.last_error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hooks",
        "http://localhost:{port}/hooks",  # a name that resolves to 127.0.0.1
        "http://10.0.0.5:{port}/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/hooks",
    ],
)
def test_a_non_public_address_is_refused_once_and_fails_at_once(deployment, settings, url):
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 2  # a broken check must not hang on an unroutable address
    with http_receiver() as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=url.format(port=receiver.server.server_address[1]))
        sent = delivery_send(delivery_id=delivery.pk)
        assert delivery_send(delivery_id=delivery.pk) is None  # failed: never retried
        assert receiver.all() == []
    assert (sent.status, sent.attempts) == (Delivery.Status.FAILED, 1)
    attempt = sent.attempt_log.get()
    assert attempt.status_code is None and attempt.finished_at is not None
    assert "not a public address" in attempt.error and "TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE" in attempt.error
    host = url.split("//")[1].split("/")[0].rsplit(":", 1)[0].strip("[]")
    assert host in attempt.error
    assert sent.last_error == attempt.error


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_receiver_is_delivered_to_when_allowed(deployment, settings, host):
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = True
    with http_receiver() as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=f"http://{host}:{receiver.server.server_address[1]}/h")
        sent = delivery_send(delivery_id=delivery.pk)
        (request,) = receiver.all()
    assert sent.status == Delivery.Status.DELIVERED
    assert request.headers["webhook-id"] == delivery.webhook_id


def test_a_refused_delivery_goes_out_when_redelivered_after_the_setting_changes(deployment, settings, admin):
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = False
    with http_receiver() as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=receiver.url)
        assert delivery_send(delivery_id=delivery.pk).status == Delivery.Status.FAILED
        settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = True
        delivery_redeliver(delivery_id=delivery.pk, actor=admin.user)
        sent = delivery_send(delivery_id=delivery.pk)
        assert len(receiver.all()) == 1
    assert sent.status == Delivery.Status.DELIVERED and sent.attempts == 2
