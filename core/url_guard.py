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

`check_host` is the same check for a host and port that is not a URL (an SMTP
server). An `Allowance` (HUB_URL_GUARD_ALLOW: CIDRs and host names) lets an
operator through to non-global addresses on purpose, a local stack's 127.0.0.1.
`literal_refusal` is the part that needs no DNS, cheap enough to run when an
account is saved; the call-time check stays the one that counts (DNS changes).
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
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeUrlError(ValueError):
    """A URL the hub refuses to call; the message says why."""


@dataclass(frozen=True)
class Allowance:
    """Non-global destinations an operator allows: networks, and host names as written."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


NO_ALLOWANCE = Allowance()


def parse_allowance(text: str) -> Allowance:
    """`"127.0.0.1, 10.0.0.0/8, smtp.internal"`: CIDRs (a bare address is its /32 or /128)
    and host names. A malformed CIDR is an error, not a silently wider allowance."""
    networks: list[Network] = []
    hosts: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
            continue
        except ValueError as exc:
            if "/" in entry or ":" in entry or entry.replace(".", "").isdigit():
                raise ValueError(f"HUB_URL_GUARD_ALLOW: {entry!r} is not a CIDR: {exc}") from exc
        hosts.add(entry.lower().rstrip("."))
    return Allowance(tuple(networks), frozenset(hosts))


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


def _address(text: str) -> Address:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError as exc:
        raise UnsafeUrlError(f"{text!r} is not an address") from exc


def literal_address(host: str) -> str | None:
    """`host` as an address when it is one written out (no DNS needed), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def literal_refusal(host: str, allow: Allowance = NO_ALLOWANCE) -> str | None:
    """What `host` is when it is refused without asking DNS ("a loopback address" for an
    IP literal that is not global, "a loopback name" for localhost), or None: a name is
    judged by what it resolves to, when it is called. The host itself is not in the
    answer: an API that refuses it does not echo what it was sent."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if allow.allows_host(name):
        return None
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        return "a loopback name"
    literal = literal_address(name)
    if literal is None:
        return None
    address = ipaddress.ip_address(literal)
    reason = why_not_global(address)
    if reason is None or allow.allows_address(address):
        return None
    return reason


def check_addresses(host: str, found: Sequence[str], allow: Allowance = NO_ALLOWANCE) -> str:
    """The address to connect to, once every address `host` resolved to passed."""
    if not found:
        raise UnsafeUrlError(f"{host!r} does not resolve")
    if not allow.allows_host(host):
        for text in found:
            address = _address(text)
            reason = why_not_global(address)
            if reason is not None and not allow.allows_address(address):
                raise UnsafeUrlError(f"{host!r} resolves to {address}, {reason}: refused")
    return found[0].split("%", 1)[0]


def check_host(
    host: str, port: int, resolve: Resolver = system_resolver, allow: Allowance = NO_ALLOWANCE
) -> str:
    """Resolve host:port and check every address (`check_addresses`)."""
    try:
        found = list(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(f"{host!r} does not resolve: {exc}") from exc
    return check_addresses(host, found, allow)


def check_url(
    url: str,
    resolve: Resolver = system_resolver,
    allow: Allowance = NO_ALLOWANCE,
    schemes: tuple[str, ...] = ALLOWED_SCHEMES,
) -> CheckedUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = " and ".join(schemes)
        raise UnsafeUrlError(f"only {allowed} URLs may be called, not {scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError("a URL with credentials in it (user@host) is refused")
    host = parts.hostname
    if not host:
        raise UnsafeUrlError(f"{url!r} names no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrlError(f"{url!r} has an invalid port") from exc
    return CheckedUrl(url, scheme, host, port, check_host(host, port, resolve, allow))
