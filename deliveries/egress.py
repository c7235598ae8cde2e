"""Outbound HTTP to addresses that agents choose: only to public ones, checked as we connect.

A `callback_url` is chosen by whoever holds an API key, and the worker POSTs signed bodies to
it, so without a check it could reach loopback, the private network or the cloud metadata
service (169.254.169.254): server-side request forgery. Looking at the URL is not enough, since
a public-looking name can resolve to a private address, or resolve differently between a check
and the connection (DNS rebinding). So `EgressBackend` resolves the name itself, refuses if
any address is not public, and connects to the address it checked. TLS runs on top of that
stream with the URL's hostname, so certificates are still verified against the name.

`url_host_not_public` is the cheap early check (no DNS) the API runs on a proposal.

Pure Python: no Django, no settings; the caller decides whether the check applies.
"""

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

SETTING = "TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE"
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(Exception):
    """The destination is not a public address. Not an httpx error: httpx lets it through
    unchanged, so callers can tell it from a transient connection failure."""


def is_public(address: str) -> bool:
    """Whether an IP address (as getaddrinfo gives it) may be sent to: globally reachable,
    not multicast, judged by the IPv4 address an IPv6 one carries (mapped, 6to4, NAT64)."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if int(ip) >> 32 == 0:  # ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        ip = embedded or ip
    return ip.is_global and not ip.is_multicast


def url_host_not_public(url: str) -> str | None:
    """Why a URL's host is certainly not public, judged from the URL alone (no DNS lookup), or
    None: a literal IP address that is not public, or `localhost` and its subdomains."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        public = is_public(host)
    except ValueError:
        return None  # a name: resolved, and checked, only when the worker connects
    return None if public else f"{host} is not a public address"


def _refusal(host: str, address: str) -> str:
    named = address if host == address else f"{host} ({address})"
    return f"refused to connect to {named}: not a public address ({SETTING} is off)"


class EgressBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting to the addresses it resolved and checked itself:
    only public ones unless `allow_private`."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:  # the name does not resolve (now): a connection error, retried
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            if not self.allow_private and not is_public(address):
                raise EgressRefused(_refusal(host, address))
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # ConnectTimeout is not retried: the time is spent
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")


class EgressTransport(httpx.HTTPTransport):
    """httpx's default transport, whose connections go through `EgressBackend`.

    No proxy: a proxy resolves the name itself, out of our reach (and an httpx.Client given a
    transport ignores HTTP(S)_PROXY).
    """

    def __init__(self, *, allow_private: bool) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context)
        # httpx takes no network backend: replace the pool it built with one that has ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=EgressBackend(allow_private=allow_private)
        )
