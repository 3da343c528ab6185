"""Coverage-guided fuzzing of the ingress's decision (webhook_ingress.decision), every provider.

    .venv/bin/python -m fuzz.decision [libFuzzer flags]     (make fuzz runs it)

Two kinds of input, by the first byte: a generated case (fuzz.traffic, its choices
drawn from the fuzzer's bytes: valid deliveries and hostile variants, each with its
verdict), or a raw request (`provider\\0method\\0query\\0headers\\0body`) seeded with
every provider's valid delivery, which must never raise and never leak the secret.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qsl

import atheris

with atheris.instrument_imports(include=["webhook_ingress", "providers", "fuzz"]):
    import providers
    from fuzz import harness, known_bugs, traffic
    from fuzz.deliveries import SPECS, signed, webhooks
    from fuzz.mutations import Request, request_of
    from webhook_ingress.decision import Rejection, accept, check_route

harness.trust_paypal_signer()
TENANTS, TENANT = harness.fuzz_tenants()
TARGET = traffic.Target(TENANT, harness.BASE, harness.MAX_BODY)
NAMES = sorted(SPECS)
GENERATED, RAW = 0, 1


def serialize(provider: str, request: Request) -> bytes:
    headers = "\n".join(f"{k}: {v}" for k, v in request.headers)
    query = request.target.partition("?")[2]
    fields = [provider, request.method, query, headers]
    packed = b"\0".join(f.encode("latin-1", "replace") for f in fields)
    return bytes([RAW]) + packed + b"\0" + request.body


def parse(data: bytes) -> tuple[str, Request] | None:
    parts = data.split(b"\0", 4)
    if len(parts) != 5:
        return None
    provider, method, query, head = (p.decode("latin-1") for p in parts[:4])
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in head.split("\n")) if v]
    target = f"/webhooks/{provider}/fuzz" + (f"?{query}" if query else "")
    return provider, Request(method, target, headers, parts[4])


def seeds() -> list[bytes]:
    found = []
    for name in NAMES:
        valid = signed(name, TENANT, harness.BASE)
        found.append(serialize(name, request_of(valid.delivery)))
    return found


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] == RAW:
        raw(data[1:])
        return
    fdp = atheris.FuzzedDataProvider(data[1:])
    for sent in traffic.generate(harness.FdpChoices(fdp), TARGET, valid_share=20):
        harness.check(sent, _status(sent.request))


def _status(request: Request) -> int:
    try:
        return harness.decide(TENANTS, request)
    except Exception:
        if known_bugs.answered_500(request):
            return 500  # reported (fuzz/known_bugs.py): the ingress answers it 500
        raise


def raw(data: bytes) -> None:
    parsed = parse(data)
    if parsed is None:
        return
    provider, request = parsed
    status = _status(request)
    assert status < 500 or known_bugs.answered_500(request), (status, request)
    if status == 200 and provider in providers.with_webhooks():
        _no_secret_in_the_record(provider, request)


def _no_secret_in_the_record(provider: str, request: Request) -> None:
    keys = check_route(provider, "fuzz", TENANTS, request.method)
    assert isinstance(keys, list)
    record = accept(provider, "fuzz", keys, harness.delivery_of(request))
    if isinstance(record, Rejection):
        return
    for key in keys:
        leaked = [k for k, v in record.http_headers.items() if key.secret in v]
        assert leaked == [], (provider, "secret in the raw record's headers", leaked)
    if SPECS[provider].proof_query and webhooks(provider).body_format == "query":
        # A GET's query becomes its body: all of it but the token (the sender may
        # well copy the token's text into another field: that is theirs to send).
        fields = parse_qsl(record.body.decode("latin-1"), keep_blank_values=True)
        assert "token" not in dict(fields), (provider, "the token is in the raw record")


def main() -> None:
    harness.run(one_input, "decision", seeds(), sys.argv)


if __name__ == "__main__":
    main()
