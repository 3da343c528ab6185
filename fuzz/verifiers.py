"""Coverage-guided fuzzing of every provider's webhook verifier.

    .venv/bin/python -m fuzz.verifiers [libFuzzer flags]     (make fuzz runs it)

The fuzzer's bytes pick a provider and a way to attack its valid delivery: one byte
of the body changed, a proof header or token garbled, a timestamp out of its window,
or a delivery made of the bytes themselves. A verifier must answer False to every
forgery (fuzz.mutations' rules) and must never raise.
"""

from __future__ import annotations

import sys
import time

import atheris

with atheris.instrument_imports(include=["providers", "fuzz"]):
    from fuzz import harness, known_bugs
    from fuzz.deliveries import OUTSIDE_EVERY_WINDOW, SPECS, Signed, signed, verifies
    from fuzz.mutations import (
        HEADER_CHANGES,
        Expect,
        Garble,
        flip_byte,
        proof_variant,
        tampered_body_expect,
        with_body,
    )
    from providers.spec import Delivery

harness.trust_paypal_signer()
_, TENANT = harness.fuzz_tenants()
NAMES = sorted(SPECS)
# Signing (RSA for PayPal, ECDSA for SendGrid) costs more than verifying: each
# provider's delivery is signed once a minute, well inside every replay window.
_CACHE: dict[str, tuple[float, Signed]] = {}


def valid(provider: str) -> Signed:
    cached = _CACHE.get(provider)
    if cached is None or time.monotonic() - cached[0] > 60:
        cached = (time.monotonic(), signed(provider, TENANT, harness.BASE))
        _CACHE[provider] = cached
    return cached[1]


def _verdict(provider: str, delivery: Delivery, s: Signed) -> bool | None:
    """The verifier's answer; None when it raised on a known (reported) bug."""
    try:
        return verifies(provider, delivery, s.secret, s.account)
    except Exception:
        if known_bugs.raising(provider, delivery):
            return None
        raise


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    provider = NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    s = valid(provider)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        body = flip_byte(s.delivery.body, fdp.ConsumeIntInRange(0, 1 << 16), fdp.ConsumeInt(1))
        tampered = with_body(s.delivery, body)
        expect = tampered_body_expect(SPECS[provider], s.delivery, tampered)
        _judge(provider, tampered, s, expect)
    elif mode == 1:
        change = HEADER_CHANGES[fdp.ConsumeIntInRange(0, len(HEADER_CHANGES) - 1)]
        garble = Garble(
            fdp.ConsumeIntInRange(0, 7),
            change,
            fdp.ConsumeIntInRange(0, 512),
            fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64)),
        )
        mutated, expect = proof_variant(SPECS[provider], s.delivery, garble)
        _judge(provider, mutated, s, expect)
    elif mode == 2:
        _stale(provider, s, fdp)
    else:
        _arbitrary(provider, s, fdp)


def _judge(provider: str, delivery: Delivery, s: Signed, expect: Expect) -> None:
    verdict = _verdict(provider, delivery, s)
    if expect is Expect.REFUSE:
        assert verdict is not True, (provider, "forgery verified", delivery)


def _stale(provider: str, s: Signed, fdp: atheris.FuzzedDataProvider) -> None:
    window = SPECS[provider].window
    if window is None or known_bugs.unbounded_timestamp(provider):
        return
    offset = OUTSIDE_EVERY_WINDOW + fdp.ConsumeIntInRange(0, 10**9)
    at = time.time() + (offset if fdp.ConsumeBool() else -offset)
    old = signed(provider, TENANT, harness.BASE, marker=s.marker, at=at)
    assert _verdict(provider, old.delivery, s) is not True, (provider, "stale verified", at)


def _arbitrary(provider: str, s: Signed, fdp: atheris.FuzzedDataProvider) -> None:
    names = [*SPECS[provider].proof_headers, "content-type"]
    headers = {
        names[fdp.ConsumeIntInRange(0, len(names) - 1)]: fdp.ConsumeUnicodeNoSurrogates(
            fdp.ConsumeIntInRange(0, 200)
        )
        for _ in range(fdp.ConsumeIntInRange(0, 4))
    }
    query = {"token": fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60))}
    url = s.delivery.url if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(80)
    method = "POST" if fdp.ConsumeBool() else "GET"
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    delivery = Delivery(method, url, query, headers, body, "127.0.0.1")
    _verdict(provider, delivery, s)  # the verdict is anything; raising is the bug


def main() -> None:
    seeds = [bytes([i, m]) + bytes(16) for i in range(len(NAMES)) for m in range(4)]
    harness.run(one_input, "verifiers", seeds, sys.argv)


if __name__ == "__main__":
    main()
