"""Mailgun: the Messages request and its classification, the in-body webhook signature
(the official `mailgun` SDK's SecurityGuard as the oracle), the ingress, the receipts."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from connector_support import BARE, command, email, make_tenants, tenant
from mailgun.security import SecurityGuard
from tenant_accounts import primary

import providers
from core.tenants import MissingCredentialsError, Tenant
from providers.base import Delivered, Rejected, RetryLater
from providers.mailgun import Mailgun, MailgunAccount
from providers.mailgun_receipts import (
    MailgunVerifier,
    event_id,
    event_type,
    normalize_mailgun,
    signature_block,
    signature_of,
)
from providers.spec import Delivery, NormalizationError
from schemas.events import EventHeader, RawWebhook, ReceiptStatus
from webhook_ingress.decision import Rejection, accept, check_route

ADAPTER = Mailgun()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
BASE = "https://api.mailgun.net"
SEND_ANSWER = {
    "id": "<20260301090000.5817abcd@mg.t1.school.example>",
    "message": "Queued. Thank you.",
}
MESSAGE_ID = "20260301090000.5817abcd@mg.t1.school.example"
# providers.md section 11, COMPUTED-HERE (no published vector); the SDK agrees below.
VECTOR_KEY, VECTOR_TS = "key-test", "1770920772"
VECTOR_TOKEN = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"
VECTOR_SIGNATURE = "097ff1603ce0947833a030fe6b23a46d9597fc9835f074f252b2e662274fb61c"


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


def account_of(t: Tenant = T1) -> MailgunAccount:
    return primary(t, MailgunAccount)


def with_account(**fields: str) -> Tenant:
    base = {
        "domain": "mg.x.example",
        "api_key": "k-1",
        "from_email": "fees@mg.x.example",
        "webhook_signing_key": "sk-1",
        **fields,
    }
    account = providers.parse_account("mailgun", "mailgun-primary", base)
    return Tenant(id="t1", name="x", accounts=(account,))


def answer(
    status: int, body: Any = None, *, text: str | None = None, **headers: str
) -> httpx.Response:
    request = httpx.Request("POST", f"{BASE}/v3/mg.t1.school.example/messages")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


# --- the send ------------------------------------------------------------------------


def test_the_send_is_a_form_with_basic_api_auth_and_the_commands_key() -> None:
    payload = email()
    cmd = command("mailgun", payload, key="receipt-42")
    request = ADAPTER.build_request(cmd, payload, T1, BASE)
    account = account_of()
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.mailgun.net/v3/mg.t1.school.example/messages",
    )
    token = base64.b64encode(f"api:{account.api_key.get_secret_value()}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {token}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "from": "School One <fees@mg.t1.school.example>",
        "to": '"Mrs. Sharma" <parent@example.com>',
        "subject": "Fee receipt",
        "text": "Thank you",
        "html": "<p>Thank you</p>",
        "v:idempotency_key": "receipt-42",
        "v:command_id": cmd.command_id,
        "h:X-Hub-Idempotency-Key": "receipt-42",
    }


def test_a_text_mail_to_a_bare_address_from_an_unnamed_sender() -> None:
    payload = email(to_name=None, html=None)
    request = ADAPTER.build_request(command("mailgun", payload), payload, with_account(), BASE)
    fields = form(request)
    assert (fields["from"], fields["to"]) == ("fees@mg.x.example", "parent@example.com")
    assert "html" not in fields


def test_an_eu_domain_goes_to_the_eu_host_unless_the_base_url_is_configured() -> None:
    payload = email()
    eu = with_account(region="eu")
    request = ADAPTER.build_request(command("mailgun", payload), payload, eu, BASE + "/")
    assert str(request.url) == "https://api.eu.mailgun.net/v3/mg.x.example/messages"
    simulated = ADAPTER.build_request(
        command("mailgun", payload), payload, eu, "http://sim/mailgun"
    )
    assert str(simulated.url) == "http://sim/mailgun/v3/mg.x.example/messages"


def test_an_unknown_region_is_refused() -> None:
    with pytest.raises(providers.AccountError) as caught:
        with_account(region="ap")
    assert caught.value.field == "region"


def test_no_account_is_missing_credentials() -> None:
    payload = email()
    with pytest.raises(MissingCredentialsError, match="'bare' has no enabled mailgun account"):
        ADAPTER.build_request(
            command("mailgun", payload, tenant_id=BARE), payload, tenant(TENANTS, BARE), BASE
        )


def test_the_probe_reads_the_accounts_domain() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert (request.method, str(request.url)) == (
        "GET",
        "https://api.mailgun.net/v3/domains/mg.t1.school.example",
    )
    assert request.headers["authorization"].startswith("Basic ")


# --- classify ------------------------------------------------------------------------


def test_queued_is_delivered_with_the_id_webhooks_carry() -> None:
    assert ADAPTER.classify(answer(200, SEND_ANSWER)) == Delivered(
        MESSAGE_ID,
        200,
        {
            "message_id": "<20260301090000.5817abcd@mg.t1.school.example>",
            "message": "Queued. Thank you.",
        },
    )


@pytest.mark.parametrize("body", [{"message": "Queued. Thank you."}, {"id": ""}, {"id": "<>"}])
def test_a_200_without_a_message_id_is_not_delivered(body: dict[str, Any]) -> None:
    assert ADAPTER.classify(answer(200, body)) == Rejected(
        "Mailgun answered 200 without a message id", 200, None
    )


@pytest.mark.parametrize(
    ("status", "body", "text", "reason"),
    [
        (400, {"message": "'to' parameter is missing"}, None, "'to' parameter is missing"),
        (401, None, "Forbidden", "Forbidden"),
        (403, {"message": "Domain mg.x.example is not allowed to send"}, None,
         "Domain mg.x.example is not allowed to send"),
        (404, {"message": "Domain not found: mg.x.example"}, None,
         "Domain not found: mg.x.example"),
        (413, None, "", "Request Entity Too Large"),
    ],
)  # fmt: skip
def test_client_errors_are_rejected_with_the_status_as_the_code(
    status: int, body: Any, text: str | None, reason: str
) -> None:
    assert ADAPTER.classify(answer(status, body, text=text)) == Rejected(
        reason, status, str(status)
    )


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_rate_limits_and_server_errors_retry(status: int) -> None:
    outcome = ADAPTER.classify(answer(status, {"message": "try later"}, **{"Retry-After": "7"}))
    assert outcome == RetryLater("try later", status, str(status), 7.0)


def test_the_messaging_declaration() -> None:
    declared = providers.get("mailgun")
    assert (declared.category, declared.title) == ("email", "Mailgun")
    assert declared.messaging is not None
    assert declared.messaging.rate_per_second is None
    assert declared.messaging.receipts is True
    assert declared.messaging.account_errors == frozenset({"401", "403", "404"})
    assert declared.secret_fields == ("api_key", "webhook_signing_key")
    assert declared.webhooks is not None
    assert declared.webhooks.secret_field == "webhook_signing_key"


def test_a_refused_key_is_an_account_error_and_a_bad_address_is_not() -> None:
    declared = providers.get("mailgun").messaging
    assert declared is not None
    refused = ADAPTER.classify(answer(401, text="Forbidden"))
    bad = ADAPTER.classify(answer(400, {"message": "'to' parameter is not a valid address"}))
    assert isinstance(refused, Rejected) and isinstance(bad, Rejected)
    assert refused.error_code in declared.account_errors
    assert bad.error_code not in declared.account_errors


# --- the signature ---------------------------------------------------------------------


def test_the_computed_vector_and_the_sdk_agree() -> None:
    assert signature_of(VECTOR_TS, VECTOR_TOKEN, VECTOR_KEY) == VECTOR_SIGNATURE
    assert SecurityGuard.verify_webhook(
        VECTOR_KEY, VECTOR_TOKEN, VECTOR_TS, VECTOR_SIGNATURE, max_age_seconds=0
    )


def vector_body(**signature: Any) -> bytes:
    block = {"timestamp": VECTOR_TS, "token": VECTOR_TOKEN, "signature": VECTOR_SIGNATURE}
    block.update(signature)
    return json.dumps({"signature": block, "event-data": {"event": "delivered"}}).encode()


def at(seconds: float) -> MailgunVerifier:
    return MailgunVerifier(clock=lambda: seconds)


def test_the_vector_verifies_within_300_seconds_either_way() -> None:
    for now in (1770920772, 1770920772 + 300, 1770920772 - 300):
        assert at(now).verify(vector_body(), {}, VECTOR_KEY)
    assert at(1770920772).verify(vector_body(timestamp=1770920772), {}, VECTOR_KEY)


@pytest.mark.parametrize(
    ("body", "key", "now"),
    [
        (vector_body(), "key-other", 1770920772),
        (vector_body(token=VECTOR_TOKEN[:-1] + "4"), VECTOR_KEY, 1770920772),
        (vector_body(signature=VECTOR_SIGNATURE[:-1] + "d"), VECTOR_KEY, 1770920772),
        (vector_body(timestamp="1770920773"), VECTOR_KEY, 1770920772),
        (vector_body(), VECTOR_KEY, 1770920772 + 301),
        (vector_body(), VECTOR_KEY, 1770920772 - 301),
        (vector_body(timestamp="17709-0772"), VECTOR_KEY, 1770920772),
        (vector_body(signature=None), VECTOR_KEY, 1770920772),
        (vector_body(token=""), VECTOR_KEY, 1770920772),
        (json.dumps({"event-data": {"event": "delivered"}}).encode(), VECTOR_KEY, 1770920772),
        (b"[1, 2]", VECTOR_KEY, 1770920772),
        (b"not json", VECTOR_KEY, 1770920772),
        (vector_body(), "", 1770920772),
    ],
)
def test_a_wrong_stale_or_missing_signature_fails(body: bytes, key: str, now: int) -> None:
    assert not at(now).verify(body, {}, key)


def test_what_the_simulator_signs_the_sdk_accepts_and_a_tampered_one_it_refuses() -> None:
    block = signature_block("sk-live", "a" * 50)
    args = (block["token"], block["timestamp"], block["signature"])
    assert SecurityGuard.verify_webhook("sk-live", *args, max_age_seconds=300)
    assert not SecurityGuard.verify_webhook("sk-other", *args, max_age_seconds=300)
    body = json.dumps({"signature": block, "event-data": {}}).encode()
    assert MailgunVerifier().verify(body, {}, "sk-live")
    assert not MailgunVerifier().verify(body, {}, "sk-other")


# --- the ingress ---------------------------------------------------------------------


def event_body(data: dict[str, Any], key: str | None = None, timestamp: int | None = None) -> bytes:
    signing_key = key or account_of().webhook_signing_key.get_secret_value()
    block = signature_block(signing_key, "b" * 50, timestamp)
    return json.dumps({"signature": block, "event-data": data}).encode()


def delivered(**extra: Any) -> dict[str, Any]:
    return {
        "id": "Ase-4mK1SJalCCl0bbz2Rw",
        "timestamp": 1772355600.25,
        "event": "delivered",
        "recipient": "parent@example.com",
        "message": {"headers": {"message-id": MESSAGE_ID, "to": "parent@example.com"}},
        "delivery-status": {"code": 250, "message": "OK", "description": ""},
        "user-variables": {"idempotency_key": "receipt-42", "command_id": "cmd-1"},
        **extra,
    }


def ingress(body: bytes, tenant_id: str = "t1") -> RawWebhook | Rejection:
    keys = check_route("mailgun", tenant_id, TENANTS)
    assert isinstance(keys, list)
    headers = {"content-type": "application/json"}
    delivery = Delivery("POST", f"http://hub/webhooks/mailgun/{tenant_id}", {}, headers, body, None)
    return accept("mailgun", tenant_id, keys, delivery)


def test_a_signed_event_is_accepted_keyed_by_its_event_id() -> None:
    raw = ingress(event_body(delivered()))
    assert isinstance(raw, RawWebhook), raw
    assert (raw.provider_event_id, raw.provider_event_type, raw.account) == (
        "Ase-4mK1SJalCCl0bbz2Rw",
        "delivered",
        "mailgun-primary",
    )


@pytest.mark.parametrize(
    "body",
    [
        event_body(delivered(), key="another-key"),
        event_body(delivered(), timestamp=int(time.time()) - 3600),
        json.dumps({"event-data": delivered()}).encode(),
    ],
)
def test_an_unsigned_or_foreign_event_is_refused(body: bytes) -> None:
    assert ingress(body) == Rejection(401, "signature does not match the body", security=True)


def test_event_type_and_id_read_event_data() -> None:
    assert event_type({"event-data": {"event": "failed"}}) == "failed"
    assert event_id({"event-data": {"id": "abc"}}) == "abc"
    assert (event_type({}), event_id({"event-data": "x"})) == (None, None)


# --- the normalizer ----------------------------------------------------------------------


def raw_of(data: dict[str, Any]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="mailgun",
        provider_event_id=str(data.get("id") or "hash"),
        provider_event_type=str(data.get("event")),
        content_type="application/json",
        http_headers={},
        body=b"{}",
        received_at=datetime.now(UTC),
        account="mailgun-primary",
    )


def receipt_of(data: dict[str, Any]) -> Any:
    return normalize_mailgun(raw_of(data), {"signature": {}, "event-data": data})


def test_delivered_links_to_the_sends_provider_ref() -> None:
    sent = ADAPTER.classify(answer(200, SEND_ANSWER))
    assert isinstance(sent, Delivered)
    receipt = receipt_of(delivered())
    assert receipt.provider_ref == sent.provider_ref == MESSAGE_ID
    assert (receipt.status, receipt.provider_status) == (ReceiptStatus.DELIVERED, "delivered")
    assert (receipt.provider, receipt.provider_event_id) == ("mailgun", "Ase-4mK1SJalCCl0bbz2Rw")
    assert (receipt.recipient, receipt.idempotency_key) == ("parent@example.com", "receipt-42")
    assert receipt.occurred_at == datetime(2026, 3, 1, 9, 0, 0, 250000, tzinfo=UTC)
    assert (receipt.error_code, receipt.error_description) == (None, None)
    assert receipt.header.event_type == "messages.receipt"
    assert receipt.header.source == "normalizer"


def failed(severity: str) -> dict[str, Any]:
    return delivered(
        event="failed",
        severity=severity,
        reason="bounce",
        **{
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
            }
        },
    )


def test_a_permanent_failure_is_undelivered_with_the_smtp_code() -> None:
    receipt = receipt_of(failed("permanent"))
    assert (receipt.status, receipt.provider_status) == (
        ReceiptStatus.UNDELIVERED,
        "failed:permanent",
    )
    assert (receipt.error_code, receipt.error_description) == (
        "550",
        "5.1.1 The email account that you tried to reach does not exist.",
    )


def test_a_temporary_failure_is_still_on_its_way() -> None:
    receipt = receipt_of(failed("temporary"))
    assert (receipt.status, receipt.provider_status, receipt.error_code) == (
        ReceiptStatus.SENT,
        "failed:temporary",
        "550",
    )


def test_a_suppressed_address_describes_itself_by_its_reason_when_it_has_no_message() -> None:
    data = delivered(event="failed", severity="permanent", reason="suppress-bounce")
    data["delivery-status"] = {"code": 605, "message": "", "description": ""}
    receipt = receipt_of(data)
    assert (receipt.status, receipt.error_code, receipt.error_description) == (
        ReceiptStatus.UNDELIVERED,
        "605",
        "suppress-bounce",
    )


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("accepted", ReceiptStatus.SENT),
        ("opened", ReceiptStatus.READ),
        ("clicked", ReceiptStatus.READ),
        ("stored", ReceiptStatus.SENT),
    ],
)
def test_other_events_map(event: str, status: ReceiptStatus) -> None:
    receipt = receipt_of(delivered(event=event))
    assert (receipt.status, receipt.provider_status) == (status, event)


@pytest.mark.parametrize("event", ["complained", "unsubscribed"])
def test_engagement_events_are_not_receipts(event: str) -> None:
    assert receipt_of(delivered(event=event)) is None


def test_a_bracketed_message_id_and_a_missing_event_id_are_tolerated() -> None:
    data = delivered(message={"headers": {"message-id": f"<{MESSAGE_ID}>"}})
    del data["id"]
    receipt = receipt_of(data)
    assert receipt.provider_ref == MESSAGE_ID
    assert receipt.provider_event_id == f"{MESSAGE_ID}:delivered"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"signature": {}}, "no event-data"),
        ({"event-data": {"id": "x"}}, "no 'event'"),
        ({"event-data": {"event": "delivered", "message": {}}}, "no message.headers.message-id"),
    ],
)
def test_an_unreadable_event_is_a_normalization_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(NormalizationError, match=message):
        normalize_mailgun(raw_of({"event": "x"}), fields)
