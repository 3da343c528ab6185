"""Generated ingress traffic: valid deliveries among hostile ones, each with its verdict.

`generate` draws one case (one request, or a valid one and its replay) through a
`Choices`: hypothesis' data in tests/fuzz/, a seeded random.Random in the load run,
the fuzzer's bytes in fuzz/decision.py. The rules for what must be accepted or
refused are fuzz.mutations'.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import quote, urlencode

import providers
from core.tenants import Tenant
from fuzz import known_bugs, mutations
from fuzz.deliveries import OUTSIDE_EVERY_WINDOW, SPECS, Signed, signed, webhooks
from fuzz.mutations import HEADER_CHANGES, Expect, Garble, Request, request_of

T = TypeVar("T")


class Choices(Protocol):
    def integer(self, low: int, high: int) -> int: ...
    def binary(self, most: int) -> bytes: ...
    def text(self, most: int) -> str: ...


def pick(choices: Choices, options: Sequence[T]) -> T:
    return options[choices.integer(0, len(options) - 1)]


class RandomChoices:
    """Choices from a seeded generator (the load run: reproducible by its seed)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - fuzzing, not cryptography

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def binary(self, most: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, most))

    def text(self, most: int) -> str:
        size = self.rng.randint(0, most)
        # Mostly printable ASCII, some Latin-1 and beyond (header values, tokens, paths).
        return "".join(chr(self._code()) for _ in range(size))

    def _code(self) -> int:
        return self.rng.randint(32, 126) if self.rng.random() < 0.8 else self.rng.randint(0, 0x2FF)


@dataclass(frozen=True)
class Sent:
    """One request and what the ingress must do with it."""

    request: Request
    expect: Expect
    marker: str | None  # the valid delivery's marker it came from (None: pure junk)
    kind: str


@dataclass(frozen=True)
class Target:
    tenant: Tenant
    base_url: str  # as the ingress sees its own URL (Twilio signs it)
    max_body: int  # the ingress's body limit


Mutator = Callable[[Choices, Target, Signed], list[Sent]]


def _valid(_c: Choices, _t: Target, s: Signed) -> list[Sent]:
    return [Sent(request_of(s.delivery), Expect.ACCEPT, s.marker, "valid")]


def _valid_chunked(_c: Choices, _t: Target, s: Signed) -> list[Sent]:
    return [Sent(request_of(s.delivery, chunked=True), Expect.ACCEPT, s.marker, "valid-chunked")]


def _replay(_c: Choices, _t: Target, s: Signed) -> list[Sent]:
    # The same delivery twice (a provider's retry, or an attacker's replay): the first
    # is accepted; the second is a duplicate the ingress may accept again or refuse.
    first = Sent(request_of(s.delivery), Expect.ACCEPT, s.marker, "valid")
    return [first, Sent(request_of(s.delivery), Expect.EITHER, s.marker, "replay")]


def _tampered(c: Choices, _t: Target, s: Signed) -> list[Sent]:
    body = mutations.flip_byte(s.delivery.body, c.integer(0, 1 << 16), c.integer(0, 255))
    tampered = mutations.with_body(s.delivery, body)
    expect = mutations.tampered_body_expect(SPECS[s.provider], s.delivery, tampered)
    if webhooks(s.provider).body_format == "query":
        expect = Expect.EITHER  # a GET's body is not read at all
    return [Sent(request_of(tampered), expect, s.marker, "tampered-byte")]


def _garbled_proof(c: Choices, _t: Target, s: Signed) -> list[Sent]:
    garble = Garble(c.integer(0, 7), pick(c, HEADER_CHANGES), c.integer(0, 512), c.text(40))
    spec = SPECS[s.provider]
    if not (spec.proof_headers or spec.proof_query):
        return _tampered(c, _t, s)  # the proof is in the body: tamper with it there
    mutated, expect = mutations.proof_variant(spec, s.delivery, garble)
    return [Sent(request_of(mutated), expect, s.marker, f"proof-{garble.change}")]


def _non_ascii_proof(c: Choices, _t: Target, s: Signed) -> list[Sent]:
    spec = SPECS[s.provider]
    if not spec.proof_headers:
        return _bad_body(c, _t, s)
    name = pick(c, spec.proof_headers)
    before = s.delivery.headers.get(name, "")
    # \xa0 is white space to str.strip(): a stripped proof is still the proof.
    value = before + pick(c, ["\xe9", "\x80", "\xff", "\xa0"])
    mutated = mutations.with_header(s.delivery, name, value)
    expect = mutations.proof_expect(spec, before, value, name)
    return [Sent(request_of(mutated), expect, s.marker, "non-ascii-proof")]


def _stale(c: Choices, target: Target, s: Signed) -> list[Sent]:
    window = SPECS[s.provider].window
    if window is None:
        return _garbled_proof(c, target, s)
    offset = OUTSIDE_EVERY_WINDOW + c.integer(0, 10**7)
    at = time.time() + (offset if c.integer(0, 1) else -offset)
    old = signed(s.provider, target.tenant, target.base_url, marker=s.marker, at=at)
    # A verifier that does not bound its timestamp (a known bug): not yet a refusal.
    expect = Expect.EITHER if known_bugs.unbounded_timestamp(s.provider) else Expect.REFUSE
    return [Sent(request_of(old.delivery), expect, s.marker, "stale")]


def _content_type(c: Choices, _t: Target, s: Signed) -> list[Sent]:
    wrong = pick(
        c, ["text/plain", "application/xml", "", "application/jsonx", "multipart/form-data"]
    )
    mutated = mutations.with_header(s.delivery, "content-type", wrong or None)
    query = webhooks(s.provider).body_format == "query"
    expect = Expect.EITHER if query else Expect.REFUSE
    return [Sent(request_of(mutated), expect, s.marker, "content-type")]


def _bad_body(c: Choices, _t: Target, s: Signed) -> list[Sent]:
    body = s.delivery.body
    options = [
        b"\xff\xfe" + c.binary(64),  # never UTF-8
        # A proper prefix: never a whole JSON value. Its length is drawn from a fixed
        # range (the body's length varies: Paytm's checksum), so a replay draws the same.
        body[: c.integer(0, 1 << 16) % max(len(body), 1)],
    ]
    bad = pick(c, options)
    mutated = mutations.with_body(s.delivery, bad)
    fmt = webhooks(s.provider).body_format
    if fmt == "json" or bad.startswith(b"\xff\xfe"):
        expect = Expect.REFUSE if fmt != "query" else Expect.EITHER
    else:
        expect = mutations.tampered_body_expect(SPECS[s.provider], s.delivery, mutated)
    return [Sent(request_of(mutated), expect, s.marker, "bad-body")]


def _oversized(c: Choices, target: Target, s: Signed) -> list[Sent]:
    # The provider's own limit where it declares one (SendGrid's batches), else the ingress's.
    declared = getattr(webhooks(s.provider), "max_body_bytes", None)
    limit = declared if isinstance(declared, int) else target.max_body
    extra = limit + 1 + c.integer(0, 4096)
    body = s.delivery.body + b" " * extra
    mutated = mutations.with_body(s.delivery, body)
    chunked = bool(c.integer(0, 1))
    expect = Expect.EITHER if webhooks(s.provider).body_format == "query" else Expect.REFUSE
    return [Sent(request_of(mutated, chunked=chunked), expect, s.marker, "oversized")]


def _misrouted(c: Choices, target: Target, s: Signed) -> list[Sent]:
    request = request_of(s.delivery)
    others = [p for p in providers.with_webhooks() if p != s.provider]
    path = pick(
        c,
        [
            f"/webhooks/{s.provider}/nobody-{c.integer(0, 99)}",  # unknown tenant
            f"/webhooks/nosuch/{target.tenant.id}",  # unknown provider
            f"/webhooks/{pick(c, others)}/{target.tenant.id}",  # another provider's route
            f"/webhooks/{s.provider}",
            "/" + quote(c.text(30)),
        ],
    )
    if path.rstrip("/") in ("/healthz", "/readyz"):
        path = "/nowhere"  # the health checks answer 200 to anyone, by design
    query = request.target.partition("?")[2]
    method = pick(c, ["PUT", "DELETE", "PATCH", request.method])
    target_path = path + (f"?{query}" if query else "")
    moved = Request(method, target_path, request.headers, request.body, request.chunked)
    return [Sent(moved, Expect.REFUSE, s.marker, "misrouted")]


def _junk(c: Choices, target: Target, _s: Signed) -> list[Sent]:
    provider = pick(c, [*providers.with_webhooks(), "nosuch"])
    names = ["content-type", "x-razorpay-signature", "stripe-signature", "verif-hash"]
    headers = [(pick(c, names), mutations.http_safe(c.text(60))) for _ in range(c.integer(0, 4))]
    junk_token = urlencode({"token": c.text(20)})
    target_path = f"/webhooks/{provider}/{target.tenant.id}?{pick(c, ['', junk_token])}"
    request = Request(pick(c, ["POST", "GET"]), target_path, headers, c.binary(600))
    return [Sent(request, Expect.REFUSE, None, "junk")]


MUTATORS: dict[str, Mutator] = {
    "tampered": _tampered,
    "garbled-proof": _garbled_proof,
    "non-ascii-proof": _non_ascii_proof,
    "stale": _stale,
    "content-type": _content_type,
    "bad-body": _bad_body,
    "oversized": _oversized,
    "misrouted": _misrouted,
    "junk": _junk,
}
VALID: dict[str, Mutator] = {"valid": _valid, "valid-chunked": _valid_chunked, "replay": _replay}


def generate(c: Choices, target: Target, *, valid_share: int = 15) -> list[Sent]:
    """One case: valid (about `valid_share` percent of cases) or a hostile variant of one."""
    provider = pick(c, sorted(SPECS))
    base = signed(provider, target.tenant, target.base_url)
    if c.integer(0, 99) < valid_share:
        return VALID[pick(c, sorted(VALID))](c, target, base)
    return MUTATORS[pick(c, sorted(MUTATORS))](c, target, base)
