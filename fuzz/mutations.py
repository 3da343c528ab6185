"""Hostile variants of a signed delivery, each with what the ingress must answer.

Pure functions of explicit choices (a position, a byte, a way to garble), so that
hypothesis (tests/fuzz/), atheris (fuzz/*.py) and the load run's seeded random
generator (bench/fuzz_ingress.py) draw the choices their own way and share the rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from fuzz.signing import Spec, decoded
from providers.spec import Delivery

HeaderChange = Literal[
    "missing", "empty", "truncated", "case", "duplicated", "garbled", "byte", "padded"
]
HEADER_CHANGES: tuple[HeaderChange, ...] = (
    "missing",
    "empty",
    "truncated",
    "case",
    "duplicated",
    "garbled",
    "byte",
    "padded",
)


class Expect(Enum):
    ACCEPT = "accept"  # 200, and on the raw topic
    REFUSE = "refuse"  # 4xx, never 2xx, never on the raw topic
    EITHER = "either"  # the proof still stands (a same-meaning change): 200 or 4xx


def with_body(delivery: Delivery, body: bytes) -> Delivery:
    return dataclasses.replace(delivery, body=body)


def flip_byte(body: bytes, position: int, value: int) -> bytes:
    """`body` with the byte at `position % len` replaced by a different one (`value` mod 256)."""
    if not body:
        return bytes([value % 256])
    index = position % len(body)
    new = value % 256
    if new == body[index]:
        new = (new + 1) % 256
    return body[:index] + bytes([new]) + body[index + 1 :]


def tampered_body_expect(spec: Spec, before: Delivery, after: Delivery) -> Expect:
    """A change to what the proof covers must be refused; to anything else, it may pass."""
    if spec.covers is None or spec.covers(before) == spec.covers(after):
        return Expect.EITHER
    return Expect.REFUSE


@dataclass(frozen=True)
class Garble:
    """How one proof (a header or query parameter) is changed."""

    index: int  # which of the provider's proof headers and parameters
    change: HeaderChange
    position: int  # where, for "truncated" and "byte"
    text: str  # what, for "garbled", "padded" and "byte"


def _one_char_changed(value: str, g: Garble) -> str:
    if not value:
        return g.text
    index = g.position % len(value)
    replacement = g.text[:1] or "x"
    if replacement == value[index]:
        replacement = "0" if replacement != "0" else "1"
    return value[:index] + replacement + value[index + 1 :]


_CHANGES: dict[HeaderChange, Callable[[str, Garble], str | None]] = {
    "missing": lambda _v, _g: None,
    "empty": lambda _v, _g: "",
    "truncated": lambda v, g: v[: g.position % max(len(v), 1)],
    "case": lambda v, _g: v.swapcase(),
    "duplicated": lambda v, _g: f"{v}, {v}",  # how HTTP folds a repeated header into one
    "garbled": lambda _v, g: g.text,
    "padded": lambda v, g: f"{v}{g.text}",
    "byte": _one_char_changed,
}


def changed_value(value: str, garble: Garble) -> str | None:
    """The value changed as a forger (or a broken proxy) would; None: the header is gone."""
    return _CHANGES[garble.change](value, garble)


def proof_expect(spec: Spec, before: str, after: str | None, name: str = "") -> Expect:
    if after is None:
        return Expect.REFUSE
    if name in spec.base64_headers and decoded(before) == decoded(after):
        return Expect.EITHER
    if name in spec.url_headers and _same_url(before, after):
        return Expect.EITHER
    a, b = before.strip(), after.strip()
    if spec.case_insensitive:
        a, b = a.lower(), b.lower()
    if a == b or (spec.comma_list and _items(a) <= _items(b)):
        # Every item of the proof is still there (Stripe: any one matching v1 passes).
        return Expect.EITHER
    return Expect.REFUSE


def _same_url(before: str, after: str) -> bool:
    try:
        a, b = urlsplit(before.strip()), urlsplit(after.strip())
    except ValueError:
        return False
    # Scheme and host are case-insensitive; the rest is compared as written.
    return (a.scheme.lower(), a.netloc.lower(), a.path, a.query, a.fragment) == (
        b.scheme.lower(),
        b.netloc.lower(),
        b.path,
        b.query,
        b.fragment,
    )


def _items(value: str) -> set[str]:
    return {item.strip() for item in value.split(",")}


def with_header(delivery: Delivery, name: str, value: str | None) -> Delivery:
    headers = {k: v for k, v in delivery.headers.items() if k != name}
    if value is not None:
        headers[name] = value
    return dataclasses.replace(delivery, headers=headers)


def with_query(delivery: Delivery, name: str, value: str | None) -> Delivery:
    query = {k: v for k, v in delivery.query.items() if k != name}
    if value is not None:
        query[name] = value
    parts = urlsplit(delivery.url)
    url = urlunsplit(parts._replace(query=urlencode(query)))
    return dataclasses.replace(delivery, url=url, query=query)


def proof_variant(spec: Spec, delivery: Delivery, garble: Garble) -> tuple[Delivery, Expect]:
    """One of the delivery's proof headers or query parameters changed."""
    places = [("header", h) for h in spec.proof_headers] + [("query", q) for q in spec.proof_query]
    if not places:
        return delivery, Expect.ACCEPT
    kind, name = places[garble.index % len(places)]
    source = delivery.headers if kind == "header" else delivery.query
    before = source.get(name, "")
    after = changed_value(before, garble)
    if kind == "header" and after is not None:
        after = http_safe(after)
    mutated = (with_header if kind == "header" else with_query)(delivery, name, after)
    return mutated, proof_expect(spec, before, after, name)


def http_safe(value: str) -> str:
    """`value` as an HTTP header can carry it: Latin-1 (obs-text kept), no control
    characters but the tab (clients refuse to send them, servers to read them)."""
    kept = value.encode("latin-1", "replace").decode("latin-1")
    return "".join(ch for ch in kept if ch == "\t" or not (ord(ch) < 32 or ord(ch) == 127))


@dataclass(frozen=True)
class Request:
    """An HTTP request to send: what an attacker controls, all of it."""

    method: str
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool = False  # sent without Content-Length, in pieces


def request_of(delivery: Delivery, *, chunked: bool = False) -> Request:
    parts = urlsplit(delivery.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = [(k, http_safe(v)) for k, v in delivery.headers.items()]
    return Request(delivery.method, target, headers, delivery.body, chunked)


def chunks(body: bytes, size: int) -> list[bytes]:
    size = max(size, 1)
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]
