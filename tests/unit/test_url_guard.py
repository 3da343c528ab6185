"""The SSRF guard (core.url_guard): every address form a tenant's URL could hide behind."""

from __future__ import annotations

import re
import socket

import pytest

from core.url_guard import CheckedUrl, UnsafeUrlError, check_url, system_resolver

GLOBAL = "93.184.216.34"


def fake(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")  # no DNS asked
        return system_resolver(host, port)  # literals and localhost resolve offline

    return resolve


RESOLVE = fake(
    {
        "school.example": [GLOBAL],
        "rebind.example": [GLOBAL, "10.0.0.5"],
        "meta.example": ["169.254.169.254"],
        "v6.example": ["2606:4700::6810:84e5"],
    }
)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/hook", "a loopback address"),
        ("http://localhost:8090/v1", "a loopback address"),
        ("http://2130706433/", "a loopback address"),  # 127.0.0.1 in decimal
        ("http://0x7f000001/", "a loopback address"),  # ... in hex
        ("http://127.1/", "a loopback address"),  # ... shortened
        ("http://0.0.0.0/", "an unspecified address"),
        ("http://10.1.2.3/", "a private address"),
        ("http://172.16.0.9/", "a private address"),
        ("http://192.168.1.1/", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://meta.example/", "a link-local address"),
        ("http://100.64.0.1/", "not a global address"),  # shared address space (CGNAT)
        ("http://224.0.0.1/", "a multicast address"),
        ("http://240.0.0.1/", "a reserved address"),
        ("http://[::1]/", "a loopback address"),
        ("http://[::]/", "an unspecified address"),
        ("http://[fc00::1]/", "a private address"),  # unique local
        ("http://[fd12:3456::1]/", "a private address"),
        ("http://[fe80::1]/", "a link-local address"),
        ("http://[::ffff:127.0.0.1]/", "a loopback address (inside ::ffff:7f00:1)"),
        ("http://[::ffff:169.254.169.254]/", "a link-local address (inside ::ffff:a9fe:a9fe)"),
        ("http://[2002:a00:1::]/", "a private address (inside 2002:a00:1::)"),  # 6to4 of 10.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/", "a link-local address (inside 64:ff9b::a9fe:a9fe)"),
        ("http://rebind.example/", "a private address"),  # one bad answer is enough
    ],
)
def test_every_non_global_address_form_is_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrlError, match="refused") as refused:
        check_url(url, RESOLVE)
    assert why in str(refused.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https URLs may be called, not 'file'"),
        ("gopher://school.example/", "only http and https URLs may be called, not 'gopher'"),
        ("ftp://school.example/", "only http and https URLs may be called, not 'ftp'"),
        ("//school.example/x", "only http and https URLs may be called, not 'none'"),
        ("http://user@school.example/", "a URL with credentials in it (user@host) is refused"),
        ("http:///path", "names no host"),
        ("http://school.example:99999/", "has an invalid port"),
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_schemes_credentials_and_unresolvable_hosts_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeUrlError, match=re.escape(message)):
        check_url(url, RESOLVE)


def test_a_global_address_is_allowed_and_the_checked_address_is_the_one_to_connect_to() -> None:
    assert check_url("https://school.example/hooks?a=1", RESOLVE) == CheckedUrl(
        "https://school.example/hooks?a=1", "https", "school.example", 443, GLOBAL
    )
    assert check_url("http://v6.example:8080/", RESOLVE).address == "2606:4700::6810:84e5"
    assert check_url(f"http://{GLOBAL}/", RESOLVE).port == 80
