"""Issue 15 item 7: IPv6 forms that carry an IPv4 address (mapped, translated, NAT64 well-known
and local-use) are judged like that IPv4 address, at proposal time and at delivery time."""

import pytest

from deliveries.egress import EgressRefused, is_public, url_host_not_public
from deliveries.models import Delivery
from deliveries.sender import delivery_send
from reviews.models import ProposedAction
from tests.conftest import proposal
from tests.deliveries.factories import DeliveryFactory
from tests.deliveries.support import http_receiver
from tests.deliveries.test_egress import _post

NOT_PUBLIC = [
    "::ffff:0:7f00:1",  # IPv4-translated (::ffff:0:0:0/96) 127.0.0.1
    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
    "::ffff:0:a00:1",  # IPv4-translated 10.0.0.1
    "::ffff:7f00:1",  # IPv4-mapped (::ffff:0:0/96) 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 well-known prefix, 127.0.0.1
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix (64:ff9b:1::/48), 169.254.169.254 in the /96 layout
    "64:ff9b:1:a9fe:a9:fe00:808:808",  # the same address in the /48 layout: 8.8.8.8 in the last 32 bits is no excuse
    "64:ff9b:1::808:808",  # local-use: read at /48 it is 0.0.0.0; a layout we cannot know is refused
]
PUBLIC = ["::ffff:0:808:808", "::ffff:8.8.8.8", "64:ff9b::808:808", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_embedded_ipv4_forms_are_judged_by_their_ipv4_address(address):
    assert not is_public(address)
    assert url_host_not_public(f"http://[{address}]/hook") == f"{address} is not a public address"


@pytest.mark.parametrize("address", PUBLIC)
def test_embedded_public_ipv4_stays_public(address):
    assert is_public(address)
    assert url_host_not_public(f"http://[{address}]/hook") is None


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://[::ffff:0:7f00:1]/", "http://[64:ff9b:1::a9fe:a9fe]/"])
def test_a_proposal_with_such_a_callback_url_is_422_and_stores_nothing(api, settings, url):
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = False
    r = api.post("/api/v1/actions", proposal(callback_url=url))
    assert r.status_code == 422, r.content
    assert r.json()["detail"].startswith("callback_url: ") and "is not a public address" in r.json()["detail"]
    assert ProposedAction.objects.count() == 0


def test_the_network_backend_refuses_them_before_connecting():
    with http_receiver() as receiver:
        port = receiver.server.server_address[1]
        for address in ("::ffff:0:7f00:1", "64:ff9b:1::a9fe:a9fe"):
            with pytest.raises(EgressRefused, match="not a public address"):
                _post(f"http://[{address}]:{port}/hook", allow_private=False)
        assert receiver.all() == []


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://[::ffff:0:7f00:1]/", "http://[64:ff9b:1::a9fe:a9fe]/"])
def test_a_delivery_to_such_an_address_fails_at_once_without_retries(settings, url):
    # A row written before the check (or with the setting on then): the worker still refuses.
    settings.TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = False
    delivery = DeliveryFactory(url=url)
    done = delivery_send(delivery_id=delivery.pk)
    assert done.status == Delivery.Status.FAILED and done.attempts == 1
    assert "not a public address (TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE is off)" in done.last_error
