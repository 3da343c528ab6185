"""Cashfree through the shared payments control plane: checkout, webhooks, status, refunds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from sim_support import Receiver
from tenant_accounts import primary

from core.tenants import Tenant
from providers.base import Delivered, Rejected
from providers.cashfree import Cashfree, CashfreeAccount, normalize_cashfree
from providers.payments import PaymentSnapshot
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
from webhook_ingress.decision import Rejection, WebhookKey, accept

pytestmark = pytest.mark.anyio

ADAPTER = Cashfree()
BASE = "http://sim/cashfree"


async def call(
    client: httpx.AsyncClient, t: Tenant, payload: CommandPayload, key: str = "key-1"
) -> Any:
    command = ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="cashfree",
        payload=payload,
    )
    response = await client.send(ADAPTER.build_request(command, payload, t, BASE))
    return ADAPTER.classify(response)


async def create(client: httpx.AsyncClient, t: Tenant) -> Delivered:
    order = CreatePaymentOrder(amount_minor=150_050, currency="INR", receipt="inv-1-r1")
    outcome = await call(client, t, order)
    assert isinstance(outcome, Delivered)
    return outcome


async def pay(client: httpx.AsyncClient, order_id: str, **attempt: Any) -> dict[str, Any]:
    response = await client.post(f"/_sim/payments/cashfree/orders/{order_id}/pay", json=attempt)
    assert response.status_code == 200, response.text
    return dict(response.json())


def secret_of(t: Tenant) -> str:
    return primary(t, CashfreeAccount).client_secret.get_secret_value()


def delivered(request: httpx.Request) -> Delivery:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")


def auth(t: Tenant) -> dict[str, str]:
    account = primary(t, CashfreeAccount)
    return {
        "x-client-id": account.client_id,
        "x-client-secret": account.client_secret.get_secret_value(),
        "x-api-version": "2023-08-01",
    }


async def test_the_payment_url_is_a_checkout_page_the_simulator_serves(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    created = await create(client, t1)
    url = created.details["payment_url"]
    assert url == "http://sim/cashfree/checkout/inv-1-r1"
    page = await client.get(url)
    assert page.status_code == 200
    assert "INR 1,500.50" in page.text
    assert 'action="/_sim/payments/cashfree/orders/inv-1-r1/checkout"' in page.text


async def test_a_success_webhook_is_signed_as_cashfree_signs_and_normalizes(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    created = await create(client, t1)
    paid = await pay(client, "inv-1-r1", method="upi")
    [request] = receiver.requests
    # Independent of the hub's verifier: base64 HMAC-SHA256 of timestamp + raw body.
    timestamp = request.headers["x-webhook-timestamp"]
    digest = hmac.new(secret_of(t1).encode(), timestamp.encode() + request.content, hashlib.sha256)
    assert request.headers["x-webhook-signature"] == base64.b64encode(digest.digest()).decode()
    assert request.headers["x-webhook-version"] == "2023-08-01"
    keys = [WebhookKey("cashfree-primary", secret_of(t1))]
    raw = accept("cashfree", "t1", keys, delivered(request))
    assert isinstance(raw, RawWebhook)
    event = normalize_cashfree(raw, json.loads(raw.body))
    assert event is not None
    assert (event.kind, event.order_id, event.payment_id, event.amount_minor) == (
        PaymentEventKind.CAPTURED,
        created.provider_ref,
        paid["payment_id"],
        150_050,
    )
    original = delivered(request)
    body = original.body.replace(b"SUCCESS", b"SUCCESs", 1)  # one byte
    tampered = Delivery("POST", original.url, {}, original.headers, body, None)
    refused = accept("cashfree", "t1", keys, tampered)
    assert isinstance(refused, Rejection)
    assert refused.status == 401


@pytest.mark.parametrize(
    ("outcome", "event", "status"),
    [
        ("failed", "PAYMENT_FAILED_WEBHOOK", "FAILED"),
        ("timeout", "PAYMENT_FAILED_WEBHOOK", "FAILED"),
        ("cancelled", "PAYMENT_USER_DROPPED_WEBHOOK", "USER_DROPPED"),
    ],
)
async def test_unpaid_outcomes_send_their_webhook(
    client: httpx.AsyncClient,
    t1: Tenant,
    receiver: Receiver,
    outcome: str,
    event: str,
    status: str,
) -> None:
    await create(client, t1)
    await pay(client, "inv-1-r1", outcome=outcome)
    body = json.loads(receiver.requests[0].content)
    assert body["type"] == event
    assert body["data"]["payment"]["payment_status"] == status
    assert body["data"]["error_details"]["error_code"]


async def test_a_missed_webhook_is_found_by_the_status_query_under_the_same_payment_id(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await create(client, t1)
    await pay(client, "inv-1-r1", outcome="failed", send_callback=False)
    paid = await pay(client, "inv-1-r1", send_callback=False)
    assert receiver.requests == []
    outcome = await call(client, t1, FetchPaymentStatus(order_id="inv-1-r1"))
    assert isinstance(outcome, Delivered)
    assert PaymentSnapshot.from_details(outcome.details) == PaymentSnapshot(
        "CAPTURED", "inv-1-r1", paid["payment_id"], 150_050, "INR", "upi"
    )


async def test_payments_of_an_unknown_order_or_with_wrong_credentials(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    missing = await call(client, t1, FetchPaymentStatus(order_id="nope-1"))
    assert isinstance(missing, Delivered)
    assert missing.details["payment.status"] == "NOT_FOUND"
    wrong = {**auth(t1), "x-client-secret": "nope"}
    response = await client.get("/cashfree/orders/inv-1-r1/payments", headers=wrong)
    assert response.status_code == 401
    assert response.json()["type"] == "authentication_error"


async def test_refunds_are_idempotent_and_never_exceed_the_payment(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await create(client, t1)
    paid = await pay(client, "inv-1-r1")
    refund = RefundPayment(
        payment_id=paid["payment_id"], order_id="inv-1-r1", amount_minor=100_000, currency="INR"
    )
    first = await call(client, t1, refund, key="refund-1")
    again = await call(client, t1, refund, key="refund-1")
    assert isinstance(first, Delivered)
    assert first == again
    assert (first.provider_ref, first.details["refund_status"]) == ("refund-1", "PENDING")
    assert first.details["cf_payment_id"] == paid["payment_id"]
    too_much = await call(client, t1, refund, key="refund-2")
    assert too_much == Rejected(
        "refund amount is greater than the refundable amount", 400, "refund_amount_invalid"
    )


async def test_an_unpaid_order_cannot_be_refunded(client: httpx.AsyncClient, t1: Tenant) -> None:
    await create(client, t1)
    refund = RefundPayment(payment_id="1", order_id="inv-1-r1", amount_minor=100, currency="INR")
    outcome = await call(client, t1, refund, key="refund-1")
    assert outcome == Rejected(
        "refund can be initiated only for a paid order", 400, "order_not_paid"
    )


async def test_a_partial_payment_is_refused(client: httpx.AsyncClient, t1: Tenant) -> None:
    await create(client, t1)
    response = await client.post(
        "/_sim/payments/cashfree/orders/inv-1-r1/pay", json={"amount_minor": 100}
    )
    assert response.status_code == 400
