"""MSG91: the Flow request and its classification, the URL-token verifier through the
ingress, the v3 delivery-report normalizer (MSG91 has no official SDK to use as an oracle)."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from connector_support import command, make_tenants, tenant
from tenant_accounts import primary

import providers
from catalog.tenant_file import demo_tenant_config, parse_tenants
from connectors.executor import CommandExecutor
from connectors.retry import RetryPolicy
from core.settings import Settings
from core.tenants import Tenant
from providers.base import Delivered, Rejected, RetryLater
from providers.msg91 import Msg91, Msg91Account
from providers.msg91_receipts import Msg91Verifier, normalize_msg91
from providers.payments import UnsupportedOperationError
from providers.spec import Delivery, Messaging, NormalizationError
from schemas.events import (
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    ResultStatus,
    SendSms,
)
from webhook_ingress.decision import Rejection, accept, check_headers, check_route

ADAPTER, VERIFIER = Msg91(), Msg91Verifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
TWO_SCHOOLS = parse_tenants(
    tomllib.loads(demo_tenant_config("t1", "One") + "\n" + demo_tenant_config("t2", "Two"))
)
BASE = "https://control.msg91.com"
REQUEST_ID = "5762846b4f8d285d378b4567"  # providers.md's sample answer
INGRESS = "https://hub.example/webhooks/msg91/t1"


def fee_sms(**overrides: Any) -> SendSms:
    fields: dict[str, Any] = {
        "to": "+91 98765-43210",
        "text": "Fee of Rs 1,500 received for Asha. Thank you.",
        "template_id": "6601a2b3c4d5e6f7a8b9c0d1",
        "variables": {"name": "Asha", "amount": "1,500"},
        "dlt_template_id": "1107161234567890123",
        "dlt_entity_id": "1201159876543210987",
    }
    fields.update(overrides)
    return SendSms(**fields)


def flow_request(payload: SendSms, t: Tenant = T1) -> httpx.Request:
    return ADAPTER.build_request(command("msg91", payload), payload, t, BASE)


def tenant_with(**fields: Any) -> Tenant:
    account = providers.parse_account(
        "msg91", "msg91-primary", {"authkey": "k-123", "webhook_token": "tok", **fields}
    )
    return Tenant(id="t1", accounts=(account,))


# --- the Flow request --------------------------------------------------------------


def test_the_flow_request_carries_the_template_its_variables_and_the_authkey() -> None:
    request = flow_request(fee_sms())
    account = primary(T1, Msg91Account)
    assert (request.method, str(request.url)) == ("POST", "https://control.msg91.com/api/v5/flow/")
    assert request.headers["authkey"] == account.authkey.get_secret_value()
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "template_id": "6601a2b3c4d5e6f7a8b9c0d1",
        "short_url": "0",
        "recipients": [{"mobiles": "919876543210", "name": "Asha", "amount": "1,500"}],
        "sender": "SCHOOL",
    }


def test_the_dlt_ids_and_the_rendered_text_are_not_sent() -> None:
    sent = flow_request(fee_sms()).content.decode()
    assert "1107161234567890123" not in sent
    assert "1201159876543210987" not in sent
    assert "Thank you" not in sent


def test_without_a_sender_the_templates_own_is_used() -> None:
    body = json.loads(flow_request(fee_sms(), tenant_with()).content)
    assert "sender" not in body


def test_a_variable_named_mobiles_cannot_redirect_the_message() -> None:
    body = json.loads(flow_request(fee_sms(variables={"mobiles": "911111111111"})).content)
    assert body["recipients"] == [{"mobiles": "919876543210"}]


def test_a_message_without_a_template_is_refused_before_any_call() -> None:
    with pytest.raises(UnsupportedOperationError) as refused:
        flow_request(fee_sms(template_id=None))
    assert str(refused.value) == (
        "MSG91 sends DLT-registered templates only: the message names no MSG91 template"
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_executor_rejects_a_plain_text_sms_without_calling_msg91() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"type": "success", "message": REQUEST_ID})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        executor = CommandExecutor(
            ADAPTER,
            settings=Settings(),
            base_url=BASE,
            tenants=TENANTS,
            http=http,
            policy=RetryPolicy(),
        )
        result = await executor.attempt(command("msg91", SendSms(to="+919876543210", text="hi")))
    assert calls == []
    assert (result.status, result.retryable, result.attempts) == (ResultStatus.FAILED, False, 0)
    assert result.error_message == (
        "MSG91 sends DLT-registered templates only: the message names no MSG91 template"
    )


def test_the_probe_reads_the_transactional_balance_with_the_authkey_header() -> None:
    request = ADAPTER.probe_request(T1, None, BASE + "/")
    assert (request.method, str(request.url)) == (
        "GET",
        "https://control.msg91.com/api/balance.php?type=4",
    )
    assert request.headers["authkey"] == primary(T1, Msg91Account).authkey.get_secret_value()


# --- classifying the answers ---------------------------------------------------------


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=flow_request(fee_sms()))


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            200,
            {"type": "success", "message": REQUEST_ID},
            {},
            Delivered(REQUEST_ID, 200, {"request_id": REQUEST_ID}),
        ),
        # MSG91's "HTTP 200 but failed": the body decides.
        (
            200,
            {"type": "error", "message": "Insufficient balance", "code": "301"},
            {},
            Rejected("Insufficient balance", 200, "301"),
        ),
        (
            200,
            {"type": "error", "message": "Invalid mobile number", "code": 202},
            {},
            Rejected("Invalid mobile number", 200, "202"),
        ),
        (
            200,
            {"type": "error", "message": "Template ID missing"},
            {},
            Rejected("Template ID missing", 200, None),
        ),
        (
            200,
            {"type": "success"},
            {},
            Rejected("MSG91 answered 200 without a request id", 200, None),
        ),
        (
            401,
            {"type": "error", "message": "Invalid authentication key", "code": "207"},
            {},
            Rejected("Invalid authentication key", 401, "207"),
        ),
        (
            401,
            {"type": "error", "message": "Missing Authentication Key", "code": "106"},
            {},
            Rejected("Missing Authentication Key", 401, "106"),
        ),
        (
            429,
            {"type": "error", "message": "Too many requests"},
            {"Retry-After": "2"},
            RetryLater("Too many requests", 429, None, 2.0),
        ),
        (
            503,
            {"type": "error", "message": "Internal server error"},
            {},
            RetryLater("Internal server error", 503, None),
        ),
    ],
)
def test_flow_answers_are_classified(
    status: int, body: object, headers: dict[str, str], expected: object
) -> None:
    assert ADAPTER.classify(answer(status, body, headers)) == expected


def test_a_gateway_error_page_is_retried_with_its_reason_phrase() -> None:
    page = httpx.Response(502, text="<html>bad gateway</html>", request=flow_request(fee_sms()))
    assert ADAPTER.classify(page) == RetryLater("Bad Gateway", 502, None)


def test_the_declaration_names_the_account_level_codes_and_receipts() -> None:
    declared = providers.get("msg91")
    assert declared.category == "sms"
    assert declared.messaging == Messaging(
        rate_per_second=None,
        receipts=True,
        account_errors=frozenset({"106", "207", "301", "302", "303", "418"}),
        templates_only=True,  # DLT flows: a free-text SMS goes to another provider
    )
    assert declared.secret_fields == ("authkey", "webhook_token")
    assert declared.webhooks is not None
    assert (declared.webhooks.secret_field, declared.webhooks.body_format) == (
        "webhook_token",
        "json",
    )


# --- the verifier, through the ingress ---------------------------------------------------


def token_of(t: Tenant = T1) -> str:
    return primary(t, Msg91Account).webhook_token.get_secret_value()


def report(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestId": REQUEST_ID,
        "number": "919876543210",
        "status": "1",
        "desc": "DELIVERED",
        "date": "2024-03-01 10:15:30",
        "senderId": "SCHOOL",
        "credit": "1",
    }
    body.update(fields)
    return body


def delivery(body: bytes, query: dict[str, str]) -> Delivery:
    url = INGRESS + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    return Delivery("POST", url, query, headers, body, "203.0.113.9")


def through_the_ingress(body: bytes, query: dict[str, str]) -> RawWebhook | Rejection:
    keys = check_route("msg91", "t1", TENANTS)
    assert isinstance(keys, list)
    return accept("msg91", "t1", keys, delivery(body, query))


def test_a_report_with_the_accounts_token_is_accepted_and_keyed_by_its_ids() -> None:
    body = json.dumps(report()).encode()
    raw = through_the_ingress(body, {"token": token_of()})
    assert isinstance(raw, RawWebhook)
    assert (raw.provider_event_id, raw.provider_event_type) == (
        f"{REQUEST_ID}:919876543210:1",
        "delivery_report",
    )
    assert raw.account == "msg91-primary"
    assert raw.body == body  # the token stays in the URL, never in the record


@pytest.mark.parametrize(
    "query",
    [{}, {"token": ""}, {"token": "not-the-token"}],
    ids=["missing", "empty", "wrong"],
)
def test_a_report_without_the_right_token_is_refused(query: dict[str, str]) -> None:
    refused = through_the_ingress(json.dumps(report()).encode(), query)
    assert refused == Rejection(401, "signature does not match the body", security=True)


def test_another_schools_token_is_refused() -> None:
    t2 = tenant(TWO_SCHOOLS, "t2")
    keys = check_route("msg91", "t1", TWO_SCHOOLS)
    assert isinstance(keys, list)
    body = json.dumps(report()).encode()
    refused = accept("msg91", "t1", keys, delivery(body, {"token": token_of(t2)}))
    assert refused == Rejection(401, "signature does not match the body", security=True)


def test_the_token_does_not_bind_the_body_so_the_body_is_trusted_only_as_a_report() -> None:
    # MSG91 signs nothing: a changed body with the right token is still accepted. What
    # it may claim is bounded by the hub (the request id must be one it sent).
    tampered = json.dumps(report(status="2")).encode()
    assert isinstance(through_the_ingress(tampered, {"token": token_of()}), RawWebhook)


def test_the_verifier_alone() -> None:
    d = delivery(b"{}", {"token": "s3cret"})
    assert VERIFIER.verify_delivery(d, "s3cret", primary(T1, Msg91Account))
    assert not VERIFIER.verify_delivery(d, "another", primary(T1, Msg91Account))
    assert not VERIFIER.verify_delivery(d, "", primary(T1, Msg91Account))
    assert not VERIFIER.verify(b"{}", {}, "s3cret")  # headers alone never prove it
    assert VERIFIER.signed_headers(b"{}", "s3cret") == {}


def test_the_ingress_wants_json() -> None:
    assert check_headers({"content-type": "application/x-www-form-urlencoded"}, 1000, "json") == (
        Rejection(415, "content type must be application/json")
    )


# --- the normalizer ---------------------------------------------------------------


def raw_of(body: dict[str, Any] | list[dict[str, Any]]) -> tuple[RawWebhook, dict[str, Any]]:
    content = json.dumps(body).encode()
    raw = RawWebhook(
        header=EventHeader.new(RawWebhook.EVENT_TYPE, "t1", source="test"),
        provider="msg91",
        provider_event_id="evt",
        content_type="application/json",
        http_headers={},
        body=content,
        received_at=datetime.now(UTC),
    )
    fields = {"items": body} if isinstance(body, list) else body
    return raw, fields


def receipt_of(body: dict[str, Any]) -> DeliveryReceipt:
    raw, fields = raw_of(body)
    found = normalize_msg91(raw, fields)
    assert isinstance(found, DeliveryReceipt)
    assert found.header.causation_id == raw.header.event_id
    assert found.header.event_type == "messages.receipt"
    return found


def test_a_delivered_report_is_linked_to_the_send_by_its_request_id() -> None:
    sent = ADAPTER.classify(answer(200, {"type": "success", "message": REQUEST_ID}))
    assert isinstance(sent, Delivered)
    found = receipt_of(report())
    assert found.provider_ref == sent.provider_ref == "5762846b4f8d285d378b4567"
    assert found.model_dump(exclude={"header"}) == {
        "provider": "msg91",
        "provider_event_id": "5762846b4f8d285d378b4567:919876543210:1",
        "provider_ref": "5762846b4f8d285d378b4567",
        "status": ReceiptStatus.DELIVERED,
        "provider_status": "DELIVERED (1)",
        "recipient": "919876543210",
        "error_code": None,
        "error_description": None,
        "occurred_at": datetime.fromisoformat("2024-03-01T10:15:30+05:30"),
        "idempotency_key": None,
    }


@pytest.mark.parametrize(
    ("code", "desc"),
    [("2", "FAILED"), ("9", "NDNC"), ("16", "REJECTED"), ("17", "BLOCKED"), ("25", "REJECTED"),
     ("26", "REJECTED")],
)  # fmt: skip
def test_failure_codes_are_undelivered_with_the_code(code: str, desc: str) -> None:
    found = receipt_of(report(status=code, desc=desc))
    assert (found.status, found.error_code, found.error_description) == (
        ReceiptStatus.UNDELIVERED,
        code,
        desc,
    )


def test_a_failed_reason_is_the_description_when_msg91_gives_one() -> None:
    found = receipt_of(report(status="2", desc="FAILED", failedReason="Absent subscriber"))
    assert (found.error_code, found.error_description) == ("2", "Absent subscriber")


@pytest.mark.parametrize(
    ("code", "desc", "word"), [("8", "SUBMITTED", "SUBMITTED (8)"), ("42", "", "42")]
)
def test_other_codes_are_on_their_way_with_the_providers_word_kept(
    code: str, desc: str, word: str
) -> None:
    found = receipt_of(report(status=code, desc=desc))
    assert (found.status, found.error_code, found.provider_status) == (
        ReceiptStatus.SENT,
        None,
        word,
    )


def test_numbers_and_statuses_may_arrive_as_json_numbers() -> None:
    found = receipt_of(report(number=919876543210, status=1))
    assert (found.recipient, found.status, found.provider_event_id) == (
        "919876543210",
        ReceiptStatus.DELIVERED,
        "5762846b4f8d285d378b4567:919876543210:1",
    )


def test_an_unreadable_date_is_no_date() -> None:
    assert receipt_of(report(date="yesterday")).occurred_at is None


def test_a_batch_of_reports_is_one_receipt_each() -> None:
    raw, fields = raw_of([report(), report(number="919000000001", status="2", desc="FAILED")])
    found = normalize_msg91(raw, fields)
    assert isinstance(found, list)
    assert [(r.recipient, r.status) for r in found] == [
        ("919876543210", ReceiptStatus.DELIVERED),
        ("919000000001", ReceiptStatus.UNDELIVERED),
    ]


@pytest.mark.parametrize("missing", ["requestId", "number", "status"])
def test_a_report_without_its_ids_is_a_normalization_error(missing: str) -> None:
    body = report()
    del body[missing]
    raw, fields = raw_of(body)
    with pytest.raises(NormalizationError, match=missing):
        normalize_msg91(raw, fields)


def test_a_batch_with_a_non_object_is_a_normalization_error() -> None:
    raw, _ = raw_of([report()])
    with pytest.raises(NormalizationError):
        normalize_msg91(raw, {"items": [report(), "x"]})
