"""SendGrid's Event Webhook: the derived demo key pair, the ECDSA verifier (sendgrid-python's
EventWebhook as the oracle), the ingress, and the batch of events to delivery receipts."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from connector_support import make_tenants, tenant
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from tenant_accounts import primary

import providers
from core.tenants import Tenant, TenantDirectory
from processors.normalize import normalize
from providers.base import Delivered
from providers.sendgrid import SendGrid, SendGridAccount
from providers.sendgrid_events import (
    SendGridEventVerifier,
    event_type,
    event_webhook_keypair,
    load_public_key,
    normalize_sendgrid_events,
    sign_events,
)
from providers.spec import Delivery, NormalizationError
from schemas.events import EventHeader, RawWebhook, ReceiptStatus
from webhook_ingress.decision import Rejection, accept, check_route

SIGNED_AT = 1772355600
# The fixed-timestamp signatures below are checked at the moment they were made.
VERIFIER = SendGridEventVerifier(clock=lambda: SIGNED_AT + 10)
NOW_VERIFIER = SendGridEventVerifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
SEED = "SG.pinned-seed"
# Pinned: demo tenant files written earlier must keep verifying what the simulator signs.
PINNED_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MZzs0VRfPyHEP8Wz49SCH1QUsoGvPHjpXKH8Di2qtRntXawc1QmAk2x"
    "mxiqY5eyYKCCMlpGIoximryyjeQfnQ=="
)
X_MESSAGE_ID = "14c5d75ce93dfa8f3c7f"
SG_MESSAGE_ID = f"{X_MESSAGE_ID}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
BODY = b'[{"email":"parent@example.com","event":"delivered","sg_message_id":"m.1"}]'
SIGNATURE = EventWebhookHeader.SIGNATURE.lower()
TIMESTAMP = EventWebhookHeader.TIMESTAMP.lower()


def keys_of(seed: str = SEED) -> tuple[ec.EllipticCurvePrivateKey, str]:
    pair = event_webhook_keypair(seed)
    return pair.private_key, pair.public_key


# --- the derived key pair ------------------------------------------------------------


def test_the_key_pair_is_p256_derived_from_sha256_of_the_seed() -> None:
    private_key, public_key = keys_of()
    assert public_key == PINNED_PUBLIC_KEY
    assert private_key.curve.name == "secp256r1"
    scalar = int.from_bytes(hashlib.sha256(SEED.encode()).digest(), "big")
    assert private_key.private_numbers().private_value == scalar
    assert keys_of(SEED)[1] == public_key
    assert keys_of("SG.another")[1] != public_key


def test_the_public_key_is_base64_der_as_the_dashboard_shows_it() -> None:
    _, public_key = keys_of()
    key = serialization.load_der_public_key(base64.b64decode(public_key))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    # sendgrid-python reads the dashboard's text by wrapping it in PEM lines.
    assert EventWebhook(public_key).public_key.public_numbers() == key.public_numbers()


def test_the_demo_tenant_writes_the_public_key_of_its_api_key() -> None:
    account = primary(T1, SendGridAccount)
    derived = keys_of(account.api_key.get_secret_value())[1]
    assert account.webhook_public_key.get_secret_value() == derived


# --- the verifier ------------------------------------------------------------------


def test_what_sign_events_signs_verifies_here_and_with_sendgrid_python() -> None:
    private_key, public_key = keys_of()
    headers = sign_events(BODY, private_key, timestamp=1772355600)
    assert headers[TIMESTAMP] == "1772355600"
    assert VERIFIER.verify(BODY, headers, public_key)
    oracle = EventWebhook(public_key)
    assert oracle.verify_signature(BODY.decode(), headers[SIGNATURE], headers[TIMESTAMP])


def test_a_signature_made_with_cryptography_alone_verifies() -> None:
    private_key, public_key = keys_of()
    raw = private_key.sign(b"1772355600" + BODY, ec.ECDSA(hashes.SHA256()))
    headers = {SIGNATURE: base64.b64encode(raw).decode(), TIMESTAMP: "1772355600"}
    assert VERIFIER.verify(BODY, headers, public_key)


def test_a_pem_public_key_is_accepted_too() -> None:
    private_key, _ = keys_of()
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert NOW_VERIFIER.verify(BODY, sign_events(BODY, private_key), pem.decode())


def rsa_public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def p384_public_key() -> str:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    "case", ["body", "timestamp", "other_key", "no_signature", "no_timestamp", "not_base64",
             "rsa_key", "p384_key", "garbage_key", "empty_key", "letters_timestamp"],
)  # fmt: skip
def test_a_tampered_unsigned_or_foreign_delivery_fails(case: str) -> None:
    private_key, public_key = keys_of()
    body, key = BODY, public_key
    headers = sign_events(BODY, private_key, timestamp=1772355600)
    if case == "body":
        body = BODY.replace(b"delivered", b"bounce")
    elif case == "timestamp":
        headers[TIMESTAMP] = "1772355601"
    elif case == "other_key":
        key = keys_of("SG.another")[1]
    elif case == "no_signature":
        del headers[SIGNATURE]
    elif case == "no_timestamp":
        del headers[TIMESTAMP]
    elif case == "not_base64":
        headers[SIGNATURE] = "not base64!"
    elif case == "rsa_key":
        key = rsa_public_key()
    elif case == "p384_key":
        key = p384_public_key()
    elif case == "garbage_key":
        key = "bm90IGEga2V5"
    elif case == "empty_key":
        key = ""
    else:
        headers[TIMESTAMP] = "17723556OO"
    assert not VERIFIER.verify(body, headers, key)


def test_sendgrid_python_refuses_what_the_verifier_refuses() -> None:
    private_key, public_key = keys_of()
    headers = sign_events(BODY, private_key, timestamp=1772355600)
    oracle = EventWebhook(public_key)
    tampered = BODY.replace(b"delivered", b"bounce").decode()
    assert not oracle.verify_signature(tampered, headers[SIGNATURE], headers[TIMESTAMP])
    assert not VERIFIER.verify(tampered.encode(), headers, public_key)


def test_an_unusable_key_loads_as_none() -> None:
    assert load_public_key("%%%") is None
    assert load_public_key(PINNED_PUBLIC_KEY) is not None


def test_the_declaration_uses_the_public_key_field() -> None:
    declared = providers.get("sendgrid")
    assert declared.webhooks is not None
    assert declared.webhooks.secret_field == "webhook_public_key"
    assert declared.webhooks.body_format == "json"
    assert declared.secret_fields == ("api_key", "webhook_public_key")
    assert declared.messaging is not None
    assert (declared.messaging.rate_per_second, declared.messaging.receipts) == (None, True)


# --- the ingress -------------------------------------------------------------------


def ingress(body: bytes, headers: dict[str, str]) -> RawWebhook | Rejection:
    keys = check_route("sendgrid", "t1", TENANTS)
    assert isinstance(keys, list)
    delivery = Delivery(
        "POST",
        "http://hub/webhooks/sendgrid/t1",
        {},
        {"content-type": "application/json", **headers},
        body,
        None,
    )
    return accept("sendgrid", "t1", keys, delivery)


def t1_private_key() -> ec.EllipticCurvePrivateKey:
    return keys_of(primary(T1, SendGridAccount).api_key.get_secret_value())[0]


def test_a_batch_signed_with_the_accounts_key_is_accepted() -> None:
    raw = ingress(BODY, sign_events(BODY, t1_private_key()))
    assert isinstance(raw, RawWebhook), raw
    assert (raw.provider_event_type, raw.account) == ("delivered", "sendgrid-primary")
    assert raw.provider_event_id == hashlib.sha256(BODY).hexdigest()


def test_a_batch_without_signature_or_signed_by_another_key_is_refused() -> None:
    assert ingress(BODY, {}) == Rejection(401, "missing signature", security=True)
    other = sign_events(BODY, keys_of("SG.another")[0])
    assert ingress(BODY, other) == Rejection(
        401, "signature does not match the body", security=True
    )


def test_an_account_without_a_public_key_takes_no_events() -> None:
    fields = {"api_key": "SG.k", "from_email": "fees@x.example"}
    account = providers.parse_account("sendgrid", "sendgrid-primary", fields)
    directory = TenantDirectory({"t1": Tenant(id="t1", name="x", accounts=(account,))})
    assert check_route("sendgrid", "t1", directory) == Rejection(
        404, "unknown tenant 't1' for sendgrid"
    )


# --- the normalizer ----------------------------------------------------------------


def event(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": "parent@example.com",
        "timestamp": 1772355600,
        "event": name,
        "sg_message_id": SG_MESSAGE_ID,
        "sg_event_id": f"ev-{name}",
        "idempotency_key": "receipt-42",
        "command_id": "cmd-1",
        **extra,
    }


def raw_of(items: list[Any]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="sendgrid",
        provider_event_id="bodyhash",
        provider_event_type=None,
        content_type="application/json",
        http_headers={},
        body=json.dumps(items).encode(),
        received_at=datetime.now(UTC),
        account="sendgrid-primary",
    )


def receipts_of(items: list[Any]) -> Any:
    return normalize_sendgrid_events(raw_of(items), {"items": items})


def test_each_event_maps_to_its_status_and_engagement_is_left_out() -> None:
    names = ["processed", "deferred", "delivered", "open", "click", "spamreport",
             "unsubscribe", "group_unsubscribe", "group_resubscribe", "bounce", "dropped",
             "machine_opened"]  # fmt: skip
    found = [(r.provider_status, r.status) for r in receipts_of([event(n) for n in names])]
    assert found == [
        ("processed", ReceiptStatus.SENT),
        ("deferred", ReceiptStatus.SENT),
        ("delivered", ReceiptStatus.DELIVERED),
        ("open", ReceiptStatus.READ),
        ("click", ReceiptStatus.READ),
        ("bounce", ReceiptStatus.UNDELIVERED),
        ("dropped", ReceiptStatus.UNDELIVERED),
        ("machine_opened", ReceiptStatus.SENT),
    ]


def test_the_provider_ref_is_the_x_message_id_the_send_returned() -> None:
    request = httpx.Request("POST", "https://api.sendgrid.com/v3/mail/send")
    answer = httpx.Response(202, headers={"X-Message-Id": X_MESSAGE_ID}, request=request)
    sent = SendGrid().classify(answer)
    assert isinstance(sent, Delivered)
    [receipt] = receipts_of([event("delivered")])
    assert receipt.provider_ref == sent.provider_ref == "14c5d75ce93dfa8f3c7f"
    assert (receipt.provider, receipt.provider_event_id) == ("sendgrid", "ev-delivered")
    assert (receipt.recipient, receipt.idempotency_key) == ("parent@example.com", "receipt-42")
    assert receipt.occurred_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert (receipt.error_code, receipt.error_description) == (None, None)
    assert (receipt.header.event_type, receipt.header.source) == ("messages.receipt", "normalizer")


def test_a_bounce_carries_its_status_and_reason_and_a_drop_its_reason() -> None:
    reason = "550 5.1.1 The email account that you tried to reach does not exist"
    bounce = event("bounce", status="5.1.1", reason=reason, type="bounce")
    dropped = event("dropped", reason="Bounced Address")
    first, second = receipts_of([bounce, dropped])
    assert (first.status, first.error_code, first.error_description) == (
        ReceiptStatus.UNDELIVERED,
        "5.1.1",
        reason,
    )
    assert (second.status, second.error_code, second.error_description) == (
        ReceiptStatus.UNDELIVERED,
        None,
        "Bounced Address",
    )


def test_a_deferral_keeps_no_error_and_an_event_without_id_gets_one() -> None:
    deferred = event("deferred", response="450 try later", attempt="2")
    del deferred["sg_event_id"]
    [receipt] = receipts_of([deferred])
    assert receipt.provider_event_id == f"{SG_MESSAGE_ID}:deferred"
    assert receipt.error_code is None


def test_a_batch_of_only_engagement_events_is_nothing() -> None:
    assert receipts_of([event("spamreport"), event("unsubscribe")]) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "not a JSON array"),
        ({"items": ["x"]}, "not an object"),
        ({"items": [{"sg_message_id": "m.1"}]}, "no 'event'"),
        ({"items": [{"event": "delivered"}]}, "no 'sg_message_id'"),
    ],
)
def test_an_unreadable_batch_is_a_normalization_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(NormalizationError, match=message):
        normalize_sendgrid_events(raw_of([]), fields)


def test_the_hubs_normalizer_reads_the_array_body_as_items() -> None:
    receipts = normalize(raw_of([event("processed"), event("delivered")]))
    assert isinstance(receipts, list)
    assert [r.status for r in receipts] == [ReceiptStatus.SENT, ReceiptStatus.DELIVERED]


def test_event_type_names_the_batchs_events_in_order() -> None:
    items = [event("processed"), event("delivered"), event("processed")]
    assert event_type({"items": items}) == "processed,delivered"
    assert event_type({"items": []}) is None
    assert event_type({}) is None


@pytest.mark.parametrize(
    ("offset", "verifies"), [(-301, False), (-300, True), (0, True), (300, True), (301, False)]
)
def test_a_batch_verifies_within_five_minutes_of_its_signed_timestamp_only(
    offset: int, verifies: bool
) -> None:
    private_key, public_key = keys_of()
    headers = sign_events(BODY, private_key, timestamp=SIGNED_AT)
    at = SendGridEventVerifier(clock=lambda: SIGNED_AT - offset)
    assert at.verify(BODY, headers, public_key) is verifies
