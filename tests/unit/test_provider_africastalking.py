"""Africa's Talking: the messaging request (the official SDK as the oracle of its shape),
its classification, the URL-token verifier through the ingress, the report normalizer."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import responses
from africastalking.SMS import SMSService
from connector_support import command, make_tenants, tenant
from tenant_accounts import primary

import providers
from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import Tenant
from providers.africastalking import AfricasTalking, AfricasTalkingAccount
from providers.africastalking_receipts import AfricasTalkingVerifier, normalize_africastalking
from providers.base import Delivered, Rejected, RetryLater
from providers.spec import Delivery, Messaging, NormalizationError
from schemas.events import DeliveryReceipt, EventHeader, RawWebhook, ReceiptStatus, SendSms
from webhook_ingress.decision import Rejection, accept, check_headers, check_route

ADAPTER, VERIFIER = AfricasTalking(), AfricasTalkingVerifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
TWO_SCHOOLS = parse_tenants(
    tomllib.loads(demo_tenant_config("t1", "One") + "\n" + demo_tenant_config("t2", "Two"))
)
BASE = "https://api.africastalking.com"
MESSAGE_ID = "ATXid_8d2a1c4e6f0b3a5c7e9d1f2a4b6c8e0a"
NUMBER = "+254712345678"
TEXT = "Fee of KES 1,500 received for Amani. Thank you."
INGRESS = "https://hub.example/webhooks/africastalking/t1"


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


def send_request(t: Tenant = T1, to: str = NUMBER) -> httpx.Request:
    payload = SendSms(to=to, text=TEXT)
    return ADAPTER.build_request(command("africastalking", payload), payload, t, BASE)


def tenant_with(**fields: Any) -> Tenant:
    values = {"username": "greenwood", "api_key": "atsk_abc", "webhook_token": "tok", **fields}
    account = providers.parse_account("africastalking", "africastalking-primary", values)
    return Tenant(id="t1", accounts=(account,))


# --- the request ------------------------------------------------------------------


def test_the_send_is_a_form_post_with_the_api_key_header() -> None:
    request = send_request()
    account = primary(T1, AfricasTalkingAccount)
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.africastalking.com/version1/messaging",
    )
    assert request.headers["apikey"] == account.api_key.get_secret_value()
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "username": "t1-school",
        "to": "+254712345678",
        "message": TEXT,
        "bulkSMSMode": "1",
    }


def test_a_sender_id_goes_in_from() -> None:
    assert form(send_request(tenant_with(sender_id="GREENWOOD")))["from"] == "GREENWOOD"


@responses.activate
@pytest.mark.parametrize("sender_id", [None, "GREENWOOD"])
def test_the_official_sdk_sends_the_same_request(sender_id: str | None) -> None:
    ours = send_request(tenant_with(sender_id=sender_id or ""))
    responses.post(
        "https://api.africastalking.com/version1/messaging",
        json={"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": []}},
        status=201,
    )
    SMSService("greenwood", "atsk_abc").send(TEXT, [NUMBER], sender_id=sender_id)
    [call] = responses.calls
    assert call.request.url == str(ours.url)
    sdk_form = dict(parse_qsl(str(call.request.body), keep_blank_values=True))
    assert sdk_form == form(ours)
    for header in ("apiKey", "Accept"):
        assert call.request.headers[header] == ours.headers[header]


def test_the_probe_reads_the_apps_data() -> None:
    request = ADAPTER.probe_request(T1, None, BASE + "/")
    assert (request.method, str(request.url)) == (
        "GET",
        "https://api.africastalking.com/version1/user?username=t1-school",
    )
    assert (
        request.headers["apikey"] == primary(T1, AfricasTalkingAccount).api_key.get_secret_value()
    )


def test_a_sandbox_app_is_sent_where_the_base_url_points() -> None:
    request = ADAPTER.build_request(
        command("africastalking", SendSms(to=NUMBER, text="hi")),
        SendSms(to=NUMBER, text="hi"),
        tenant_with(username="sandbox"),
        "https://api.sandbox.africastalking.com",
    )
    assert str(request.url) == "https://api.sandbox.africastalking.com/version1/messaging"
    assert form(request)["username"] == "sandbox"


# --- classifying the answers ------------------------------------------------------------


def recipient(code: int | str, status: str, message_id: str = MESSAGE_ID) -> dict[str, Any]:
    return {
        "statusCode": code,
        "number": NUMBER,
        "status": status,
        "cost": "KES 0.8000" if status == "Success" else "0",
        "messageId": message_id,
    }


def envelope(
    *recipients: dict[str, Any], message: str = "Sent to 1/1 Total Cost: KES 0.8000"
) -> dict[str, Any]:
    return {"SMSMessageData": {"Message": message, "Recipients": list(recipients)}}


def answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=send_request())


@pytest.mark.parametrize(
    ("code", "word"), [(101, "Success"), (100, "Processed"), (102, "Queued"), ("101", "Success")]
)
def test_a_sent_recipient_is_delivered_with_its_message_id(code: int | str, word: str) -> None:
    outcome = ADAPTER.classify(answer(201, envelope(recipient(code, word))))
    cost = "KES 0.8000" if word == "Success" else "0"
    assert outcome == Delivered(
        MESSAGE_ID,
        201,
        {"status": word, "status_code": str(code), "cost": cost, "number": "+254712345678"},
    )


@pytest.mark.parametrize(
    ("code", "word", "expected"),
    [
        (403, "InvalidPhoneNumber", Rejected("InvalidPhoneNumber (statusCode 403)", 201, "403")),
        (406, "UserInBlacklist", Rejected("UserInBlacklist (statusCode 406)", 201, "406")),
        (402, "InvalidSenderId", Rejected("InvalidSenderId (statusCode 402)", 201, "402")),
        (407, "CouldNotRoute", Rejected("CouldNotRoute (statusCode 407)", 201, "407")),
        (405, "InsufficientBalance", Rejected("InsufficientBalance (statusCode 405)", 201, "405")),
        (401, "RiskHold", Rejected("RiskHold (statusCode 401)", 201, "401")),
        (
            500,
            "InternalServerError",
            RetryLater("InternalServerError (statusCode 500)", 201, "500"),
        ),
        (501, "GatewayError", RetryLater("GatewayError (statusCode 501)", 201, "501")),
        (502, "RejectedByGateway", RetryLater("RejectedByGateway (statusCode 502)", 201, "502")),
    ],
)
def test_a_refused_recipient_is_classified_by_its_status_code(
    code: int, word: str, expected: object
) -> None:
    assert ADAPTER.classify(answer(201, envelope(recipient(code, word, "None")))) == expected


def test_a_success_code_without_a_message_id_is_not_delivered() -> None:
    body = envelope({"statusCode": 101, "number": NUMBER, "status": "Success"})
    assert ADAPTER.classify(answer(201, body)) == Rejected("Success (statusCode 101)", 201, "101")


def test_no_recipient_at_all_is_rejected_with_the_envelopes_word() -> None:
    body = envelope(message="InvalidSenderId")
    assert ADAPTER.classify(answer(201, body)) == Rejected(
        "Africa's Talking sent to no recipient: InvalidSenderId", 201, "InvalidSenderId"
    )
    sentence = envelope(message="Sent to 0/1 Total Cost: 0")
    assert ADAPTER.classify(answer(201, sentence)) == Rejected(
        "Africa's Talking sent to no recipient: Sent to 0/1 Total Cost: 0", 201, None
    )


def test_an_answer_without_the_envelope_is_rejected() -> None:
    assert ADAPTER.classify(answer(201, {"unexpected": True})) == Rejected(
        "Africa's Talking sent to no recipient: no SMSMessageData.Recipients", 201, None
    )


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (
            401,
            "The supplied authentication is invalid",
            Rejected("The supplied authentication is invalid", 401, None),
        ),
        (400, "Request is missing required form field 'to'\n",
         Rejected("Request is missing required form field 'to'", 400, None)),
        (503, "", RetryLater("Service Unavailable", 503, None)),
        (500, "Internal Server Error", RetryLater("Internal Server Error", 500, None)),
    ],
)  # fmt: skip
def test_errors_outside_the_envelope_are_read_from_the_text(
    status: int, text: str, expected: object
) -> None:
    response = httpx.Response(status, text=text, request=send_request())
    assert ADAPTER.classify(response) == expected


def test_the_declaration_names_the_account_level_codes_and_receipts() -> None:
    declared = providers.get("africastalking")
    assert declared.category == "sms"
    assert declared.messaging == Messaging(
        rate_per_second=None, receipts=True, account_errors=frozenset({"401", "405"})
    )
    assert declared.secret_fields == ("api_key", "webhook_token")
    assert declared.webhooks is not None
    assert (declared.webhooks.secret_field, declared.webhooks.body_format) == (
        "webhook_token",
        "form",
    )


# --- the verifier, through the ingress ----------------------------------------------------


def token_of(t: Tenant = T1) -> str:
    return primary(t, AfricasTalkingAccount).webhook_token.get_secret_value()


def report(**fields: str) -> dict[str, str]:
    body = {
        "id": MESSAGE_ID,
        "status": "Success",
        "phoneNumber": NUMBER,
        "networkCode": "63902",
        "retryCount": "0",
    }
    body.update(fields)
    return body


def delivery(body: bytes, query: dict[str, str]) -> Delivery:
    url = INGRESS + ("?" + urlencode(query) if query else "")
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "content-length": str(len(body)),
    }
    return Delivery("POST", url, query, headers, body, "203.0.113.9")


def through_the_ingress(
    body: bytes, query: dict[str, str], route_tenant: str = "t1"
) -> RawWebhook | Rejection:
    keys = check_route("africastalking", route_tenant, TWO_SCHOOLS)
    assert isinstance(keys, list)
    return accept("africastalking", route_tenant, keys, delivery(body, query))


def test_a_report_with_the_accounts_token_is_accepted_and_keyed_by_id_and_status() -> None:
    t1 = tenant(TWO_SCHOOLS, "t1")
    body = urlencode(report()).encode()
    raw = through_the_ingress(body, {"token": token_of(t1)})
    assert isinstance(raw, RawWebhook)
    assert (raw.provider_event_id, raw.provider_event_type, raw.account) == (
        f"{MESSAGE_ID}:Success",
        "delivery_report",
        "africastalking-primary",
    )
    assert raw.body == body


@pytest.mark.parametrize(
    "query", [{}, {"token": ""}, {"token": "not-the-token"}], ids=["missing", "empty", "wrong"]
)
def test_a_report_without_the_right_token_is_refused(query: dict[str, str]) -> None:
    refused = through_the_ingress(urlencode(report()).encode(), query)
    assert refused == Rejection(401, "signature does not match the body", security=True)


def test_another_schools_token_is_refused() -> None:
    t2 = tenant(TWO_SCHOOLS, "t2")
    refused = through_the_ingress(urlencode(report()).encode(), {"token": token_of(t2)})
    assert refused == Rejection(401, "signature does not match the body", security=True)


def test_the_token_does_not_bind_the_body() -> None:
    # Nothing is signed: a changed body with the right token is accepted; the hub only
    # links it to a message it sent itself (by the messageId).
    t1 = tenant(TWO_SCHOOLS, "t1")
    tampered = urlencode(report(status="Failed")).encode()
    assert isinstance(through_the_ingress(tampered, {"token": token_of(t1)}), RawWebhook)


def test_the_verifier_alone() -> None:
    d = delivery(b"", {"token": "s3cret"})
    account = primary(T1, AfricasTalkingAccount)
    assert VERIFIER.verify_delivery(d, "s3cret", account)
    assert not VERIFIER.verify_delivery(d, "another", account)
    assert not VERIFIER.verify_delivery(d, "", account)
    assert not VERIFIER.verify(b"", {}, "s3cret")


def test_the_ingress_wants_a_form() -> None:
    assert check_headers({"content-type": "application/json"}, 1000, "form") == Rejection(
        415, "content type must be application/x-www-form-urlencoded"
    )


# --- the normalizer -------------------------------------------------------------------


def raw_of(fields: dict[str, str]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new(RawWebhook.EVENT_TYPE, "t1", source="test"),
        provider="africastalking",
        provider_event_id="evt",
        content_type="application/x-www-form-urlencoded",
        http_headers={},
        body=urlencode(fields).encode(),
        received_at=datetime.now(UTC),
    )


def receipt_of(fields: dict[str, str]) -> DeliveryReceipt:
    raw = raw_of(fields)
    found = normalize_africastalking(raw, fields)
    assert isinstance(found, DeliveryReceipt)
    assert found.header.causation_id == raw.header.event_id
    return found


def test_a_success_report_is_delivered_and_linked_to_the_send() -> None:
    sent = ADAPTER.classify(answer(201, envelope(recipient(101, "Success"))))
    assert isinstance(sent, Delivered)
    found = receipt_of(report())
    assert found.provider_ref == sent.provider_ref == "ATXid_8d2a1c4e6f0b3a5c7e9d1f2a4b6c8e0a"
    assert found.model_dump(exclude={"header"}) == {
        "provider": "africastalking",
        "provider_event_id": "ATXid_8d2a1c4e6f0b3a5c7e9d1f2a4b6c8e0a:Success",
        "provider_ref": "ATXid_8d2a1c4e6f0b3a5c7e9d1f2a4b6c8e0a",
        "status": ReceiptStatus.DELIVERED,
        "provider_status": "Success",
        "recipient": "+254712345678",
        "error_code": None,
        "error_description": None,
        "occurred_at": None,
        "idempotency_key": None,
    }


@pytest.mark.parametrize(
    ("status", "reason", "code", "description"),
    [
        ("Failed", "DeliveryFailure", "DeliveryFailure", "Failed: DeliveryFailure"),
        ("Rejected", "UserInBlackList", "UserInBlackList", "Rejected: UserInBlackList"),
        ("Failed", "InsufficientCredit", "InsufficientCredit", "Failed: InsufficientCredit"),
        ("AbsentSubscriber", "", "AbsentSubscriber", None),
        ("Expired", "", "Expired", None),
    ],
)
def test_final_failures_are_undelivered_with_the_failure_reason(
    status: str, reason: str, code: str, description: str | None
) -> None:
    fields = report(status=status, failureReason=reason) if reason else report(status=status)
    found = receipt_of(fields)
    assert (found.status, found.provider_status, found.error_code, found.error_description) == (
        ReceiptStatus.UNDELIVERED,
        status,
        code,
        description,
    )


@pytest.mark.parametrize("status", ["Sent", "Submitted", "Buffered", "SomethingNew"])
def test_other_statuses_are_on_their_way(status: str) -> None:
    found = receipt_of(report(status=status))
    assert (found.status, found.provider_status, found.error_code) == (
        ReceiptStatus.SENT,
        status,
        None,
    )
    assert found.provider_event_id == f"ATXid_8d2a1c4e6f0b3a5c7e9d1f2a4b6c8e0a:{status}"


def test_an_incoming_message_on_the_same_url_is_ignored() -> None:
    incoming = {"from": NUMBER, "to": "12345", "text": "STOP", "id": "abc", "date": "2024-03-01"}
    assert normalize_africastalking(raw_of(incoming), incoming) is None


def test_a_report_without_an_id_is_a_normalization_error() -> None:
    fields = report()
    del fields["id"]
    with pytest.raises(NormalizationError, match="'id'"):
        normalize_africastalking(raw_of(fields), fields)
