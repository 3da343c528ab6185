"""Razorpay through the shared payments control plane: pay, webhook, status query, refund."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sim_support import Receiver, basic, rzp_auth
from tenant_accounts import primary

from core.tenants import Tenant
from providers.base import Delivered, Rejected
from providers.payments import PaymentSnapshot
from providers.razorpay import Razorpay, RazorpayAccount, RazorpayVerifier, normalize_razorpay
from providers.spec import Delivery
from schemas.events import (
    CommandPayload,
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

ADAPTER = Razorpay()
BASE = "http://sim/razorpay"


def cmd(payload: CommandPayload, key: str = "key-0000000001") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="razorpay",
        payload=payload,
    )


async def call(client: httpx.AsyncClient, t: Tenant, payload: CommandPayload, **kw: Any) -> Any:
    command = cmd(payload, **kw)
    response = await client.send(ADAPTER.build_request(command, payload, t, BASE))
    return ADAPTER.classify(response)


async def create(client: httpx.AsyncClient, t: Tenant, receipt: str = "inv-1-r1") -> str:
    order = CreatePaymentOrder(amount_minor=150_000, currency="INR", receipt=receipt)
    outcome = await call(client, t, order)
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref is not None
    return outcome.provider_ref


async def pay(client: httpx.AsyncClient, order_id: str, **attempt: Any) -> dict[str, Any]:
    response = await client.post(f"/_sim/payments/razorpay/orders/{order_id}/pay", json=attempt)
    assert response.status_code == 200, response.text
    return dict(response.json())


def delivered(request: httpx.Request) -> Delivery:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")


async def test_a_repeated_create_makes_one_order(client: httpx.AsyncClient, t1: Tenant) -> None:
    first, again = await create(client, t1), await create(client, t1)
    assert first == again
    listed = await client.get("/razorpay/v1/orders", headers=rzp_auth(t1))
    assert [o["id"] for o in listed.json()["items"]] == [first]


async def test_wrong_credentials_get_razorpays_401(client: httpx.AsyncClient, t1: Tenant) -> None:
    key_id = primary(t1, RazorpayAccount).key_id
    response = await client.get("/razorpay/v1/orders/order_x/payments", headers=basic(key_id, "no"))
    assert response.status_code == 401
    assert response.json()["error"]["description"] == "Authentication failed"


async def test_a_paid_order_calls_back_signed_and_normalizes_to_the_same_order(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order_id = await create(client, t1)
    paid = await pay(client, order_id, method="upi")
    assert paid["callback"]["status"] == 200
    [request] = receiver.requests
    assert str(request.url) == "http://ingress.test/webhooks/razorpay/t1"
    secret = primary(t1, RazorpayAccount).webhook_secret.get_secret_value()
    raw = accept("razorpay", "t1", [WebhookKey("razorpay-primary", secret)], delivered(request))
    assert isinstance(raw, RawWebhook)
    event = normalize_razorpay(raw, json.loads(raw.body))
    assert event is not None
    assert (event.kind, event.order_id, event.payment_id, event.amount_minor) == (
        PaymentEventKind.CAPTURED,
        order_id,
        paid["payment_id"],
        150_000,
    )
    assert event.method == "upi"
    [listed] = (await client.get("/_sim/payments/callbacks?provider=razorpay")).json()["callbacks"]
    assert listed["payment_id"] == paid["payment_id"]


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "timeout"])
async def test_unpaid_outcomes_are_payment_failed_webhooks(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, outcome: str
) -> None:
    order_id = await create(client, t1)
    await pay(client, order_id, outcome=outcome)
    body = json.loads(receiver.requests[0].content)
    assert body["event"] == "payment.failed"
    assert body["payload"]["payment"]["entity"]["status"] == "failed"
    assert RazorpayVerifier().verify(
        receiver.requests[0].content,
        {"x-razorpay-signature": receiver.requests[0].headers["x-razorpay-signature"]},
        primary(t1, RazorpayAccount).webhook_secret.get_secret_value(),
    )


async def test_a_missed_webhook_is_found_captured_by_the_status_query(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order_id = await create(client, t1)
    await pay(client, order_id, outcome="failed", send_callback=False)
    paid = await pay(client, order_id, send_callback=False)
    assert receiver.requests == []
    outcome = await call(client, t1, FetchPaymentStatus(order_id=order_id))
    assert isinstance(outcome, Delivered)
    assert PaymentSnapshot.from_details(outcome.details) == PaymentSnapshot(
        "CAPTURED", order_id, paid["payment_id"], 150_000, "INR", "card"
    )


async def test_a_partial_payment_needs_an_order_that_allows_it(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    order_id = await create(client, t1)
    refused = await client.post(
        f"/_sim/payments/razorpay/orders/{order_id}/pay", json={"amount_minor": 50_000}
    )
    assert refused.status_code == 400
    body = {"amount": 150_000, "currency": "INR", "receipt": "part-1", "partial_payment": True}
    made = await client.post("/razorpay/v1/orders", json=body, headers=rzp_auth(t1))
    partial = made.json()["id"]
    await pay(client, partial, amount_minor=50_000)
    order = (await client.get(f"/_sim/payments/razorpay/orders/{partial}")).json()
    assert (order["amount_paid"], order["amount_due"], order["status"]) == (
        50_000,
        100_000,
        "attempted",
    )


async def test_refunds_are_idempotent_and_never_exceed_the_capture(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    order_id = await create(client, t1)
    payment_id = (await pay(client, order_id))["payment_id"]
    refund = RefundPayment(
        payment_id=payment_id, order_id=order_id, amount_minor=100_000, currency="INR"
    )
    first = await call(client, t1, refund, key="refund-0000000001")
    again = await call(client, t1, refund, key="refund-0000000001")
    assert isinstance(first, Delivered)
    assert first == again
    assert first.details["refund_status"] == "processed"
    too_much = await call(client, t1, refund, key="refund-0000000002")
    assert too_much == Rejected(
        "The refund amount provided is greater than amount captured", 400, "BAD_REQUEST_ERROR"
    )
    fetched = await client.get(f"/razorpay/v1/payments/{payment_id}", headers=rzp_auth(t1))
    assert (fetched.json()["amount_refunded"], fetched.json()["refund_status"]) == (
        100_000,
        "partial",
    )


async def test_the_same_refund_key_with_another_body_is_refused(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    order_id = await create(client, t1)
    payment_id = (await pay(client, order_id))["payment_id"]
    url = f"/razorpay/v1/payments/{payment_id}/refund"
    headers = {**rzp_auth(t1), "X-Refund-Idempotency": "same-key-000001"}
    assert (await client.post(url, json={"amount": 1000}, headers=headers)).status_code == 200
    other = await client.post(url, json={"amount": 2000}, headers=headers)
    assert other.status_code == 400
    assert other.json()["error"]["description"] == (
        "Different request with the same idempotency key has already been processed."
    )
