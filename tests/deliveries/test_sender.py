"""One attempt over real HTTP to a receiver on 127.0.0.1: signature, recording, errors."""

import pytest
import standardwebhooks
from trustladder_client import WebhookVerificationError, verify_webhook

from deliveries.models import Delivery
from deliveries.sender import delivery_send
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
