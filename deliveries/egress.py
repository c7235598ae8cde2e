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
# IPv6 forms that carry an IPv4 address in their last 32 bits, judged by that address:
# IPv4-mapped (::ffff:0:0/96, RFC 4291), IPv4-translated (::ffff:0:0:0/96, RFC 2765) and
# NAT64's well-known prefix (64:ff9b::/96, RFC 6052).
_EMBEDS_IPV4 = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
# NAT64's local-use prefix (RFC 8215) may embed the IPv4 address at any RFC 6052 prefix
# length from /48: every reading must be public.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _nat64_local_embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an address of 64:ff9b:1::/48 carries under each RFC 6052 layout
    (/48, /56, /64, /96); bits 64-71 (the "u" octet) never hold address bits."""
    b = ip.packed
    return [ipaddress.IPv4Address(octets) for octets in (b[6:8] + b[9:11], b[7:8] + b[9:12], b[9:13], b[12:16])]


class EgressRefused(Exception):
    """The destination is not a public address. Not an httpx error: httpx lets it through
    unchanged, so callers can tell it from a transient connection failure."""


def is_public(address: str) -> bool:
    """Whether an IP address (as getaddrinfo gives it) may be sent to: globally reachable,
    not multicast, judged by the IPv4 address an IPv6 one carries (mapped, translated, 6to4,
    NAT64 well-known and local-use)."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if int(ip) >> 32 == 0:  # ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
            return False
        if ip in _NAT64_LOCAL:
            return all(_public_ipv4(v4) for v4 in _nat64_local_embedded(ip))
        if any(ip in network for network in _EMBEDS_IPV4):
            return _public_ipv4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return _public_ipv4(ip.sixtofour)
    return ip.is_global and not ip.is_multicast


def _public_ipv4(ip: ipaddress.IPv4Address) -> bool:
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
