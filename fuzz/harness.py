"""What the atheris harnesses share: the fuzzer's bytes as choices, the ingress's
decision without its I/O, the verdict rules, and the libFuzzer run itself.

A failed rule raises AssertionError: libFuzzer reports it as a crash, saves the input
under fuzz/crashes/ and exits non-zero (`make fuzz` fails).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import Tenant, TenantDirectory
from fuzz import known_bugs
from fuzz.deliveries import paypal_certificates
from fuzz.deliveries import webhooks as provider_webhooks
from fuzz.mutations import Expect, Request
from fuzz.traffic import Sent
from providers.paypal_webhooks import PayPalVerifier
from providers.spec import Delivery
from webhook_ingress.decision import (
    Rejection,
    accept,
    answer_challenge,
    body_limit,
    check_headers,
    check_route,
)

HERE = Path(__file__).resolve().parent
BASE = "http://ingress.test"
MAX_BODY = 16 * 1024
REMOTE_ADDR = "127.0.0.1"


def fuzz_tenants() -> tuple[TenantDirectory, Tenant]:
    """A demo tenant "fuzz" (new secrets each call) and the directory holding it."""
    tenants = parse_tenants(tomllib.loads(demo_tenant_config("fuzz")))
    tenant = tenants.get("fuzz")
    if tenant is None:
        raise LookupError("the demo tenant file has no tenant 'fuzz'")
    return tenants, tenant


def trust_paypal_signer() -> None:
    """PayPal's certificate servers are the far side of its API: in this process its
    verifier's store finds fuzz.deliveries' certificate instead (its checks are its own)."""
    verifier = provider_webhooks("paypal").verifier
    if not isinstance(verifier, PayPalVerifier):
        raise TypeError(f"PayPal's verifier is a {type(verifier).__name__} now: update fuzz/")
    verifier.certificates = paypal_certificates()


class FdpChoices:
    """fuzz.traffic.Choices from libFuzzer's bytes (atheris.FuzzedDataProvider)."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def integer(self, low: int, high: int) -> int:
        return int(self.fdp.ConsumeIntInRange(low, high))

    def binary(self, most: int) -> bytes:
        return bytes(self.fdp.ConsumeBytes(self.fdp.ConsumeIntInRange(0, most)))

    def text(self, most: int) -> str:
        return str(self.fdp.ConsumeUnicodeNoSurrogates(self.fdp.ConsumeIntInRange(0, most)))


def delivery_of(request: Request) -> Delivery:
    """The Delivery the ingress builds of this request (lower-cased names, last one wins)."""
    query = dict(parse_qsl(request.target.partition("?")[2], keep_blank_values=True))
    headers = {k.lower(): v for k, v in request.headers}
    return Delivery(
        request.method, BASE + request.target, query, headers, request.body, REMOTE_ADDR
    )


def decide(tenants: TenantDirectory, request: Request) -> int:
    """The status the ingress answers `request` with, up to (not including) Kafka."""
    parts = urlsplit(request.target).path.split("/")
    if len(parts) != 4 or parts[1] != "webhooks" or request.method not in ("GET", "POST"):
        return 404 if request.method in ("GET", "POST") else 405
    provider, tenant = parts[2], parts[3]
    delivery = delivery_of(request)
    challenge = answer_challenge(provider, tenant, tenants, request.method, delivery.query)
    if challenge is not None:
        return challenge.status
    route = check_route(provider, tenant, tenants, request.method)
    if isinstance(route, Rejection):
        return route.status
    webhooks = provider_webhooks(provider)
    limit = body_limit(webhooks, MAX_BODY)
    if webhooks.body_format != "query":
        headers = {**delivery.headers, "content-length": str(len(request.body))}
        rejection = check_headers(headers, limit, webhooks.body_format)
        if rejection is not None:
            return rejection.status
    if len(request.body) > limit:
        return 413
    outcome = accept(provider, tenant, route, delivery)
    return outcome.status if isinstance(outcome, Rejection) else 200


def check(sent: Sent, status: int) -> None:
    if status >= 500 and known_bugs.answered_500(sent.request):
        return
    what = (sent.kind, sent.request)
    assert status < 500, (status, what)
    if sent.expect is Expect.ACCEPT:
        assert status == 200, (status, what)
    elif sent.expect is Expect.REFUSE:
        assert 400 <= status < 500, (status, what)


def run(
    one_input: Callable[[bytes], None], name: str, seeds: Iterable[bytes], argv: list[str]
) -> None:
    """libFuzzer over `one_input`, from `seeds` plus what earlier runs learned.

    FUZZ_SECONDS bounds the run (default 300); crashes go to fuzz/crashes/<name>-*."""
    import atheris  # noqa: PLC0415 - the `fuzz` extra; `make test` never needs it

    if any(Path(a).is_file() for a in argv[1:]):
        atheris.Setup(argv, one_input)  # reproduce: run the inputs given, once each
        atheris.Fuzz()
        return
    corpus = HERE / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds):
        (corpus / f"seed-{index:03d}").write_bytes(seed)
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    seconds = os.environ.get("FUZZ_SECONDS", "300")
    args = [
        argv[0],
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/{name}-",
        "-max_len=8192",
        "-timeout=20",
        "-print_final_stats=1",
        *argv[1:],
        str(corpus),
    ]
    atheris.Setup(args, one_input)
    atheris.Fuzz()
