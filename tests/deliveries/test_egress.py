"""deliveries.egress: which addresses are public, the early URL check, and the connect-time
check of the network backend (against a real receiver on 127.0.0.1)."""

import socket

import httpx
import pytest

from deliveries import egress
from deliveries.egress import EgressRefused, EgressTransport, is_public, url_host_not_public
from tests.deliveries.support import http_receiver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 -- an address to judge, not to bind
        "224.0.0.1",  # multicast
        "::1",
        "::",
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
    ],
)
def test_non_public_addresses(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address):
    assert is_public(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "https://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9000/",
        "http://[::ffff:7f00:1]/",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost:8000/",
    ],
)
def test_url_hosts_known_not_public_without_dns(url):
    assert url_host_not_public(url)


@pytest.mark.parametrize("url", ["https://hooks.example.com/x", "http://8.8.8.8/", "https://[2606:4700::1111]/"])
def test_url_hosts_left_to_the_connect_time_check(url):
    assert url_host_not_public(url) is None


def _post(url: str, *, allow_private: bool) -> httpx.Response:
    with httpx.Client(transport=EgressTransport(allow_private=allow_private), timeout=5) as client:
        return client.post(url, content=b"{}")


def test_the_backend_refuses_loopback_by_address_and_by_name():
    with http_receiver() as receiver:
        port = receiver.server.server_address[1]
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(EgressRefused, match=r"127\.0\.0\.1.*TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE"):
                _post(f"http://{host}:{port}/hook", allow_private=False)
        assert receiver.all() == []


def test_the_backend_connects_to_the_address_it_resolved_when_private_is_allowed():
    with http_receiver() as receiver:
        port = receiver.server.server_address[1]
        assert _post(f"http://localhost:{port}/hook", allow_private=True).status_code == 204
        assert _post(f"http://127.0.0.1:{port}/hook", allow_private=True).status_code == 204
        (by_name, by_address) = receiver.all()
    # The request still names the host it was for.
    assert by_name.headers["host"] == f"localhost:{port}"
    assert by_address.headers["host"] == f"127.0.0.1:{port}"


def test_one_private_address_among_public_ones_is_enough_to_refuse(monkeypatch):
    # A name answering with several addresses: connecting to "the first public one" would let
    # a rebinding server put its private address second.
    answers = [("93.184.215.14", 80), ("10.0.0.7", 80)]
    monkeypatch.setattr(
        egress.socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", sockaddr) for sockaddr in answers],
    )
    with pytest.raises(EgressRefused, match=r"hooks\.example\.com \(10\.0\.0\.7\)"):
        _post("http://hooks.example.com/hook", allow_private=False)


def test_a_name_that_does_not_resolve_is_a_connection_error_not_a_refusal():
    with pytest.raises(httpx.ConnectError, match="cannot resolve"):
        _post("http://does-not-exist.invalid/hook", allow_private=False)


def test_the_backend_connects_to_the_address_it_checked_not_to_a_second_answer(monkeypatch):
    # A rebinding name answers a check with one address and the connection with another. The
    # backend asks once and connects to that answer: here the only one that reaches a receiver.
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            return real(next(answers, "198.51.100.1"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(egress.socket, "getaddrinfo", rebinding)
    with http_receiver() as receiver:
        port = receiver.server.server_address[1]
        assert _post(f"http://rebind.example:{port}/hook", allow_private=True).status_code == 204
        (request,) = receiver.all()
    assert request.headers["host"] == f"rebind.example:{port}"
