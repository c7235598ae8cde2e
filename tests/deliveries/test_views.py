"""The deliveries page: admins only, failures first, redeliver and rotate by POST with CSRF."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deliveries.models import Delivery
from deployments.models import AuditEvent, Member
from tests.deliveries.factories import DeliveryFactory
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db
P = Delivery.Status


def signed_in(member: Member, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(member.user)
    return client


def test_only_admins_see_the_page(reviewer, senior, admin):
    url = reverse("deliveries:list")
    assert Client().get(url).status_code == 302  # to sign-in
    assert signed_in(reviewer).get(url).status_code == 403
    assert signed_in(senior).get(url).status_code == 403
    page = signed_in(admin).get(url)
    assert page.status_code == 200
    assert b'href="/deliveries/"' in page.content  # the nav link, for admins only
    assert b'href="/deliveries/"' not in signed_in(reviewer).get("/deployments/").content


def test_failures_come_first(admin, deployment):
    DeliveryFactory(deployment=deployment, status=P.DELIVERED, url="https://a.example/delivered")
    DeliveryFactory(deployment=deployment, url="https://a.example/queued")
    DeliveryFactory(deployment=deployment, attempts=2, last_error="HTTP 500", url="https://a.example/retrying")
    DeliveryFactory(deployment=deployment, status=P.FAILED, attempts=30, url="https://a.example/given-up")
    other = DeliveryFactory(status=P.FAILED, url="https://b.example/other-deployment")
    html = signed_in(admin).get(reverse("deliveries:list"), {"deployment": deployment.slug}).content.decode()
    order = [html.index(f"a.example/{name}") for name in ("given-up", "retrying", "queued", "delivered")]
    assert order == sorted(order)
    assert other.url not in html
    assert other.url in signed_in(admin).get(reverse("deliveries:list")).content.decode()


def test_the_page_costs_the_same_queries_for_many_deliveries(admin, deployment):
    client = signed_in(admin)
    DeliveryFactory(deployment=deployment)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("deliveries:list"))
    DeliveryFactory.create_batch(20, deployment=deployment)
    DeliveryFactory.create_batch(5, deployment=DeploymentFactory(), status=P.FAILED)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("deliveries:list"))
    assert len(many) == len(few)


def test_redeliver_is_a_post_with_csrf_and_is_audited(admin, deployment):
    delivery = DeliveryFactory(deployment=deployment, status=P.FAILED, attempts=9)
    url = reverse("deliveries:redeliver", args=[delivery.pk])
    assert signed_in(admin).get(url).status_code == 405
    assert signed_in(admin, enforce_csrf_checks=True).post(url).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == P.FAILED

    response = signed_in(admin).post(url, {"deployment": deployment.slug}, follow=True)
    assert response.redirect_chain[-1][0] == f"{reverse('deliveries:list')}?deployment={deployment.slug}"
    assert b"queued again" in response.content
    delivery.refresh_from_db()
    assert delivery.status == P.PENDING
    assert AuditEvent.objects.filter(verb="deliveries.delivery.redelivered", actor=admin.user).count() == 1


def test_redeliver_is_refused_to_reviewers_and_unknown_ids_are_404(reviewer, admin):
    delivery = DeliveryFactory(status=P.FAILED)
    assert signed_in(reviewer).post(reverse("deliveries:redeliver", args=[delivery.pk])).status_code == 403
    assert signed_in(admin).post(reverse("deliveries:redeliver", args=[10**9])).status_code == 404
    assert signed_in(admin).get(reverse("deliveries:detail", args=[10**9])).status_code == 404
    delivery.refresh_from_db()
    assert delivery.status == P.FAILED


def test_detail_lists_every_attempt(admin):
    delivery = DeliveryFactory(attempts=2)
    started = delivery.created_at
    delivery.attempt_log.create(number=1, started_at=started, status_code=500, latency_ms=8, error="HTTP 500")
    delivery.attempt_log.create(number=2, started_at=delivery.created_at)  # interrupted
    html = signed_in(admin).get(reverse("deliveries:detail", args=[delivery.pk])).content.decode()
    assert delivery.webhook_id in html and "HTTP 500" in html and "8 ms" in html and "interrupted" in html


def test_rotating_the_secret_from_the_page(admin, deployment):
    old = deployment.webhook_secret
    url = reverse("deliveries:rotate_secret", args=[deployment.slug])
    assert signed_in(admin, enforce_csrf_checks=True).post(url).status_code == 403
    response = signed_in(admin).post(url, follow=True)
    assert b"new signing secret" in response.content
    deployment.refresh_from_db()
    assert deployment.webhook_secret != old
    assert AuditEvent.objects.filter(verb="deployments.webhook_secret.rotated", actor=admin.user).exists()
    assert signed_in(admin).post(reverse("deliveries:rotate_secret", args=["nope"])).status_code == 404


def test_an_unknown_deployment_filter_is_a_message_not_an_error(admin):
    response = signed_in(admin).get(reverse("deliveries:list"), {"deployment": "<nope>"})
    assert response.status_code == 200 and b"No deployment" in response.content and b"<nope>" not in response.content
