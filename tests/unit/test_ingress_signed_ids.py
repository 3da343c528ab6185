"""The ingress keys deliveries by signed material only, and keeps signatures off Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest

import providers
from providers.cashfree_webhooks import CashfreeVerifier
from providers.flutterwave import FlutterwaveVerifier
from providers.razorpay import RazorpayVerifier, razorpay_event_id
from providers.spec import Delivery
from providers.stripe_webhooks import StripeVerifier
from providers.whatsapp_webhooks import WhatsAppVerifier
from schemas.events import RawWebhook
from webhook_ingress.decision import WebhookKey, accept, recorded_headers

SECRET = "whsec-0123456789"


def razorpay_body(event: str = "payment.captured", payment: str = "pay_Q1", **extra: Any) -> dict:
    return {
        "entity": "event",
        "account_id": "acc_1",
        "event": event,
        "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": payment, "order_id": "order_O1", "amount": 100}}},
        "created_at": 1767225600,
        **extra,
    }


def razorpay_delivery(body: bytes, event_id: str) -> Delivery:
    headers = {
        "content-type": "application/json",
        "x-razorpay-signature": RazorpayVerifier().sign(body, SECRET),
        "x-razorpay-event-id": event_id,
    }
    return Delivery("POST", "http://ingress.test/webhooks/razorpay/t1", {}, headers, body, None)


def accepted(delivery: Delivery, provider: str = "razorpay") -> RawWebhook:
    raw = accept(provider, "t1", [WebhookKey("main", SECRET)], delivery)
    assert isinstance(raw, RawWebhook), raw
    return raw


# --- Razorpay: the id comes from the signed body -------------------------------------


def test_a_razorpay_event_is_named_by_its_event_entities_and_creation_time() -> None:
    assert razorpay_event_id(razorpay_body()) == "payment.captured:pay_Q1:1767225600"
    both = razorpay_body("order.paid", contains=["payment", "order"])
    both["payload"]["order"] = {"entity": {"id": "order_O1"}}
    assert razorpay_event_id(both) == "order.paid:pay_Q1/order_O1:1767225600"


def test_a_replay_under_a_new_event_id_header_is_the_same_delivery() -> None:
    body = json.dumps(razorpay_body()).encode()
    first = accepted(razorpay_delivery(body, "evt_original0001"))
    replay = accepted(razorpay_delivery(body, "evt_attacker0002"))
    assert (
        first.provider_event_id
        == replay.provider_event_id
        == ("payment.captured:pay_Q1:1767225600")
    )
    # The normalizer's dedup entry (and partition) is the raw record's key.
    assert first.key() == replay.key() == "razorpay:t1:payment.captured:pay_Q1:1767225600"
    assert replay.http_headers["x-razorpay-event-id"] == "evt_attacker0002"  # information only


def test_a_retry_serialised_differently_is_the_same_delivery() -> None:
    compact = json.dumps(razorpay_body(), separators=(",", ":")).encode()
    spaced = json.dumps(dict(reversed(razorpay_body().items())), indent=2).encode()
    assert compact != spaced
    ids = {accepted(razorpay_delivery(b, "evt_1")).provider_event_id for b in (compact, spaced)}
    assert ids == {"payment.captured:pay_Q1:1767225600"}


@pytest.mark.parametrize(
    "other",
    [
        razorpay_body("payment.failed"),  # another event about the same payment
        razorpay_body(payment="pay_Q2"),  # the same event about another payment
        razorpay_body(created_at=1767225601),
    ],
)
def test_different_events_get_different_ids(other: dict) -> None:
    assert razorpay_event_id(other) != razorpay_event_id(razorpay_body())


@pytest.mark.parametrize(
    "body",
    [
        {"event": "payment.captured", "payload": {}},  # no created_at
        {"event": "payment.captured", "created_at": 1, "payload": {"payment": {}}},  # no entity
        {"created_at": 1, "payload": {"payment": {"entity": {"id": "pay_1"}}}},  # no event
        {"event": "x", "created_at": "1", "payload": {"payment": {"entity": {"id": "pay_1"}}}},
    ],
)
def test_a_body_without_those_fields_has_no_derived_id(body: dict) -> None:
    assert razorpay_event_id(body) is None


def test_no_provider_keys_a_delivery_by_its_event_id_header() -> None:
    # Whatever a verifier declares as event_id_header, changing only that header
    # never changes the id (it is not signed for Razorpay, the one that sends one).
    body = json.dumps({"event": "payment.captured", "payload": {}}).encode()
    ids = {accepted(razorpay_delivery(body, f"evt_{n}")).provider_event_id for n in range(3)}
    assert len(ids) == 1
    assert ids != {"evt_0"}


# --- signatures never reach the raw record --------------------------------------------

JSON_BODY = b'{"id":"evt_S1","event":"payment.captured","type":"payment_intent.succeeded"}'


@pytest.mark.parametrize(
    ("provider", "verifier"),
    [
        ("razorpay", RazorpayVerifier()),
        ("cashfree", CashfreeVerifier()),
        ("stripe", StripeVerifier()),
        ("whatsapp", WhatsAppVerifier()),
        ("flutterwave", FlutterwaveVerifier()),
    ],
)
def test_an_accepted_delivery_keeps_no_signature_header(provider: str, verifier: Any) -> None:
    signed = verifier.signed_headers(JSON_BODY, SECRET)
    headers = {"content-type": "application/json", "user-agent": "provider/1", **signed}
    delivery = Delivery("POST", "http://ingress.test/x", {}, headers, JSON_BODY, None)
    raw = accepted(delivery, provider)
    assert verifier.signature_header in signed
    assert verifier.signature_header not in raw.http_headers
    assert raw.http_headers["user-agent"] == "provider/1"
    # Flutterwave's verif-hash is the account's secret itself: nowhere in the record.
    assert SECRET not in json.dumps(raw.http_headers)


@pytest.mark.parametrize("name", providers.with_webhooks())
def test_no_providers_signature_header_is_recorded(name: str) -> None:
    webhooks = providers.get(name).webhooks
    assert webhooks is not None
    verifier = webhooks.verifier
    try:
        signed = verifier.signed_headers(JSON_BODY, SECRET)
    except NotImplementedError:  # signed by a private key or over the URL: named instead
        signed = {verifier.signature_header: "sig"}
    headers = {**signed, "content-type": "application/json"}
    kept = recorded_headers(headers, verifier)
    assert verifier.signature_header not in kept
    assert kept["content-type"] == "application/json"
    # What stays besides the content type is a timestamp at most (Stripe's is inside its
    # signature header; Cashfree's stands alone and signs nothing by itself).
    assert set(kept) - {"content-type"} <= {"x-webhook-timestamp"}


@pytest.mark.parametrize(
    "header",
    [
        "stripe-signature",
        "x-twilio-signature",
        "x-hub-signature-256",
        "x-hub-signature",
        "x-twilio-email-event-webhook-signature",
        "paypal-transmission-sig",
        "verif-hash",
        "x-webhook-signature",
        "x-razorpay-signature",
        "authorization",
        "cookie",
        "x-api-key",
        "x-webhook-secret",
        "x-callback-token",
    ],
)
def test_signature_like_headers_of_any_provider_are_dropped(header: str) -> None:
    # Under Razorpay's verifier too: a header another provider would sign with is
    # still a credential when it arrives somewhere else.
    kept = recorded_headers({header: "v", "user-agent": "u"}, RazorpayVerifier())
    assert kept == {"user-agent": "u"}


@pytest.mark.parametrize(
    "header",
    ["x-razorpay-event-id", "paypal-transmission-id", "x-webhook-timestamp", "user-agent"],
)
def test_headers_that_prove_nothing_are_kept(header: str) -> None:
    assert recorded_headers({header: "v"}, RazorpayVerifier()) == {header: "v"}
