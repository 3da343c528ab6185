"""The SSRF guard where connections are made (core.guarded_http): the allow-list, the
address actually connected to (DNS rebinding), TLS's server name, redirects.

The network's far side is a fake httpcore backend that records what it was asked to
connect to and answers canned HTTP; resolution is a fake resolver. No real DNS."""

from __future__ import annotations

import socket
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpcore
import httpx
import pytest

from core.guarded_http import DestinationGuard, DestinationRefusedError, GuardedTransport
from core.url_guard import (
    NO_ALLOWANCE,
    UnsafeUrlError,
    check_addresses,
    literal_refusal,
    parse_allowance,
)

pytestmark = pytest.mark.anyio

GLOBAL = "93.184.216.34"
GLOBAL_2 = "93.184.216.35"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
REDIRECT = (
    b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:8090/v1/api-keys\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the allow-list (HUB_URL_GUARD_ALLOW) ----------------------------------------------


@pytest.mark.parametrize(
    ("allow", "host", "answers", "passes"),
    [
        ("", "mail.t1.test", ["127.0.0.1"], False),
        ("127.0.0.1", "mail.t1.test", ["127.0.0.1"], True),
        ("127.0.0.1", "mail.t1.test", ["127.0.0.2"], False),  # a /32, not all of 127/8
        ("127.0.0.1", "mail.t1.test", [GLOBAL, "127.0.0.1"], True),
        ("127.0.0.1", "mail.t1.test", ["127.0.0.1", "10.0.0.1"], False),  # every answer counts
        ("10.0.0.0/8, 192.168.0.0/16", "mail.t1.test", ["10.20.30.40"], True),
        ("10.0.0.0/8", "mail.t1.test", ["169.254.169.254"], False),
        ("::1", "mail.t1.test", ["::1"], True),
        ("::1", "mail.t1.test", ["127.0.0.1"], False),  # an IPv6 entry allows no IPv4
        ("127.0.0.1", "mail.t1.test", ["::ffff:127.0.0.1"], False),  # mapped: not the entry
        ("smtp.internal", "smtp.internal", ["10.9.8.7"], True),  # a host name entry
        ("smtp.internal", "SMTP.Internal.", ["10.9.8.7"], True),  # ... as DNS compares names
        ("smtp.internal", "other.internal", ["10.9.8.7"], False),
    ],
)
def test_the_allow_list_lets_through_only_what_it_names(
    allow: str, host: str, answers: list[str], passes: bool
) -> None:
    allowance = parse_allowance(allow)
    if passes:
        assert check_addresses(host, answers, allowance) == answers[0]
    else:
        with pytest.raises(UnsafeUrlError, match="refused"):
            check_addresses(host, answers, allowance)


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "300.1.2.3", "10.0.0.0/33", "fe80::1/200"])
def test_a_malformed_allow_entry_is_an_error_not_a_wider_allowance(bad: str) -> None:
    with pytest.raises(ValueError, match="HUB_URL_GUARD_ALLOW"):
        parse_allowance(f"127.0.0.1,{bad}")


def test_an_empty_allow_list_allows_nothing() -> None:
    assert parse_allowance(" , ") == NO_ALLOWANCE


@pytest.mark.parametrize(
    ("host", "allow", "refused"),
    [
        ("127.0.0.1", "", "a loopback address"),
        ("[::1]", "", "a loopback address"),
        ("localhost", "", "a loopback name"),
        ("mail.localhost", "", "a loopback name"),
        ("169.254.169.254", "", "a link-local address"),
        ("10.1.2.3", "", "a private address"),
        ("fd00::25", "", "a private address"),
        ("::ffff:10.0.0.1", "", "a private address (inside ::ffff:a00:1)"),
        ("127.0.0.1", "127.0.0.1", None),
        ("localhost", "localhost", None),
        ("smtp.greenwood.school.example", "", None),  # a name: judged when it is called
        (GLOBAL, "", None),
    ],
)
def test_what_can_be_refused_without_dns(host: str, allow: str, refused: str | None) -> None:
    assert literal_refusal(host, parse_allowance(allow)) == refused


# --- the transport: the checked address is the one connected to ------------------------


class Rebinding:
    """A name that answers differently each time it is asked (DNS rebinding)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        try:  # a literal in any form getaddrinfo reads (0x7f000001), without DNS
            infos = socket.getaddrinfo(host, port, flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            return list(self.answers.pop(0))
        return [str(info[4][0]) for info in infos]


@dataclass
class FakeStream(httpcore.AsyncNetworkStream):
    reply: bytes
    written: bytearray = field(default_factory=bytearray)
    tls_name: str | None = None
    _sent: bool = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's interface
        if self._sent:
            return b""
        self._sent = True
        return self.reply

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's interface
        self.written += buffer

    async def aclose(self) -> None:
        return None

    async def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        self.tls_name = server_hostname
        return self


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """The far side: records each address it is asked to connect to, answers `replies`."""

    def __init__(self, *replies: bytes) -> None:
        self.replies = list(replies)
        self.connected: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        stream = FakeStream(self.replies.pop(0))
        self.streams.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        return None


def client(
    resolver: Rebinding, network: FakeNetwork, allow: str = "", follow: bool = False
) -> httpx.AsyncClient:
    guard = DestinationGuard(parse_allowance(allow), resolver)
    transport = GuardedTransport(guard, network_backend=network)
    return httpx.AsyncClient(transport=transport, follow_redirects=follow)


async def test_a_rebinding_name_never_reaches_the_address_it_switches_to() -> None:
    resolver = Rebinding([GLOBAL], ["127.0.0.1"])
    network = FakeNetwork(OK, OK)
    async with client(resolver, network) as http:
        first = await http.get("http://hooks.school.test/a")
        # The first answer closed its connection: the second request connects anew,
        # and the name now answers loopback.
        with pytest.raises(DestinationRefusedError, match=r"resolves to 127\.0\.0\.1, a loopback"):
            await http.get("http://hooks.school.test/b")
    assert first.status_code == 200
    assert network.connected == [(GLOBAL, 80)]  # asked once, for the checked address only
    assert resolver.asked == [("hooks.school.test", 80), ("hooks.school.test", 80)]


async def test_the_host_header_and_tls_name_stay_the_name_while_the_ip_is_connected() -> None:
    network = FakeNetwork(OK)
    async with client(Rebinding([GLOBAL_2, GLOBAL]), network) as http:
        response = await http.get("https://hooks.school.test:8443/x")
    assert response.status_code == 200
    assert network.connected == [(GLOBAL_2, 8443)]  # the first answer, every one checked
    (stream,) = network.streams
    assert stream.tls_name == "hooks.school.test"
    assert b"\r\nHost: hooks.school.test:8443\r\n" in bytes(stream.written)


async def test_a_name_with_any_non_global_answer_is_refused_before_connecting() -> None:
    network = FakeNetwork(OK)
    async with client(Rebinding([GLOBAL, "169.254.169.254"]), network) as http:
        with pytest.raises(DestinationRefusedError, match=r"169\.254\.169\.254, a link-local"):
            await http.get("http://hooks.school.test/")
    assert network.connected == []


async def test_a_redirect_is_answered_not_followed() -> None:
    network = FakeNetwork(REDIRECT, OK)
    async with client(Rebinding([GLOBAL]), network) as http:
        response = await http.get("http://hooks.school.test/")
    assert (response.status_code, response.headers["location"]) == (
        302,
        "http://127.0.0.1:8090/v1/api-keys",
    )
    assert network.connected == [(GLOBAL, 80)]


async def test_a_redirect_followed_anyway_meets_the_guard_again() -> None:
    network = FakeNetwork(REDIRECT, OK)
    async with client(Rebinding([GLOBAL]), network, follow=True) as http:
        with pytest.raises(DestinationRefusedError, match=r"127\.0\.0\.1"):
            await http.get("http://hooks.school.test/")
    assert network.connected == [(GLOBAL, 80)]  # never 127.0.0.1:8090


async def test_the_allow_list_lets_loopback_through_only_when_set() -> None:
    refused, allowed = FakeNetwork(OK), FakeNetwork(OK)
    async with client(Rebinding(["127.0.0.1"]), refused) as http:
        with pytest.raises(DestinationRefusedError):
            await http.get("http://smtp-sim.test:2525/")
    async with client(Rebinding(["127.0.0.1"]), allowed, allow="127.0.0.1") as http:
        assert (await http.get("http://smtp-sim.test:2525/")).status_code == 200
    assert (refused.connected, allowed.connected) == ([], [("127.0.0.1", 2525)])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pw@hooks.school.test/", "credentials"),
        ("http://[::1]:8090/", "loopback"),
        ("http://0x7f000001/", "loopback"),
    ],
)
async def test_urls_refused_whatever_dns_says(url: str, message: str) -> None:
    network = FakeNetwork(OK)
    async with client(Rebinding([GLOBAL]), network) as http:
        with pytest.raises(DestinationRefusedError, match=message) as refused:
            await http.get(url)
    assert refused.value.request.url == httpx.URL(url)
    assert network.connected == []


async def test_a_name_that_does_not_resolve_is_a_retryable_connect_error() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError(-3, "Temporary failure in name resolution")

    guard = DestinationGuard(NO_ALLOWANCE, nowhere)
    network = FakeNetwork(OK)
    async with httpx.AsyncClient(transport=GuardedTransport(guard, network_backend=network)) as h:
        with pytest.raises(httpx.ConnectError) as failed:
            await h.get("http://hooks.school.test/")
    assert not isinstance(failed.value, DestinationRefusedError)  # DNS may recover: retried
    assert "does not resolve" in str(failed.value)
    assert network.connected == []
