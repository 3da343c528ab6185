"""Every webhook verifier, fuzzed: only the provider's own valid delivery passes.

Parametrized over providers.registry(): a provider declared with webhooks is fuzzed
as soon as it exists, and fails here until fuzz/deliveries.py can sign its deliveries.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import providers
from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import Tenant
from fuzz import deliveries, known_bugs
from fuzz.deliveries import SPECS, signed, verifies
from fuzz.mutations import (
    HEADER_CHANGES,
    Expect,
    Garble,
    HeaderChange,
    flip_byte,
    proof_variant,
    tampered_body_expect,
    with_body,
)
from providers.spec import Delivery
from schemas.events import RawWebhook
from webhook_ingress.decision import accept, check_route

WITH_WEBHOOKS = [p.name for p in providers.registry().values() if p.webhooks is not None]
BASE = "http://ingress.test"
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Verifiers that check a signed timestamp's signature but not its age: a delivery
# captured once verifies for ever. Each is a bug (strict: the test fails once it is
# fixed, and the entry in fuzz/known_bugs.py must go).
KNOWN_UNBOUNDED_TIMESTAMPS = known_bugs.UNBOUNDED_TIMESTAMPS


# demo_tenant_config draws new secrets each call: one directory for the whole module.
TENANTS = parse_tenants(tomllib.loads(demo_tenant_config("fuzz")))


def _tenant() -> Tenant:
    tenant = TENANTS.get("fuzz")
    assert tenant is not None
    return tenant


TENANT = _tenant()


@pytest.fixture(scope="module", autouse=True)
def paypal_certificates() -> Iterator[None]:
    # PayPal's certificate servers are the far side of its API: the store finds the
    # fuzz signer's certificate instead (the verifier's checks are all its own).
    verifier = deliveries.webhooks("paypal").verifier
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verifier, "certificates", deliveries.paypal_certificates())
        yield


def _fresh(provider: str, at: float | None = None) -> deliveries.Signed:
    # One marker: hypothesis replays an example and must get the same body.
    return signed(provider, TENANT, BASE, marker="f0a1b2c3d4e5", at=at)


@pytest.mark.parametrize("provider", WITH_WEBHOOKS)
def test_a_valid_delivery_of_every_provider_verifies(provider: str) -> None:
    assert provider in SPECS, f"fuzz/deliveries.py has no way to sign a {provider} delivery"
    valid = _fresh(provider)
    assert verifies(provider, valid.delivery, valid.secret, valid.account)


@pytest.mark.parametrize("provider", WITH_WEBHOOKS)
@FUZZ
@given(position=st.integers(min_value=0), value=st.integers(0, 255))
def test_one_changed_byte_of_what_is_signed_fails(provider: str, position: int, value: int) -> None:
    valid = _fresh(provider)
    tampered = with_body(valid.delivery, flip_byte(valid.delivery.body, position, value))
    expect = tampered_body_expect(SPECS[provider], valid.delivery, tampered)
    verdict = verifies(provider, tampered, valid.secret, valid.account)
    if expect is Expect.REFUSE:
        assert verdict is False, (tampered.body, tampered.headers)
    assert isinstance(verdict, bool)


@pytest.mark.parametrize("provider", [p for p in WITH_WEBHOOKS if p in SPECS])
@FUZZ
@given(
    index=st.integers(min_value=0),
    change=st.sampled_from(HEADER_CHANGES),
    position=st.integers(min_value=0),
    text=st.text(max_size=80),
)
def test_garbled_missing_truncated_or_duplicated_proofs_fail(
    provider: str, index: int, change: HeaderChange, position: int, text: str
) -> None:
    spec = SPECS[provider]
    if not (spec.proof_headers or spec.proof_query):
        pytest.skip(f"{provider} carries its proof inside the body: {spec.notes}")
    valid = _fresh(provider)
    garble = Garble(index, change, position, text)
    mutated, expect = proof_variant(spec, valid.delivery, garble)
    assume(known_bugs.raising(provider, mutated) is None)  # pinned below
    verdict = verifies(provider, mutated, valid.secret, valid.account)
    if expect is Expect.REFUSE:
        assert verdict is False, (change, mutated.headers, mutated.query)
    assert isinstance(verdict, bool)


TIMESTAMPED = [p for p in WITH_WEBHOOKS if p in SPECS and SPECS[p].window is not None]


def _timestamp_cases() -> list[object]:
    return [
        pytest.param(
            p,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_UNBOUNDED_TIMESTAMPS[p]),
        )
        if p in KNOWN_UNBOUNDED_TIMESTAMPS
        else p
        for p in TIMESTAMPED
    ]


def test_the_timestamped_verifiers_are_the_expected_ones() -> None:
    # A guard on the table above: a provider that signs a time is fuzzed for replays.
    assert {"stripe", "cashfree", "mailgun", "sendgrid", "paypal"} <= set(TIMESTAMPED)


@pytest.mark.parametrize("provider", _timestamp_cases())
@FUZZ
@given(
    beyond=st.floats(min_value=2, max_value=10**8, allow_nan=False),
    future=st.booleans(),
)
def test_stale_and_future_timestamps_fail(provider: str, beyond: float, future: bool) -> None:
    window = SPECS[provider].window
    assert window is not None
    offset = window + beyond
    old = _fresh(provider, at=time.time() + (offset if future else -offset))
    assert not verifies(provider, old.delivery, old.secret, old.account), offset


@pytest.mark.parametrize("provider", TIMESTAMPED)
@FUZZ
@given(
    within=st.floats(min_value=0, max_value=0.8, allow_nan=False),
    future=st.booleans(),
)
def test_timestamps_inside_the_window_still_verify(
    provider: str, within: float, future: bool
) -> None:
    window = SPECS[provider].window
    assert window is not None
    offset = window * within
    recent = _fresh(provider, at=time.time() + (offset if future else -offset))
    assert verifies(provider, recent.delivery, recent.secret, recent.account)


@pytest.mark.parametrize("provider", [p for p in WITH_WEBHOOKS if p in SPECS])
@FUZZ
@given(other=st.text(min_size=1, max_size=60))
def test_a_wrong_secret_fails(provider: str, other: str) -> None:
    valid = _fresh(provider)
    wrong = SPECS[provider].wrong
    secret, account = wrong(valid.account, valid.secret, other) if wrong else (other, valid.account)
    if wrong is None and secret == valid.secret:
        secret += "x"
    assert not verifies(provider, valid.delivery, secret, account)


def _header_names(provider: str) -> list[str]:
    spec = SPECS.get(provider)
    names = list(spec.proof_headers) if spec else []
    verifier = deliveries.webhooks(provider).verifier
    return [*names, verifier.signature_header or "x-signature", "content-type"]


@pytest.mark.parametrize("provider", WITH_WEBHOOKS)
@FUZZ
@given(data=st.data())
def test_no_verifier_raises_on_arbitrary_input(provider: str, data: st.DataObject) -> None:
    names = st.sampled_from(_header_names(provider)) | st.text(max_size=20)
    headers = data.draw(st.dictionaries(names, st.text(max_size=200), max_size=6))
    query = data.draw(st.dictionaries(st.sampled_from(["token", "kind"]), st.text(max_size=40)))
    body = data.draw(st.binary(max_size=2048) | st.text(max_size=400).map(str.encode))
    method = data.draw(st.sampled_from(["POST", "GET", "PUT", ""]))
    url = data.draw(st.sampled_from([f"{BASE}/webhooks/{provider}/fuzz", "", "http://[::1"]))
    remote = data.draw(st.sampled_from(["127.0.0.1", None, "not-an-address", "::1"]))
    secret = data.draw(st.sampled_from(["", _fresh(provider).secret]) | st.text(max_size=40))
    delivery = Delivery(method, url, query, headers, body, remote)
    # The bugs pinned below are left out here, so that this keeps looking for others.
    assume(known_bugs.raising(provider, delivery) is None)
    account = TENANT.accounts_for(provider)[0].config
    assert isinstance(verifies(provider, delivery, secret, account), bool)


# Inputs on which a verifier raised instead of answering False, each a bug the fuzzers
# found (the ingress answered them 500), with its minimal input; fixed, kept as
# regression cases.
ONCE_RAISING = {
    # Found by atheris (fuzz/decision.py): any sender chooses PAYPAL-CERT-URL.
    "paypal-unparseable-cert-url": Delivery(
        "POST",
        f"{BASE}/webhooks/paypal/fuzz",
        {},
        {
            "paypal-auth-algo": "SHA256withRSA",
            "paypal-transmission-id": "1",
            "paypal-transmission-sig": "c2ln",
            "paypal-transmission-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "paypal-cert-url": "http://[",
        },
        b"{}",
        "127.0.0.1",
    ),
    "razorpay-non-ascii-signature": Delivery(
        "POST",
        f"{BASE}/webhooks/razorpay/fuzz",
        {},
        {"x-razorpay-signature": "\x80"},
        b"",
        "127.0.0.1",
    ),
    "twilio-unparseable-url": Delivery(
        "POST",
        "http://[::1/webhooks/twilio/fuzz",
        {},
        {"x-twilio-signature": "0"},
        b"",
        "127.0.0.1",
    ),
}


@pytest.mark.parametrize("case", ONCE_RAISING)
def test_inputs_on_which_a_verifier_once_raised_are_refused(case: str) -> None:
    delivery = ONCE_RAISING[case]
    provider = case.split("-", 1)[0]
    account = TENANT.accounts_for(provider)[0].config
    assert verifies(provider, delivery, "s3cret", account) is False


@pytest.mark.parametrize("provider", [p for p in WITH_WEBHOOKS if p in SPECS])
def test_no_secret_of_a_valid_delivery_reaches_the_raw_record(provider: str) -> None:
    valid = _fresh(provider)
    keys = check_route(provider, "fuzz", TENANTS, valid.delivery.method)
    assert isinstance(keys, list)
    record = accept(provider, "fuzz", keys, valid.delivery)
    assert isinstance(record, RawWebhook), record
    assert valid.marker.encode() in record.body
    for name, value in record.http_headers.items():
        assert valid.secret not in value, (name, "holds the account's secret")
    assert valid.secret.encode() not in record.body
