"""Twilio's status callbacks: the X-Twilio-Signature verifier (twilio-python's RequestValidator
as the oracle), the ingress, and the normalizer's mapping to delivery receipts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from connector_support import make_tenants, tenant
from tenant_accounts import labelled, primary
from twilio.request_validator import RequestValidator

from processors.normalize import normalize
from providers.base import Delivered
from providers.spec import Delivery, NormalizationError
from providers.twilio import Twilio, TwilioAccount
from providers.twilio_status import TwilioVerifier, normalize_twilio, signature
from schemas.events import DeliveryReceipt, EventHeader, RawWebhook, ReceiptStatus
from webhook_ingress.decision import Rejection, accept, check_headers, check_route

VERIFIER = TwilioVerifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
TOKEN = "0123456789abcdef0123456789abcdef"
URL = "https://hub.school.example/webhooks/twilio/t1"
SID = "SM0123456789abcdef0123456789abcdef"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
FORM = "application/x-www-form-urlencoded"


def callback(status: str = "delivered", **extra: str) -> dict[str, str]:
    fields = {
        "SmsSid": SID,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": "+919876543210",
        "MessageSid": SID,
        "AccountSid": ACCOUNT_SID,
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
    }
    return fields | extra


def delivery(
    fields: dict[str, str],
    sig: str | None,
    url: str = URL,
    method: str = "POST",
    **headers: str,
) -> Delivery:
    sent = {"content-type": FORM, **headers}
    if sig is not None:
        sent["x-twilio-signature"] = sig
    body = urlencode(fields).encode()
    return Delivery(method, url, {}, sent, body, None)


def verified(d: Delivery, secret: str = TOKEN) -> bool:
    return VERIFIER.verify_delivery(d, secret, primary(T1, TwilioAccount))


# --- the signature, against Twilio's example and twilio-python -------------------------


def test_twilios_documented_example_signature() -> None:
    # twilio.com/docs/usage/security's example (twilio-python's tests use it too).
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert signature(url, params, "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert RequestValidator("12345").compute_signature(url, params) == (
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def test_what_the_sdk_signs_verifies() -> None:
    fields = callback("undelivered", ErrorCode="30003")
    sdk = RequestValidator(TOKEN).compute_signature(URL, fields)
    assert verified(delivery(fields, sdk))


def test_what_signature_computes_the_sdk_validates() -> None:
    fields = callback()
    assert RequestValidator(TOKEN).validate(URL, fields, signature(URL, fields, TOKEN))
    assert not RequestValidator("another").validate(URL, fields, signature(URL, fields, TOKEN))


class MultiDict(dict[str, list[str]]):
    """What twilio-python reads repeated parameters from (Flask's MultiDict has getall)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def test_a_repeated_parameter_is_signed_as_the_sdk_signs_it() -> None:
    pairs = [("MediaUrl", "https://b.example"), ("MediaUrl", "https://a.example"), ("To", "+1")]
    sdk = RequestValidator(TOKEN).compute_signature(
        URL, MultiDict({"MediaUrl": ["https://b.example", "https://a.example"], "To": ["+1"]})
    )
    assert signature(URL, pairs, TOKEN) == sdk


def test_the_query_string_is_signed_with_the_url() -> None:
    url = URL + "?batch=7&token=abc"
    fields = callback()
    assert verified(delivery(fields, signature(url, fields, TOKEN), url=url))
    assert not verified(delivery(fields, signature(URL, fields, TOKEN), url=url))


@pytest.mark.parametrize(
    ("signed_url", "called_url"),
    [
        ("https://hub.school.example/webhooks/twilio/t1", "https://hub.school.example:443/webhooks/twilio/t1"),
        ("https://hub.school.example:443/webhooks/twilio/t1", "https://hub.school.example/webhooks/twilio/t1"),
        ("http://127.0.0.1/webhooks/twilio/t1", "http://127.0.0.1:8090/webhooks/twilio/t1"),
    ],
)  # fmt: skip
def test_the_url_verifies_with_or_without_its_port_like_the_sdk(
    signed_url: str, called_url: str
) -> None:
    fields = callback()
    sig = signature(signed_url, fields, TOKEN)
    assert RequestValidator(TOKEN).validate(called_url, fields, sig)
    assert verified(delivery(fields, sig, url=called_url))


@pytest.mark.parametrize(
    "case",
    ["tampered-status", "added-field", "other-path", "wrong-secret", "missing", "garbage", "get"],
)
def test_a_bad_signature_is_refused(case: str) -> None:
    fields = callback()
    good = signature(URL, fields, TOKEN)
    d = {
        "tampered-status": delivery(callback("undelivered"), good),
        "added-field": delivery(callback(ErrorCode="30003"), good),
        "other-path": delivery(fields, good, url=URL.replace("/t1", "/t2")),
        "wrong-secret": delivery(fields, signature(URL, fields, "not-the-token")),
        "missing": delivery(fields, None),
        "garbage": delivery(fields, "definitely-not-base64=="),
        "get": delivery(fields, good, method="GET"),
    }[case]
    assert not verified(d)
    assert verified(delivery(fields, good))  # the untouched delivery does


def test_a_shared_key_signature_is_not_the_auth_tokens() -> None:
    fields = callback()
    good = signature(URL, fields, TOKEN)
    settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    header = {"x-twilio-webhooks-signature-settings": settings}
    assert not verified(delivery(fields, good, **header))
    sha1 = {"x-twilio-webhooks-signature-settings": "key=k,algorithm=HMAC_SHA1"}
    assert verified(delivery(fields, good, **sha1))


def test_body_and_headers_alone_never_verify() -> None:
    fields = callback()
    body = urlencode(fields).encode()
    headers = {"x-twilio-signature": signature(URL, fields, TOKEN)}
    assert VERIFIER.verify(body, headers, TOKEN) is False
    with pytest.raises(NotImplementedError, match="signature"):
        VERIFIER.signed_headers(body, TOKEN)
    with pytest.raises(NotImplementedError, match="signature"):
        VERIFIER.sign(body, TOKEN)


# --- through the ingress ---------------------------------------------------------------


def test_the_ingress_keys_are_each_accounts_auth_token() -> None:
    keys = check_route("twilio", "t1", TENANTS)
    assert isinstance(keys, list)
    backup = labelled(T1, TwilioAccount, "twilio-backup")
    assert [(k.account, k.secret) for k in keys] == [
        ("twilio-primary", primary(T1, TwilioAccount).auth_token.get_secret_value()),
        ("twilio-backup", backup.auth_token.get_secret_value()),
    ]


@pytest.mark.parametrize("label", ["twilio-primary", "twilio-backup"])
def test_a_signed_callback_is_accepted_under_its_sid_and_status(label: str) -> None:
    keys = check_route("twilio", "t1", TENANTS)
    assert isinstance(keys, list)
    token = labelled(T1, TwilioAccount, label).auth_token.get_secret_value()
    fields = callback("undelivered", ErrorCode="30003")
    raw = accept("twilio", "t1", keys, delivery(fields, signature(URL, fields, token)))
    assert isinstance(raw, RawWebhook)
    assert (raw.provider_event_id, raw.provider_event_type, raw.account) == (
        f"{SID}:undelivered",
        "undelivered",
        label,
    )
    assert raw.content_type == FORM


def test_the_ingress_refuses_a_callback_signed_by_no_account() -> None:
    keys = check_route("twilio", "t1", TENANTS)
    assert isinstance(keys, list)
    fields = callback()
    refused = accept("twilio", "t1", keys, delivery(fields, signature(URL, fields, TOKEN)))
    assert refused == Rejection(401, "signature does not match the body", security=True)
    missing = accept("twilio", "t1", keys, delivery(fields, None))
    assert missing == Rejection(401, "missing signature", security=True)


def test_the_ingress_wants_a_form_body() -> None:
    assert check_headers({"content-type": "application/json"}, 1024, "form") == Rejection(
        415, f"content type must be {FORM}"
    )
    assert check_headers({"content-type": FORM + "; charset=utf-8"}, 1024, "form") is None


# --- the normalizer ----------------------------------------------------------------


def raw_webhook(fields: dict[str, str]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="twilio",
        provider_event_id=f"{SID}:{fields.get('MessageStatus')}",
        provider_event_type=fields.get("MessageStatus"),
        content_type=FORM,
        http_headers={},
        body=urlencode(fields).encode(),
        received_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        account="twilio-primary",
    )


def receipt(fields: dict[str, str]) -> DeliveryReceipt:
    found = normalize_twilio(raw_webhook(fields), dict(fields))
    assert isinstance(found, DeliveryReceipt)
    return found


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", ReceiptStatus.SENT),
        ("accepted", ReceiptStatus.SENT),
        ("scheduled", ReceiptStatus.SENT),
        ("sending", ReceiptStatus.SENT),
        ("sent", ReceiptStatus.SENT),
        ("delivered", ReceiptStatus.DELIVERED),
        ("read", ReceiptStatus.READ),
        ("undelivered", ReceiptStatus.UNDELIVERED),
        ("failed", ReceiptStatus.UNDELIVERED),
        ("canceled", ReceiptStatus.UNDELIVERED),
        ("partially_delivered", ReceiptStatus.SENT),  # not one the hub knows: kept, not final
    ],
)
def test_each_status_maps_to_a_receipt_status(status: str, expected: ReceiptStatus) -> None:
    found = receipt(callback(status))
    assert (found.status, found.provider_status) == (expected, status)
    assert (found.provider_ref, found.provider_event_id) == (SID, f"{SID}:{status}")
    assert (found.provider, found.recipient) == ("twilio", "+919876543210")
    assert (found.error_code, found.error_description) == (None, None)


@pytest.mark.parametrize(
    ("code", "description"),
    [
        ("30003", "Unreachable destination handset"),
        ("30005", "Unknown destination handset"),
        ("30006", "Landline or unreachable carrier"),
        ("30007", "Message filtered"),
        ("30008", "Unknown error"),
        ("30002", "Account suspended"),
        ("30999", None),  # a code without a short text: the code alone
    ],
)
def test_an_undelivered_message_carries_twilios_error(code: str, description: str | None) -> None:
    found = receipt(callback("undelivered", ErrorCode=code))
    assert (found.status, found.error_code, found.error_description) == (
        ReceiptStatus.UNDELIVERED,
        code,
        description,
    )


def test_a_failed_message_without_an_error_code_has_none() -> None:
    found = receipt(callback("failed"))
    assert (found.status, found.error_code, found.error_description) == (
        ReceiptStatus.UNDELIVERED,
        None,
        None,
    )


def test_the_receipt_names_the_sid_the_send_was_answered_with() -> None:
    answer = httpx.Response(201, json={"sid": SID, "status": "queued", "num_segments": "1"})
    sent = Twilio().classify(answer)
    assert isinstance(sent, Delivered)
    assert receipt(callback()).provider_ref == sent.provider_ref == SID


def test_the_older_sms_fields_are_enough() -> None:
    fields = {"SmsSid": SID, "SmsStatus": "delivered", "To": "+919876543210"}
    found = receipt(fields)
    assert (found.provider_ref, found.status) == (SID, ReceiptStatus.DELIVERED)


def test_the_receipt_header_is_caused_by_the_raw_webhook() -> None:
    raw = raw_webhook(callback())
    found = normalize_twilio(raw, callback())
    assert isinstance(found, DeliveryReceipt)
    assert found.header.event_type == "messages.receipt"
    assert found.header.source == "normalizer"
    assert (found.header.tenant, found.header.causation_id) == ("t1", raw.header.event_id)


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_a_callback_without_sid_or_status_is_a_normalization_error(missing: str) -> None:
    fields: dict[str, Any] = callback()
    del fields[missing], fields["Sms" + missing.removeprefix("Message")]
    with pytest.raises(NormalizationError, match="MessageSid or MessageStatus"):
        normalize_twilio(raw_webhook(callback()), fields)


def test_an_incoming_message_is_not_a_receipt() -> None:
    assert normalize_twilio(raw_webhook(callback("received")), callback("received")) is None


def test_the_hubs_normalizer_reads_the_form_body() -> None:
    found = normalize(raw_webhook(callback("undelivered", ErrorCode="30005")))
    assert isinstance(found, DeliveryReceipt)
    assert (found.provider_ref, found.status, found.error_code) == (
        SID,
        ReceiptStatus.UNDELIVERED,
        "30005",
    )
