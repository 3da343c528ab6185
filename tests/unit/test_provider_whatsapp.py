"""WhatsApp Cloud API: the template send and its classification, the X-Hub-Signature-256
verifier (GitHub's published vector and pywa's validator as oracles), the subscription
check, the ingress, the status normalizer."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from connector_support import command, make_tenants, tenant
from pywa import utils as pywa_utils
from tenant_accounts import primary

import providers
from core.settings import Settings
from providers.base import Delivered, Rejected, RetryLater
from providers.spec import Delivery, NormalizationError
from providers.whatsapp import WhatsApp, WhatsAppAccount
from providers.whatsapp_webhooks import (
    WhatsAppVerifier,
    answer_subscription,
    event_id,
    event_type,
    normalize_whatsapp,
)
from schemas.events import DeliveryReceipt, EventHeader, RawWebhook, ReceiptStatus, SendWhatsApp
from webhook_ingress.decision import Rejection, accept, check_headers, check_route

ADAPTER, VERIFIER = WhatsApp(), WhatsAppVerifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
ACCOUNT = primary(T1, WhatsAppAccount)
TOKEN = ACCOUNT.access_token.get_secret_value()
APP_SECRET = ACCOUNT.app_secret.get_secret_value()
BASE = "https://graph.facebook.com/v21.0"
WAMID = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQ0I2QjM5REFBODkyQTExOEU1AA=="


def fee_reminder(**overrides: Any) -> SendWhatsApp:
    fields: dict[str, Any] = {
        "to": "+91 98765-43210",
        "template": "fee_reminder",
        "language": "en_US",
        "parameters": ["Asha", "Rs 1,500", "31 March"],
        "callback_data": "key-7",
    }
    fields.update(overrides)
    return SendWhatsApp(**fields)


def send_request(payload: SendWhatsApp) -> httpx.Request:
    return ADAPTER.build_request(command("whatsapp", payload, key="key-7"), payload, T1, BASE)


# --- the send -----------------------------------------------------------------------------


def test_the_send_is_a_template_message_to_the_numbers_digits() -> None:
    request = send_request(fee_reminder())
    assert (request.method, str(request.url)) == (
        "POST",
        f"https://graph.facebook.com/v21.0/{ACCOUNT.phone_number_id}/messages",
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "919876543210",
        "type": "template",
        "template": {
            "name": "fee_reminder",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Asha"},
                        {"type": "text", "text": "Rs 1,500"},
                        {"type": "text", "text": "31 March"},
                    ],
                }
            ],
        },
        "biz_opaque_callback_data": "key-7",
    }


def test_a_template_without_variables_or_callback_data_sends_neither() -> None:
    sent = json.loads(send_request(fee_reminder(parameters=[], callback_data=None)).content)
    assert sent["template"] == {"name": "fee_reminder", "language": {"code": "en_US"}}
    assert "biz_opaque_callback_data" not in sent


def test_the_base_urls_version_is_kept_and_a_trailing_slash_ignored() -> None:
    payload = fee_reminder()
    request = ADAPTER.build_request(
        command("whatsapp", payload), payload, T1, "http://sim/whatsapp/v22.0/"
    )
    assert str(request.url) == f"http://sim/whatsapp/v22.0/{ACCOUNT.phone_number_id}/messages"


def test_the_probe_reads_the_phone_numbers_own_record() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert (request.method, str(request.url)) == (
        "GET",
        f"https://graph.facebook.com/v21.0/{ACCOUNT.phone_number_id}",
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert ADAPTER.auth(T1, Settings(), None) is None


def answer(status: int, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=send_request(fee_reminder()))


def graph_error(code: int, message: str, details: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "AbCdEf"
    return {"error": error}


def test_an_accepted_message_is_delivered_under_its_wamid() -> None:
    body = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "919876543210", "wa_id": "919876543210"}],
        "messages": [{"id": WAMID}],
    }
    assert ADAPTER.classify(answer(200, body)) == Delivered(WAMID, 200, {"wa_id": "919876543210"})


def test_a_200_without_a_message_id_is_not_delivered() -> None:
    body = {"messaging_product": "whatsapp", "contacts": [], "messages": []}
    assert ADAPTER.classify(answer(200, body)) == Rejected(
        "WhatsApp answered 200 without a message id", 200
    )


@pytest.mark.parametrize(
    ("status", "code", "message", "details", "reason"),
    [
        (429, 130429, "(#130429) Rate limit hit", None, "(#130429) Rate limit hit"),
        (
            429,
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            None,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        ),
        (500, 131000, "Something went wrong", "Something went wrong", "Something went wrong"),
        (503, 2, "Service temporarily unavailable", None, "Service temporarily unavailable"),
        # The code decides, whatever HTTP status it came with.
        (400, 131000, "Something went wrong", None, "Something went wrong"),
    ],
)
def test_rate_limits_and_metas_outages_are_retried(
    status: int, code: int, message: str, details: str | None, reason: str
) -> None:
    outcome = ADAPTER.classify(answer(status, graph_error(code, message, details)))
    assert outcome == RetryLater(reason, status, str(code), None)


def test_a_retry_after_header_is_kept() -> None:
    outcome = ADAPTER.classify(
        answer(429, graph_error(130429, "(#130429) Rate limit hit"), **{"Retry-After": "30"})
    )
    assert outcome == RetryLater("(#130429) Rate limit hit", 429, "130429", 30.0)


@pytest.mark.parametrize(
    ("status", "code", "message", "details", "reason"),
    [
        (
            401,
            190,
            "Error validating access token: Session has expired.",
            None,
            "Error validating access token: Session has expired.",
        ),
        (
            400,
            131031,
            "(#131031) Business Account locked",
            "Your account is locked.",
            "(#131031) Business Account locked: Your account is locked.",
        ),
        (
            400,
            131042,
            "(#131042) Business eligibility payment issue",
            None,
            "(#131042) Business eligibility payment issue",
        ),
        (400, 100, "(#100) Invalid parameter", None, "(#100) Invalid parameter"),
        (
            400,
            131047,
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number.",
            "(#131047) Re-engagement message: Message failed to send because more than 24 "
            "hours have passed since the customer last replied to this number.",
        ),
        (
            400,
            131026,
            "(#131026) Message undeliverable",
            "Message Undeliverable.",
            "(#131026) Message undeliverable: Message Undeliverable.",
        ),
        (
            400,
            132000,
            "(#132000) Number of parameters does not match the expected number of params",
            None,
            "(#132000) Number of parameters does not match the expected number of params",
        ),
        (
            404,
            132001,
            "(#132001) Template name does not exist in the translation",
            "template name (fee_reminder) does not exist in en_US",
            "(#132001) Template name does not exist in the translation: "
            "template name (fee_reminder) does not exist in en_US",
        ),
        # A code the adapter does not name: the HTTP status decides (4xx: rejected).
        (400, 131009, "(#131009) Parameter value is not valid", None, "(#131009) Parameter "
         "value is not valid"),
    ],
)  # fmt: skip
def test_refusals_are_rejected_with_metas_code(
    status: int, code: int, message: str, details: str | None, reason: str
) -> None:
    outcome = ADAPTER.classify(answer(status, graph_error(code, message, details)))
    assert outcome == Rejected(reason, status, str(code))


def test_an_unknown_code_on_a_5xx_is_retried_and_a_bodyless_answer_is_read_by_status() -> None:
    assert ADAPTER.classify(answer(502, graph_error(1, "An unknown error occurred"))) == (
        RetryLater("An unknown error occurred", 502, "1", None)
    )
    bare = httpx.Response(504, content=b"", request=send_request(fee_reminder()))
    assert ADAPTER.classify(bare) == RetryLater("Gateway Timeout", 504, None, None)


def test_the_messaging_declaration() -> None:
    declared = providers.get("whatsapp")
    assert declared.messaging is not None
    assert declared.messaging.rate_per_second == 80.0
    assert declared.messaging.receipts is True
    assert declared.messaging.account_errors == frozenset({"190", "131031", "131042"})
    assert (declared.category, declared.operations) == ("whatsapp", ("whatsapp.send",))
    assert declared.base_urls == {"api": "https://graph.facebook.com/v21.0"}
    assert declared.simulator_paths == {"api": "/whatsapp/v21.0"}
    assert declared.secret_fields == ("access_token", "app_secret", "verify_token")
    webhooks = declared.webhooks
    assert webhooks is not None
    assert (webhooks.secret_field, webhooks.challenge_field) == ("app_secret", "verify_token")
    assert webhooks.methods == ("POST",)


# --- the signature -------------------------------------------------------------------------


def test_githubs_published_vector() -> None:
    # The same construction as GitHub's X-Hub-Signature-256; Meta publishes no vector.
    signature = VERIFIER.sign(b"Hello, World!", "It's a Secret to Everybody")
    assert signature == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    header = {"x-hub-signature-256": signature}
    assert VERIFIER.verify(b"Hello, World!", header, "It's a Secret to Everybody")


def test_pywa_accepts_what_we_sign_and_we_accept_what_pywa_accepts() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    header = VERIFIER.signed_headers(body, APP_SECRET)["x-hub-signature-256"]
    assert pywa_utils.webhook_updates_validator(APP_SECRET, body, header)
    assert not pywa_utils.webhook_updates_validator(APP_SECRET, body + b" ", header)
    assert not pywa_utils.webhook_updates_validator("another", body, header)


@pytest.mark.parametrize(
    ("body", "header", "secret", "verified"),
    [
        (b"Hello, World!", None, "It's a Secret to Everybody", True),
        (
            b"Hello, World!",
            "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
            "It's a Secret to Everybody",
            True,
        ),
        (b"Hello, World!!", None, "It's a Secret to Everybody", False),  # tampered
        (b"Hello, World!", None, "It's another secret", False),  # wrong secret
        (b"Hello, World!", "", "It's a Secret to Everybody", False),  # missing
        (
            b"Hello, World!",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "It's a Secret to Everybody",
            False,  # without the scheme
        ),
        (
            b"Hello, World!",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "It's a Secret to Everybody",
            False,
        ),
        (b"Hello, World!", None, "", False),  # an account without an app secret
    ],
)
def test_the_verifier(body: bytes, header: str | None, secret: str, verified: bool) -> None:
    published = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    headers = {"x-hub-signature-256": published if header is None else header}
    assert VERIFIER.verify(body, headers, secret) is verified


# --- the subscription check -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tokens", "answer"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "tok-1", "hub.challenge": "1158201444"},
         ["tok-1"], "1158201444"),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok-2", "hub.challenge": "77"},
         ["tok-1", "tok-2"], "77"),  # any enabled account's token
        ({"hub.mode": "subscribe", "hub.verify_token": "tok-x", "hub.challenge": "77"},
         ["tok-1"], None),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "tok-1", "hub.challenge": "77"},
         ["tok-1"], None),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok-1"}, ["tok-1"], None),
        ({"hub.mode": "subscribe", "hub.challenge": "77"}, ["tok-1"], None),
        ({"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "77"}, [""], None),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok-1", "hub.challenge": "7" * 257},
         ["tok-1"], None),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok-1", "hub.challenge": "77"}, [], None),
    ],
)  # fmt: skip
def test_the_subscription_check(
    query: dict[str, str], tokens: list[str], answer: str | None
) -> None:
    assert answer_subscription(query, tokens) == answer


# --- status webhooks through the ingress ---------------------------------------------------------


def status(
    state: str, wamid: str = WAMID, *, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    update: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": "1750000000",
        "recipient_id": "919876543210",
        "biz_opaque_callback_data": "key-7",
        **extra,
    }
    if errors is not None:
        update["errors"] = errors
    return update


def webhook(*statuses: dict[str, Any], field: str = "messages", **value: Any) -> dict[str, Any]:
    change_value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550001234",
            "phone_number_id": ACCOUNT.phone_number_id,
        },
        **value,
    }
    if statuses:
        change_value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": change_value, "field": field}]}],
    }


def delivery(body: bytes, headers: dict[str, str]) -> Delivery:
    url = "http://ingress.test/webhooks/whatsapp/t1"
    return Delivery("POST", url, {}, headers, body, "127.0.0.1")


def received(body: dict[str, Any]) -> RawWebhook:
    raw_body = json.dumps(body).encode()
    headers = {"content-type": "application/json", **VERIFIER.signed_headers(raw_body, APP_SECRET)}
    keys = check_route("whatsapp", "t1", TENANTS)
    assert isinstance(keys, list)
    raw = accept("whatsapp", "t1", keys, delivery(raw_body, headers))
    assert isinstance(raw, RawWebhook), raw
    return raw


def normalized(body: dict[str, Any]) -> list[DeliveryReceipt] | None:
    raw = received(body)
    return normalize_whatsapp(raw, json.loads(raw.body))


def test_a_signed_status_is_accepted_under_wamid_and_status() -> None:
    raw = received(webhook(status("delivered")))
    assert (raw.provider_event_id, raw.provider_event_type) == (
        f"{WAMID}:delivered",
        "status.delivered",
    )
    assert raw.account == "whatsapp-primary"
    assert check_headers({"content-type": "application/json"}, 1000, "json") is None


def test_unsigned_or_wrongly_signed_deliveries_are_refused() -> None:
    body = json.dumps(webhook(status("delivered"))).encode()
    keys = check_route("whatsapp", "t1", TENANTS)
    assert isinstance(keys, list)
    missing = accept("whatsapp", "t1", keys, delivery(body, {"content-type": "application/json"}))
    assert missing == Rejection(401, "missing signature", security=True)
    wrong = {"content-type": "application/json", **VERIFIER.signed_headers(body, "not-it")}
    assert accept("whatsapp", "t1", keys, delivery(body, wrong)) == Rejection(
        401, "signature does not match the body", security=True
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("sent", ReceiptStatus.SENT),
        ("delivered", ReceiptStatus.DELIVERED),
        ("read", ReceiptStatus.READ),
        ("warning", ReceiptStatus.SENT),  # a word the hub does not know: on its way, kept
    ],
)
def test_each_status_maps_to_a_receipt(state: str, expected: ReceiptStatus) -> None:
    receipts = normalized(webhook(status(state)))
    assert receipts is not None
    [receipt] = receipts
    assert receipt.status is expected
    assert (receipt.provider, receipt.provider_status) == ("whatsapp", state)
    assert receipt.provider_event_id == f"{WAMID}:{state}"
    assert receipt.recipient == "919876543210"
    assert receipt.idempotency_key == "key-7"
    assert receipt.occurred_at == datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)
    assert (receipt.error_code, receipt.error_description) == (None, None)
    assert receipt.header.event_type == "messages.receipt"
    assert (receipt.header.tenant, receipt.header.source) == ("t1", "normalizer")


def test_the_receipts_provider_ref_is_the_wamid_the_send_returned() -> None:
    sent = ADAPTER.classify(
        answer(200, {"messaging_product": "whatsapp", "contacts": [], "messages": [{"id": WAMID}]})
    )
    assert isinstance(sent, Delivered)
    receipts = normalized(webhook(status("delivered", sent.provider_ref or "")))
    assert receipts is not None
    assert [r.provider_ref for r in receipts] == [WAMID]


def test_a_failed_message_is_undelivered_with_metas_code_and_title() -> None:
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
        }
    ]
    receipts = normalized(webhook(status("failed", errors=errors)))
    assert receipts is not None
    [receipt] = receipts
    assert (receipt.status, receipt.provider_status) == (ReceiptStatus.UNDELIVERED, "failed")
    assert (receipt.error_code, receipt.error_description) == ("131026", "Message undeliverable")


def test_several_statuses_in_one_delivery_are_several_receipts() -> None:
    other = "wamid.SECOND=="
    body = webhook(status("sent"), status("read", other, biz_opaque_callback_data=None))
    raw = received(body)
    # No single status names the delivery: its field does, and its hash identifies it.
    assert raw.provider_event_type == "messages"
    assert raw.provider_event_id == hashlib.sha256(raw.body).hexdigest()
    receipts = normalize_whatsapp(raw, json.loads(raw.body))
    assert receipts is not None
    assert [(r.provider_ref, r.status, r.idempotency_key) for r in receipts] == [
        (WAMID, ReceiptStatus.SENT, "key-7"),
        (other, ReceiptStatus.READ, None),
    ]
    assert [r.provider_event_id for r in receipts] == [f"{WAMID}:sent", f"{other}:read"]


def test_inbound_messages_and_other_fields_are_no_receipts() -> None:
    inbound = webhook(
        contacts=[{"profile": {"name": "Asha"}, "wa_id": "919876543210"}],
        messages=[{"from": "919876543210", "id": "wamid.IN==", "timestamp": "1750000000",
                   "type": "text", "text": {"body": "Thanks"}}],
    )  # fmt: skip
    assert normalized(inbound) is None
    assert event_type(inbound) == "messages"
    template_update = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
                ],
            }
        ],
    }
    assert normalized(template_update) is None


@pytest.mark.parametrize(
    "body",
    [
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": [{"id": "1"}]},
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": ["x"]}]},
        webhook(status("delivered", "")),
        webhook({"id": WAMID, "timestamp": "1750000000"}),
        webhook(statuses={"id": WAMID, "status": "sent"}),  # an object, not an array
    ],
)
def test_a_receipt_the_hub_cannot_read_is_a_normalization_error(body: dict[str, Any]) -> None:
    raw = received(body)
    with pytest.raises(NormalizationError):
        normalize_whatsapp(raw, json.loads(raw.body))


def test_event_ids_and_types_of_odd_bodies_fall_back() -> None:
    assert event_id({"entry": "x"}) is None
    assert event_type({"entry": "x"}) is None
    assert event_id(webhook(status("sent"), status("delivered"))) is None


def raw_of(body: bytes) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="whatsapp",
        provider_event_id="e",
        content_type="application/json",
        http_headers={},
        body=body,
        received_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_a_timestamp_that_is_no_number_leaves_occurred_at_empty() -> None:
    body = webhook(status("sent", timestamp="soon"))
    receipts = normalize_whatsapp(raw_of(json.dumps(body).encode()), body)
    assert receipts is not None
    assert receipts[0].occurred_at is None
