"""The M-Pesa adapter's own requests against the Daraja simulator: OAuth, STK push, the
parent's phone and its callback (through the hub's verifier and normalizer), the STK
query, the reversal, C2B registration and a paybill payment."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sim_support import Receiver, basic
from tenant_accounts import primary

import providers
from core.settings import Settings
from core.tenants import Tenant
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.mpesa import Mpesa, MpesaAccount, register_c2b_urls, stk_password
from providers.mpesa_callbacks import normalize_mpesa
from providers.payments import PaymentSnapshot
from providers.spec import Delivery
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import WebhookKey, accept

pytestmark = pytest.mark.anyio

ADAPTER = Mpesa()
SETTINGS = Settings(provider_base_urls=providers.simulator_base_urls("http://sim"))
BASE = "http://sim/mpesa"
HUB = "http://ingress.test/webhooks/mpesa/t1"


def cmd(payload: Any, key: str = "key-1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="mpesa",
        payload=payload,
    )


def push_payload(phone: str = "0712345678", amount_minor: int = 150_000) -> CreatePaymentOrder:
    notes = {"student_id": "ADM-42", "customer_phone": phone, "invoice_id": "inv-1"}
    return CreatePaymentOrder(
        amount_minor=amount_minor, currency="KES", receipt="rcpt-1", notes=notes, callback_url=HUB
    )


async def call(
    client: httpx.AsyncClient, t: Tenant, payload: Any
) -> tuple[httpx.Response, Outcome]:
    request = ADAPTER.build_request(cmd(payload), payload, t, BASE)
    response = await client.send(request, auth=ADAPTER.auth(t, SETTINGS))
    return response, ADAPTER.classify(response)


async def push(client: httpx.AsyncClient, t: Tenant, phone: str = "0712345678") -> str:
    _, outcome = await call(client, t, push_payload(phone))
    assert isinstance(outcome, Delivered), outcome
    assert outcome.provider_ref is not None
    return outcome.provider_ref


async def status(client: httpx.AsyncClient, t: Tenant, order_id: str) -> PaymentSnapshot | None:
    _, outcome = await call(client, t, FetchPaymentStatus(order_id=order_id, amount_minor=150_000))
    assert isinstance(outcome, Delivered), outcome
    return PaymentSnapshot.from_details(outcome.details)


async def pay(client: httpx.AsyncClient, order_id: str, **attempt: Any) -> dict[str, Any]:
    response = await client.post(f"/_sim/payments/mpesa/orders/{order_id}/pay", json=attempt)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def as_delivery(request: httpx.Request) -> Delivery:
    # The simulator's callbacks come from 127.0.0.1, which the demo allow-list admits.
    return Delivery(
        "POST",
        str(request.url),
        dict(request.url.params),
        {k.lower(): v for k, v in request.headers.items()},
        request.content,
        "127.0.0.1",
    )


def received(receiver: Receiver, t: Tenant) -> RawWebhook:
    account = primary(t, MpesaAccount)
    keys = [WebhookKey("mpesa-primary", account.callback_token.get_secret_value(), account)]
    raw = accept("mpesa", t.id, keys, as_delivery(receiver.requests[-1]))
    assert isinstance(raw, RawWebhook), raw
    return raw


async def test_the_token_endpoint_wants_the_apps_credentials(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    account = primary(t1, MpesaAccount)
    good = basic(account.consumer_key, account.consumer_secret.get_secret_value())
    path = "/mpesa/oauth/v1/generate?grant_type=client_credentials"
    issued = await client.get(path, headers=good)
    assert issued.status_code == 200
    assert issued.json()["expires_in"] == "3599"
    wrong = await client.get(path, headers=basic(account.consumer_key, "not-the-secret"))
    assert wrong.status_code == 400
    assert (wrong.json()["errorCode"], wrong.json()["errorMessage"]) == (
        "400.008.01",
        "Invalid Authentication passed",
    )
    grant = await client.get("/mpesa/oauth/v1/generate?grant_type=password", headers=good)
    assert grant.json()["errorCode"] == "400.008.02"


async def test_a_push_without_a_valid_token_is_darajas_invalid_access_token(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    request = ADAPTER.build_request(cmd(push_payload()), push_payload(), t1, BASE)
    request.headers["Authorization"] = "Bearer made-up"
    refused = await client.send(request)
    assert refused.status_code == 404
    assert refused.json()["errorCode"] == "404.001.03"


async def test_a_wrong_password_is_wrong_credentials(client: httpx.AsyncClient, t1: Tenant) -> None:
    account = primary(t1, MpesaAccount)
    request = ADAPTER.build_request(cmd(push_payload()), push_payload(), t1, BASE)
    body = json.loads(request.content)
    body["Password"] = stk_password(account.shortcode, "not-the-passkey", body["Timestamp"])
    forged = httpx.Request("POST", request.url, json=body)
    response = await client.send(forged, auth=ADAPTER.auth(t1, SETTINGS))
    assert response.status_code == 500
    assert ADAPTER.classify(response) == Rejected("Wrong credentials", 500, "500.001.1001")


async def test_a_second_push_while_the_prompt_is_open_is_refused_then_retried(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    # Daraja has no idempotency: the phone's lock is what stops a second prompt.
    first = await push(client, t1)
    _, again = await call(client, t1, push_payload())
    assert isinstance(again, RetryLater)
    assert again.reason.startswith("Unable to lock subscriber")
    orders = (await client.get(f"/_sim/payments/mpesa/orders/{first}")).json()
    assert orders["status"] == "PENDING"
    other_phone = await push(client, t1, phone="0722000111")
    assert other_phone != first


async def test_the_parent_pays_and_the_callback_becomes_the_orders_payment(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order_id = await push(client, t1)
    assert await status(client, t1, order_id) == PaymentSnapshot("PENDING", order_id)
    paid = await pay(client, order_id)
    assert (paid["status"], paid["callback"]["status"]) == ("PAID", 200)
    sent = receiver.requests[-1]
    assert str(sent.url).startswith(f"{HUB}?token=")
    raw = received(receiver, t1)
    assert raw.provider_event_id == f"{order_id}:0"
    event = normalize_mpesa(raw, json.loads(raw.body))
    assert event is not None
    assert (event.kind, event.order_id, event.payment_id) == (
        PaymentEventKind.CAPTURED,
        order_id,
        order_id,
    )
    assert (event.amount_minor, event.method) == (150_000, f"mpesa:{paid['receipt']}")
    captured = await status(client, t1, order_id)
    assert captured is not None
    # The status path names the same payment the callback did: one ledger entry.
    assert (captured.status, captured.payment_id) == ("CAPTURED", event.payment_id)


@pytest.mark.parametrize(
    ("outcome", "code"), [("cancelled", "1032"), ("timeout", "1037"), ("failed", "1")]
)
async def test_an_unpaid_prompt_is_a_failed_payment_both_ways(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, outcome: str, code: str
) -> None:
    order_id = await push(client, t1)
    await pay(client, order_id, outcome=outcome)
    event = normalize_mpesa(received(receiver, t1), json.loads(receiver.requests[-1].content))
    assert event is not None
    assert (event.kind, event.error_code) == (PaymentEventKind.FAILED, code)
    failed = await status(client, t1, order_id)
    assert failed is not None
    assert (failed.status, failed.error_code) == ("FAILED", code)


async def test_a_missed_callback_is_found_by_the_query(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order_id = await push(client, t1)
    await pay(client, order_id, send_callback=False)
    assert receiver.requests == []
    found = await status(client, t1, order_id)
    assert found == PaymentSnapshot("CAPTURED", order_id, order_id, 150_000, "KES", "mpesa")


async def test_another_schools_push_is_not_found(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    order_id = await push(client, t1)
    assert await status(client, t2, order_id) == PaymentSnapshot("NOT_FOUND", order_id)


async def test_a_paid_push_is_reversed_by_its_receipt(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    order_id = await push(client, t1)
    receipt = (await pay(client, order_id, send_callback=False))["receipt"]
    refund = RefundPayment(
        payment_id=receipt, order_id=order_id, amount_minor=150_000, currency="KES"
    )
    _, outcome = await call(client, t1, refund)
    assert isinstance(outcome, Delivered), outcome
    assert outcome.details["refund_status"] == "PENDING"
    unknown = refund.model_copy(update={"payment_id": "NOTARECEIPT"})
    _, refused = await call(client, t1, unknown)
    assert refused == Rejected("Bad Request - Invalid TransactionID", 400, "400.002.02")


async def test_the_phone_page_shows_the_prompt(client: httpx.AsyncClient, t1: Tenant) -> None:
    _, outcome = await call(client, t1, push_payload())
    assert isinstance(outcome, Delivered)
    page = outcome.details["payment_url"]
    assert page == f"{BASE}/phone/{outcome.provider_ref}"
    shown = await client.get(page.removeprefix("http://sim"))
    assert shown.status_code == 200
    assert "KES 1500" in shown.text
    assert "254712345678" in shown.text


async def test_a_paybill_payment_is_confirmed_at_the_registered_url(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    registered = await register_c2b_urls(t1, None, SETTINGS, client)
    assert isinstance(registered, Delivered), registered
    paid = await client.post(
        "/mpesa/_phone/paybill",
        json={"tenant": "t1", "bill_ref": "ADM-42", "amount_minor": 250_000},
    )
    assert paid.status_code == 200, paid.text
    sent = receiver.requests[-1]
    account = primary(t1, MpesaAccount)
    assert str(sent.url).startswith(account.hub_callback_url)
    assert sent.url.params["kind"] == "confirmation"
    raw = received(receiver, t1)
    event = normalize_mpesa(raw, json.loads(raw.body))
    assert event is not None
    assert (event.order_id, event.payment_id, event.amount_minor) == (
        "c2b:ADM-42",
        paid.json()["payment_id"],
        250_000,
    )
