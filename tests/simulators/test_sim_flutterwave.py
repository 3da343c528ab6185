"""The Flutterwave adapter against its simulator: create, checkout, pay, webhook, status."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import pytest
from sim_support import Receiver
from tenant_accounts import primary

from core.tenants import Tenant
from processors.normalize import normalize
from providers.base import Delivered, Rejected
from providers.flutterwave import Flutterwave, FlutterwaveAccount
from providers.payments import PaymentSnapshot
from providers.spec import Delivery
from schemas.events import (
    CommandPayload,
    ConnectorCommand,
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEvent,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import WebhookKey, accept

pytestmark = pytest.mark.anyio

ADAPTER = Flutterwave()
BASE = "http://sim/flutterwave"
ORDER = CreatePaymentOrder(amount_minor=150_050, currency="NGN", receipt="rcpt-1")


def cmd(payload: CommandPayload, tenant_id: str = "t1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, tenant_id, source="test"),
        idempotency_key="key-1",
        provider="flutterwave",
        payload=payload,
    )


async def call(client: httpx.AsyncClient, t: Tenant, payload: CommandPayload) -> httpx.Response:
    return await client.send(ADAPTER.build_request(cmd(payload, t.id), payload, t, BASE))


async def created(client: httpx.AsyncClient, t: Tenant) -> Delivered:
    outcome = ADAPTER.classify(await call(client, t, ORDER))
    assert isinstance(outcome, Delivered)
    return outcome


async def status(client: httpx.AsyncClient, t: Tenant, order_id: str) -> PaymentSnapshot:
    payload = FetchPaymentStatus(order_id=order_id, currency="NGN")
    outcome = ADAPTER.classify(await call(client, t, payload))
    assert isinstance(outcome, Delivered)
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    return snapshot


async def test_a_repeated_create_gets_the_same_checkout_and_one_order(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    first, again = await created(client, t1), await created(client, t1)
    assert first.provider_ref == again.provider_ref == "rcpt-1"
    assert first.details["payment_url"] == again.details["payment_url"]
    assert urlsplit(first.details["payment_url"]).path == "/flutterwave/checkout/rcpt-1"
    page = await client.get(first.details["payment_url"])
    assert page.status_code == 200
    assert "NGN 1,500.50" in page.text
    held = (await client.get("/_sim/payments/flutterwave/orders/rcpt-1")).json()
    assert (held["amount_minor"], held["status"], held["transactions"]) == (150_050, "pending", [])


async def test_a_wrong_secret_key_is_flutterwaves_401(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    request = ADAPTER.build_request(cmd(ORDER), ORDER, t1, BASE)
    request.headers["authorization"] = "Bearer FLWSECK_TEST-wrong"
    answered = await client.send(request)
    assert answered.status_code == 401
    assert answered.json() == {
        "status": "error",
        "message": "Invalid authorization key",
        "data": None,
    }
    assert ADAPTER.classify(answered) == Rejected("Invalid authorization key", 401)


def delivery_of(request: httpx.Request) -> Delivery:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")


async def test_a_payment_sends_a_webhook_the_hub_accepts_and_normalizes(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order = await created(client, t1)
    paid = await client.post("/_sim/payments/flutterwave/orders/rcpt-1/pay", json={})
    assert paid.status_code == 200
    [sent] = receiver.requests
    assert str(sent.url) == "http://ingress.test/webhooks/flutterwave/t1"
    account = primary(t1, FlutterwaveAccount)
    key = WebhookKey("flutterwave-primary", account.secret_hash.get_secret_value(), account)
    raw = accept("flutterwave", "t1", [key], delivery_of(sent))
    assert isinstance(raw, RawWebhook)
    event = normalize(raw)
    assert isinstance(event, PaymentEvent)
    assert event.order_id == order.provider_ref
    assert (event.amount_minor, event.currency) == (150_050, "NGN")
    snapshot = await status(client, t1, "rcpt-1")
    assert (snapshot.status, snapshot.payment_id) == ("CAPTURED", event.payment_id)
    assert event.payment_id == paid.json()["payment_id"]


async def test_a_missed_webhook_is_found_by_the_status_query(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await created(client, t1)
    assert (await status(client, t1, "rcpt-1")).status == "NOT_FOUND"
    body = {"send_callback": False, "amount_minor": 100_000}
    await client.post("/_sim/payments/flutterwave/orders/rcpt-1/pay", json=body)
    assert receiver.requests == []
    snapshot = await status(client, t1, "rcpt-1")
    assert (snapshot.status, snapshot.amount_minor) == ("CAPTURED", 100_000)


async def test_a_failed_attempt_then_a_paid_one(client: httpx.AsyncClient, t1: Tenant) -> None:
    await created(client, t1)
    await client.post("/_sim/payments/flutterwave/orders/rcpt-1/pay", json={"outcome": "failed"})
    assert (await status(client, t1, "rcpt-1")).status == "FAILED"
    await client.post("/_sim/payments/flutterwave/orders/rcpt-1/pay", json={})
    assert (await status(client, t1, "rcpt-1")).status == "CAPTURED"
    again = await call(client, t1, ORDER)  # the tx_ref has transactions now
    assert again.status_code == 400
    assert isinstance(ADAPTER.classify(again), Rejected)


async def test_a_refund_gives_back_at_most_what_was_paid(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await created(client, t1)
    paid = await client.post("/_sim/payments/flutterwave/orders/rcpt-1/pay", json={})
    payment_id = paid.json()["payment_id"]
    refund = RefundPayment(
        payment_id=payment_id, order_id="rcpt-1", amount_minor=150_050, currency="NGN"
    )
    outcome = ADAPTER.classify(await call(client, t1, refund))
    assert isinstance(outcome, Delivered)
    assert outcome.details["refund_status"] == "completed"
    assert isinstance(ADAPTER.classify(await call(client, t1, refund)), Rejected)


async def test_another_merchants_transactions_are_invisible(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    await created(client, t1)
    await client.post("/_sim/payments/flutterwave/orders/rcpt-1/pay", json={})
    assert (await status(client, t2, "rcpt-1")).status == "NOT_FOUND"


async def test_the_secret_key_is_not_recorded(client: httpx.AsyncClient, t1: Tenant) -> None:
    await created(client, t1)
    recorded = (await client.get("/_sim/requests", params={"provider": "flutterwave"})).text
    assert primary(t1, FlutterwaveAccount).secret_key.get_secret_value() not in recorded
    assert json.loads(recorded)
