"""Which URLs the hub may call when a tenant configured them: a guard against SSRF. Pure.

A school can name URLs the hub then calls (a webhook target, its own app's API):
without a check, one school could make the hub fetch 169.254.169.254 (the cloud's
metadata service), 127.0.0.1 (the admin API) or a neighbour on the private network.
`check_url` allows http and https only, resolves the host (through the resolver
it is given) and refuses the URL unless every address it resolves to is global:
not loopback, private, link-local, shared (CGNAT), reserved, multicast or
unspecified, in IPv4 or IPv6, including IPv4 addresses hidden in IPv6 (mapped,
6to4, NAT64). It answers the address that was checked, for the caller to connect
to, so a second DNS answer (rebinding) cannot swap it for another.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

ALLOWED_SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrlError(ValueError):
    """A URL the hub refuses to call; the message says why."""


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str  # as written (for the Host header and TLS's server name)
    port: int
    address: str  # the global address it resolved to: connect here


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, 6to4, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_not_global(address: Address) -> str | None:
    """None for an address the hub may call; else what kind of address it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = why_not_global(inner)
        return f"{reason} (inside {address})" if reason else None
    # Most specific first: Python counts 240.0.0.0/4 and 0.0.0.0 as private too.
    for kind, flag in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a reserved", address.is_reserved),
        ("a private", address.is_private),
    ):
        if flag:
            return f"{kind} address"
    if not address.is_global:
        return "not a global address"  # e.g. 100.64.0.0/10, shared (CGNAT) space
    return None


def check_url(url: str, resolve: Resolver = system_resolver) -> CheckedUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(f"only http and https URLs may be called, not {scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError("a URL with credentials in it (user@host) is refused")
    host = parts.hostname
    if not host:
        raise UnsafeUrlError(f"{url!r} names no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrlError(f"{url!r} has an invalid port") from exc
    try:
        found = list(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(f"{host!r} does not resolve: {exc}") from exc
    if not found:
        raise UnsafeUrlError(f"{host!r} does not resolve")
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        reason = why_not_global(address)
        if reason is not None:
            raise UnsafeUrlError(f"{host!r} resolves to {address}, {reason}: refused")
    return CheckedUrl(url, scheme, host, port, found[0].split("%", 1)[0])
