"""M-Pesa Daraja: the STK push / query / reversal requests, their classification, the token
flow, the token + IP allow-list verifier (also through the ingress), the normalizer."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from connector_support import command, make_tenants, tenant
from pydantic import SecretStr
from tenant_accounts import primary

import providers
from core.settings import Settings
from providers.base import AuthError, Delivered, Rejected, RetryLater
from providers.google_auth import TokenUnavailableError
from providers.mpesa import Mpesa, MpesaAccount, MpesaCommandError, kenyan_msisdn, stk_password
from providers.mpesa_callbacks import NAIROBI, MpesaVerifier, normalize_mpesa
from providers.payments import PaymentSnapshot
from providers.spec import Delivery, NormalizationError
from schemas.events import (
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import Rejection, WebhookKey, accept

WHEN = datetime(2024, 3, 5, 9, 30, 15, tzinfo=NAIROBI)
ADAPTER, VERIFIER = Mpesa(clock=lambda: WHEN), MpesaVerifier()
T1 = tenant(make_tenants())
ACCOUNT = primary(T1, MpesaAccount)
BASE = "https://api.safaricom.co.ke"
HUB = "https://hub.example/webhooks/mpesa/t1"
TOKEN = ACCOUNT.callback_token.get_secret_value()


def push(amount_minor: int = 150_000, **notes: str) -> CreatePaymentOrder:
    given = {"student_id": "ADM-2024-0042", "customer_phone": "0712 345 678", **notes}
    return CreatePaymentOrder(
        amount_minor=amount_minor, currency="KES", receipt="rcpt_1", notes=given, callback_url=HUB
    )


def build(payload: Any, key: str = "key-1") -> httpx.Request:
    return ADAPTER.build_request(command("mpesa", payload, key=key), payload, T1, BASE)


def test_the_published_password_vector() -> None:
    # providers.md: Safaricom's sandbox sample (shortcode, passkey, timestamp -> Password).
    passkey = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
    assert stk_password("174379", passkey, "20160216165627") == (
        "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJh"
        "ZGExZWQyYzkxOTIwMTYwMjE2MTY1NjI3"
    )


def test_the_stk_push_is_darajas_shape() -> None:
    request = build(push())
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.safaricom.co.ke/mpesa/stkpush/v1/processrequest",
    )
    body = json.loads(request.content)
    passkey = ACCOUNT.passkey.get_secret_value()
    expected_password = base64.b64encode(
        f"{ACCOUNT.shortcode}{passkey}20240305093015".encode()
    ).decode()
    assert body == {
        "BusinessShortCode": ACCOUNT.shortcode,
        "Password": expected_password,
        "Timestamp": "20240305093015",
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 1500,
        "PartyA": "254712345678",
        "PartyB": ACCOUNT.shortcode,
        "PhoneNumber": "254712345678",
        "CallBackURL": f"{HUB}?token={TOKEN}",
        "AccountReference": "ADM-2024-004",
        "TransactionDesc": "School fees",
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("+254712345678", "254712345678"),
        ("254112345678", "254112345678"),
        ("0712-345-678", "254712345678"),
        ("712345678", "254712345678"),
    ],
)
def test_kenyan_phones_are_normalized(given: str, expected: str) -> None:
    assert kenyan_msisdn(given) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push(amount_minor=150_050), "whole shillings"),
        (push(amount_minor=0), "whole shillings"),
        (push(customer_phone="+919876543210"), "not a Kenyan mobile number"),
        (push(customer_phone=""), "not a Kenyan mobile number"),
        (push().model_copy(update={"currency": "INR"}), "takes KES"),
        (push().model_copy(update={"callback_url": None}), "no callback URL"),
    ],
)
def test_a_push_mpesa_cannot_take_is_rejected_before_sending(
    payload: CreatePaymentOrder, reason: str
) -> None:
    # The account in the demo tenant has a hub_callback_url: without it and without the
    # command's, there is nowhere for the callback to go.
    tenant_without = T1.model_copy(
        update={
            "accounts": tuple(
                a.model_copy(
                    update={"config": a.config.model_copy(update={"hub_callback_url": ""})}
                )
                if a.provider == "mpesa"
                else a
                for a in T1.accounts
            )
        }
    )
    with pytest.raises(MpesaCommandError, match=reason):
        ADAPTER.build_request(command("mpesa", payload), payload, tenant_without, BASE)


def answer(status: int, body: dict[str, Any], request: httpx.Request) -> httpx.Response:
    return httpx.Response(status, json=body, request=request)


def daraja_error(code: str, message: str) -> dict[str, str]:
    return {"requestId": "1459-15094918-1", "errorCode": code, "errorMessage": message}


def test_an_accepted_push_is_delivered_with_the_checkout_request_id() -> None:
    accepted = {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": "ws_CO_191220191020363925",
        "ResponseCode": "0",
        "ResponseDescription": "Success. Request accepted for processing",
        "CustomerMessage": "Success. Request accepted for processing",
    }
    outcome = ADAPTER.classify(answer(200, accepted, build(push())))
    assert outcome == Delivered(
        "ws_CO_191220191020363925",
        200,
        {
            "order_id": "ws_CO_191220191020363925",
            "checkout_request_id": "ws_CO_191220191020363925",
            "merchant_request_id": "29115-34620561-1",
            "customer_message": "Success. Request accepted for processing",
        },
    )
    simulated = ADAPTER.build_request(
        command("mpesa", push()), push(), T1, "http://127.0.0.1:8099/mpesa"
    )
    local = ADAPTER.classify(answer(200, accepted, simulated))
    assert isinstance(local, Delivered)
    assert local.details["payment_url"] == (
        "http://127.0.0.1:8099/mpesa/phone/ws_CO_191220191020363925"
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, daraja_error("400.002.02", "Bad Request - Invalid PhoneNumber"),
         Rejected("Bad Request - Invalid PhoneNumber", 400, "400.002.02")),
        (500, daraja_error("500.001.1001", "Wrong credentials"),
         Rejected("Wrong credentials", 500, "500.001.1001")),
        (500, daraja_error("500.001.1001", "Merchant does not exist"),
         Rejected("Merchant does not exist", 500, "500.001.1001")),
        (500, daraja_error("500.001.1001", "Unable to lock subscriber, a transaction is "
                           "already in process for the current subscriber"),
         RetryLater("Unable to lock subscriber, a transaction is already in process for the "
                    "current subscriber", 500, "500.001.1001")),
        (500, daraja_error("500.003.02", "Spike arrest violation"),
         RetryLater("Spike arrest violation", 500, "500.003.02")),
        (404, daraja_error("404.001.03", "Invalid Access Token"),
         Rejected("Invalid Access Token", 404, "404.001.03")),
        (200, {"ResponseCode": "1", "ResponseDescription": "Rejected"},
         Rejected("Rejected", 200, "1")),
    ],
)  # fmt: skip
def test_push_failures_are_classified(status: int, body: dict[str, Any], expected: Any) -> None:
    assert ADAPTER.classify(answer(status, body, build(push()))) == expected


# --- the STK query ----------------------------------------------------------------


def query(order_id: str = "ws_CO_1") -> httpx.Request:
    return build(FetchPaymentStatus(order_id=order_id, amount_minor=150_000, currency="KES"))


def test_the_query_names_the_checkout_request_with_a_fresh_password() -> None:
    request = query()
    assert str(request.url) == "https://api.safaricom.co.ke/mpesa/stkpushquery/v1/query"
    body = json.loads(request.content)
    assert set(body) == {"BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID"}
    assert (body["CheckoutRequestID"], body["Timestamp"]) == ("ws_CO_1", "20240305093015")


def queried(result_code: str, description: str) -> dict[str, str]:
    return {
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": "22205-34066-1",
        "CheckoutRequestID": "ws_CO_1",
        "ResultCode": result_code,
        "ResultDesc": description,
    }


def snapshot_of(response: httpx.Response) -> PaymentSnapshot | None:
    outcome = ADAPTER.classify(response)
    assert isinstance(outcome, Delivered), outcome
    return PaymentSnapshot.from_details(outcome.details)


def test_a_paid_push_is_captured_with_the_commands_amount() -> None:
    found = snapshot_of(answer(200, queried("0", "processed successfully"), query()))
    assert found == PaymentSnapshot("CAPTURED", "ws_CO_1", "ws_CO_1", 150_000, "KES", "mpesa")


@pytest.mark.parametrize(
    ("code", "description"),
    [("1032", "Request cancelled by user"), ("1037", "DS timeout user cannot be reached"),
     ("1", "The balance is insufficient for the transaction.")],
)  # fmt: skip
def test_an_unpaid_push_is_failed_with_its_result_code(code: str, description: str) -> None:
    found = snapshot_of(answer(200, queried(code, description), query()))
    assert found is not None
    assert (found.status, found.payment_id, found.error_code) == ("FAILED", "ws_CO_1", code)
    assert found.error_description == description


def test_a_push_in_flight_is_pending_and_an_unknown_one_not_found() -> None:
    processing = daraja_error("500.001.1001", "The transaction is being processed")
    pending = snapshot_of(answer(500, processing, query()))
    assert pending == PaymentSnapshot("PENDING", "ws_CO_1")
    unknown = daraja_error("400.002.02", "Bad Request - Invalid CheckoutRequestID")
    assert snapshot_of(answer(400, unknown, query())) == PaymentSnapshot("NOT_FOUND", "ws_CO_1")


def test_a_query_failure_is_retried() -> None:
    busy = daraja_error("500.003.1001", "Internal Server Error")
    assert ADAPTER.classify(answer(503, busy, query())) == RetryLater(
        "Internal Server Error", 503, "500.003.1001"
    )


# --- the reversal --------------------------------------------------------------------


def test_a_reversal_names_the_receipt_and_reports_pending() -> None:
    refund = RefundPayment(
        payment_id="NLJ7RT61SV", order_id="ws_CO_1", amount_minor=150_000, currency="KES"
    )
    request = build(refund)
    assert str(request.url) == "https://api.safaricom.co.ke/mpesa/reversal/v1/request"
    body = json.loads(request.content)
    assert (body["TransactionID"], body["Amount"], body["CommandID"]) == (
        "NLJ7RT61SV",
        1500,
        "TransactionReversal",
    )
    assert body["ResultURL"] == f"{ACCOUNT.hub_callback_url}?token={TOKEN}&kind=reversal"
    accepted = {
        "OriginatorConversationID": "f1e2-4b95-1",
        "ConversationID": "AG_20240305_0000",
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }
    outcome = ADAPTER.classify(answer(200, accepted, request))
    assert isinstance(outcome, Delivered)
    assert (outcome.provider_ref, outcome.details["refund_status"]) == (
        "AG_20240305_0000",
        "PENDING",
    )


def test_an_stk_payment_is_reversed_by_the_receipt_its_callback_carried() -> None:
    refund = RefundPayment(
        payment_id="ws_CO_1",
        order_id="ws_CO_1",
        amount_minor=150_000,
        currency="KES",
        gateway_reference="NLJ7RT61SV",
    )
    body = json.loads(build(refund).content)
    assert body["TransactionID"] == "NLJ7RT61SV"


def test_a_reversal_by_checkout_request_id_is_rejected() -> None:
    refund = RefundPayment(
        payment_id="ws_CO_1", order_id="ws_CO_1", amount_minor=100, currency="KES"
    )
    with pytest.raises(MpesaCommandError, match="receipt number"):
        build(refund)


# --- the token flow --------------------------------------------------------------------


def flow_client(token_answers: list[httpx.Response], api: list[httpx.Response]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v1/generate":
            assert request.url.params["grant_type"] == "client_credentials"
            key, secret = ACCOUNT.consumer_key, ACCOUNT.consumer_secret.get_secret_value()
            assert (
                request.headers["authorization"]
                == "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
            )
            return token_answers.pop(0)
        return api.pop(0)

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_a_refused_token_is_refreshed_once() -> None:
    settings = Settings(provider_base_urls={"mpesa.token": "https://daraja.test/oauth/v1/generate"})
    auth = Mpesa().auth(T1, settings)
    tokens = [
        httpx.Response(200, json={"access_token": f"tok{i}", "expires_in": "3599"}) for i in (1, 2)
    ]
    refused = httpx.Response(404, json=daraja_error("404.001.03", "Invalid Access Token"))
    with flow_client(tokens, [refused, httpx.Response(200, json={"ok": True})]) as client:
        response = client.send(query(), auth=auth)
    assert response.status_code == 200
    assert response.request.headers["authorization"] == "Bearer tok2"


def test_token_endpoint_answers_mean_auth_error_or_retry() -> None:
    settings = Settings(provider_base_urls={"mpesa.token": "https://daraja.test/oauth/v1/generate"})
    wrong = httpx.Response(400, json=daraja_error("400.008.01", "Invalid Authentication passed"))
    with flow_client([wrong], []) as client, pytest.raises(AuthError, match=r"400\.008\.01"):
        client.send(query(), auth=Mpesa().auth(T1, settings))
    down = httpx.Response(503, json={})
    with flow_client([down], []) as client, pytest.raises(TokenUnavailableError):
        client.send(query(), auth=Mpesa().auth(T1, settings))


# --- the verifier, alone and through the ingress ---------------------------------------

SUCCESS = {
    "Body": {
        "stkCallback": {
            "MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": "ws_CO_191220191020363925",
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {
                "Item": [
                    {"Name": "Amount", "Value": 1500.0},
                    {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": 20191219102115},
                    {"Name": "PhoneNumber", "Value": 254708374149},
                ]
            },
        }
    }
}


def delivery(
    body: dict[str, Any] = SUCCESS, *, token: str | None = TOKEN, addr: str | None = "127.0.0.1",
    kind: str | None = None,
) -> Delivery:  # fmt: skip
    query = {k: v for k, v in (("token", token), ("kind", kind)) if v is not None}
    raw = json.dumps(body).encode()
    url = str(httpx.URL("http://127.0.0.1:8080/webhooks/mpesa/t1", params=query))
    headers = {"content-type": "application/json", "content-length": str(len(raw))}
    return Delivery("POST", url, query, headers, raw, addr)


def test_a_callback_with_the_token_from_an_allowed_address_verifies() -> None:
    assert VERIFIER.verify_delivery(delivery(), TOKEN, ACCOUNT)
    assert VERIFIER.verify_delivery(delivery(addr="196.201.214.200"), TOKEN, ACCOUNT)


@pytest.mark.parametrize(
    ("changed", "secret"),
    [
        ({"token": TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")}, TOKEN),  # one byte off
        ({}, "another-token"),  # the token of another account
        ({"token": None}, TOKEN),  # no token
        ({"token": ""}, TOKEN),
        ({"addr": "203.0.113.9"}, TOKEN),  # not a Safaricom address
        ({"addr": None}, TOKEN),
        ({"addr": "not-an-ip"}, TOKEN),
    ],
)
def test_bad_callbacks_are_refused(changed: dict[str, Any], secret: str) -> None:
    assert not VERIFIER.verify_delivery(delivery(**changed), secret, ACCOUNT)


def test_the_default_allow_list_is_safaricoms_only() -> None:
    fields = {k: v for k, v in ACCOUNT.model_dump().items() if k != "allowed_ips"}
    production = MpesaAccount(**fields)
    assert not VERIFIER.verify_delivery(delivery(), TOKEN, production)
    assert VERIFIER.verify_delivery(delivery(addr="196.201.212.69"), TOKEN, production)
    assert not VERIFIER.verify(json.dumps(SUCCESS).encode(), {}, TOKEN)


KEYS = [WebhookKey("mpesa-primary", TOKEN, ACCOUNT)]


def test_the_ingress_accepts_a_good_callback_as_a_raw_webhook() -> None:
    raw = accept("mpesa", "t1", KEYS, delivery())
    assert isinstance(raw, RawWebhook)
    assert raw.provider_event_id == "ws_CO_191220191020363925:0"
    assert (raw.provider_event_type, raw.account) == ("stk_callback", "mpesa-primary")


@pytest.mark.parametrize("changed", [{"token": "wrong"}, {"token": None}, {"addr": "198.51.100.7"}])
def test_the_ingress_refuses_a_bad_callback_with_401(changed: dict[str, Any]) -> None:
    refused = accept("mpesa", "t1", KEYS, delivery(**changed))
    assert refused == Rejection(401, "signature does not match the body", security=True)


def test_a_c2b_validation_and_its_confirmation_are_two_events() -> None:
    paid = c2b()
    validation = accept("mpesa", "t1", KEYS, delivery(paid, kind="validation"))
    confirmation = accept("mpesa", "t1", KEYS, delivery(paid, kind="confirmation"))
    assert isinstance(validation, RawWebhook)
    assert isinstance(confirmation, RawWebhook)
    assert (validation.provider_event_id, validation.provider_event_type) == (
        "RKTQDM7W6S:validation",
        "c2b_validation",
    )
    assert confirmation.provider_event_id == "RKTQDM7W6S:confirmation"
    assert normalize_mpesa(validation, paid) is None


# --- the normalizer ----------------------------------------------------------------------


def raw_webhook(body: dict[str, Any], event_type: str | None = "stk_callback") -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="mpesa",
        provider_event_id="evt-1",
        provider_event_type=event_type,
        content_type="application/json",
        http_headers={},
        body=json.dumps(body).encode(),
        received_at=WHEN,
    )


def test_a_successful_stk_callback_is_a_captured_payment() -> None:
    event = normalize_mpesa(raw_webhook(SUCCESS), SUCCESS)
    assert event is not None
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.order_id, event.payment_id) == ("ws_CO_191220191020363925",) * 2
    assert (event.amount_minor, event.currency, event.method) == (
        150_000,
        "KES",
        "mpesa:NLJ7RT61SV",
    )
    # What a refund must name: Daraja reverses by receipt, not by CheckoutRequestID.
    assert event.gateway_reference == "NLJ7RT61SV"
    assert event.provider_created_at == datetime(2019, 12, 19, 10, 21, 15, tzinfo=NAIROBI)


def test_a_cancelled_push_is_a_failed_payment() -> None:
    callback = {
        "MerchantRequestID": "m",
        "CheckoutRequestID": "ws_CO_2",
        "ResultCode": 1032,
        "ResultDesc": "Request cancelled by user",
    }
    body = {"Body": {"stkCallback": callback}}
    event = normalize_mpesa(raw_webhook(body), body)
    assert event is not None
    assert (event.kind, event.payment_id, event.amount_minor) == (
        PaymentEventKind.FAILED,
        "ws_CO_2",
        0,
    )
    assert (event.error_code, event.error_description) == ("1032", "Request cancelled by user")


def c2b(bill_ref: str = "ADM-2024-0042", amount: str = "1500.00") -> dict[str, Any]:
    return {
        "TransactionType": "Pay Bill",
        "TransID": "RKTQDM7W6S",
        "TransTime": "20240305093015",
        "TransAmount": amount,
        "BusinessShortCode": ACCOUNT.shortcode,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "John",
    }


def test_a_c2b_confirmation_is_a_captured_payment_for_the_student() -> None:
    body = c2b()
    event = normalize_mpesa(raw_webhook(body, "c2b_confirmation"), body)
    assert event is not None
    assert (event.kind, event.order_id, event.payment_id) == (
        PaymentEventKind.CAPTURED,
        "c2b:ADM-2024-0042",
        "RKTQDM7W6S",
    )
    assert (event.amount_minor, event.currency) == (150_000, "KES")


def test_validations_and_reversal_results_are_not_payment_events() -> None:
    assert normalize_mpesa(raw_webhook(c2b(), "c2b_validation"), c2b()) is None
    result = {"Result": {"ResultType": 0, "ResultCode": 0, "ConversationID": "AG_1"}}
    assert normalize_mpesa(raw_webhook(result, "reversal"), result) is None


@pytest.mark.parametrize(
    ("body", "event_type"),
    [
        ({"Body": {}}, "stk_callback"),
        ({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_3"}}}, "stk_callback"),
        ({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_3", "ResultCode": 0}}},
         "stk_callback"),
        (c2b(bill_ref=""), "c2b_confirmation"),
        (c2b(amount="15.005"), "c2b_confirmation"),
        (c2b(), None),  # a C2B body whose URL named no kind
    ],
)  # fmt: skip
def test_a_malformed_callback_is_a_normalization_error(
    body: dict[str, Any], event_type: str | None
) -> None:
    with pytest.raises(NormalizationError):
        normalize_mpesa(raw_webhook(body, event_type), body)


# --- test connection ---------------------------------------------------------------------

PROBE_SETTINGS = Settings(
    provider_base_urls={
        "mpesa": "http://daraja.test",
        "mpesa.token": "http://daraja.test/oauth/v1/generate",
    }
)


async def probe_answered(
    token: httpx.Response, api: httpx.Response, **changed: str
) -> providers.ProbeResult:
    def handle(request: httpx.Request) -> httpx.Response:
        return token if request.url.path == "/oauth/v1/generate" else api

    account = T1.accounts_for("mpesa")[0]
    if changed:
        fields = {k: SecretStr(v) for k, v in changed.items()}
        account = account.model_copy(update={"config": account.config.model_copy(update=fields)})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        return await providers.probe(account, PROBE_SETTINGS, http=http)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


GRANTED = httpx.Response(200, json={"access_token": "tok", "expires_in": "3599"})


@pytest.mark.anyio
async def test_the_probe_reads_darajas_answers() -> None:
    unknown = daraja_error("400.002.02", "Bad Request - Invalid CheckoutRequestID")
    ok = await probe_answered(GRANTED, httpx.Response(400, json=unknown))
    assert (ok.status, ok.http_status) == ("ok", 400)
    shortcode = daraja_error("400.002.02", "Bad Request - Invalid BusinessShortCode")
    wrong_shortcode = await probe_answered(GRANTED, httpx.Response(400, json=shortcode))
    assert wrong_shortcode.status == "unreachable"
    refused = httpx.Response(400, json=daraja_error("400.008.01", "Invalid Authentication passed"))
    # Another secret: a flow of its own, with no token cached by the probes above.
    wrong = await probe_answered(refused, httpx.Response(200), consumer_secret="wrong")
    assert (wrong.status, wrong.http_status) == ("auth_failed", None)
    assert wrong.detail == (
        "credentials refused: token endpoint answered 400: Invalid Authentication passed"
        " (400.008.01)"
    )
