"""The Stripe adapter against the Stripe simulator: auth, idempotency, status, refunds, and a
payment's signed events through the hub's ingress and normalizer; stripe-python as the oracle."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
import uvicorn
from sim_support import WEBHOOK_TEMPLATE, Receiver
from starlette.applications import Starlette
from tenant_accounts import primary

from core.ports import free_port
from core.tenants import Tenant, TenantDirectory
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.payments import PaymentSnapshot
from providers.spec import Delivery
from providers.stripe import Stripe, StripeAccount
from providers.stripe_webhooks import normalize_stripe
from schemas.events import (
    CommandPayload,
    ConnectorCommand,
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEvent,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from simulators import create_app
from simulators.stripe import NO_KEY
from webhook_ingress.decision import accept, check_route

pytestmark = pytest.mark.anyio

ADAPTER = Stripe()
BASE = "http://sim/stripe"


def cmd(payload: CommandPayload, key: str = "key-1", tenant_id: str = "t1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, tenant_id, source="test"),
        idempotency_key=key,
        provider="stripe",
        payload=payload,
    )


def create_order(amount_minor: int = 150_050, receipt: str = "rcpt-1") -> CreatePaymentOrder:
    return CreatePaymentOrder(
        amount_minor=amount_minor, currency="INR", receipt=receipt, notes={"invoice_id": "inv-1"}
    )


async def call(
    client: httpx.AsyncClient, t: Tenant, command: ConnectorCommand
) -> tuple[httpx.Response, Outcome]:
    request = ADAPTER.build_request(command, command.payload, t, BASE)
    response = await client.send(request)
    return response, ADAPTER.classify(response)


async def created(client: httpx.AsyncClient, t: Tenant, key: str = "key-1") -> Delivered:
    _, outcome = await call(client, t, cmd(create_order(), key))
    assert isinstance(outcome, Delivered), outcome
    return outcome


async def status(client: httpx.AsyncClient, t: Tenant, session_id: str) -> PaymentSnapshot:
    _, outcome = await call(client, t, cmd(FetchPaymentStatus(order_id=session_id)))
    assert isinstance(outcome, Delivered), outcome
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    return snapshot


def key_of(t: Tenant) -> str:
    return primary(t, StripeAccount).secret_key.get_secret_value()


def gateway_sessions(app: Starlette) -> dict[str, Any]:
    found: dict[str, Any] = app.state.sim.gateways["stripe"].store.sessions
    return found


# --- create, auth, idempotency -------------------------------------------------------


async def test_a_redelivered_create_makes_one_session_with_a_checkout_page(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    first = await created(client, t1)
    again_response, again = await call(client, t1, cmd(create_order()))
    assert again == first
    assert again_response.headers["idempotent-replayed"] == "true"
    assert list(gateway_sessions(app)) == [first.provider_ref]
    assert first.provider_ref is not None and first.provider_ref.startswith("cs_test_")
    assert first.details["payment_url"] == f"http://sim/stripe/checkout/{first.provider_ref}"
    assert (first.details["status"], first.details["payment_status"]) == ("open", "unpaid")
    page = await client.get(first.details["payment_url"])
    assert page.status_code == 200
    assert "INR 1,500.50" in page.text


async def test_the_session_carries_what_the_hub_sent(client: httpx.AsyncClient, t1: Tenant) -> None:
    session_id = (await created(client, t1)).provider_ref
    fetched = await client.get(
        f"/stripe/v1/checkout/sessions/{session_id}",
        headers={"Authorization": f"Bearer {key_of(t1)}"},
    )
    body = fetched.json()
    assert (body["object"], body["mode"], body["amount_total"], body["currency"]) == (
        "checkout.session",
        "payment",
        150_050,
        "inr",
    )
    assert body["metadata"] == {"invoice_id": "inv-1", "receipt": "rcpt-1"}
    assert body["client_reference_id"] == "rcpt-1"
    assert body["success_url"] == "https://t1.school.example/fees/paid"
    assert body["payment_intent"] is None


async def test_the_same_key_with_other_parameters_is_an_idempotency_error(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await created(client, t1)
    response, outcome = await call(client, t1, cmd(create_order(amount_minor=99_900)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "idempotency_error"
    assert error["message"].startswith(
        "Keys for idempotent requests can only be used with the same parameters"
    )
    assert outcome == Rejected(error["message"], 400, "idempotency_error")


async def test_another_key_makes_another_session(client: httpx.AsyncClient, t1: Tenant) -> None:
    first = await created(client, t1, "key-1")
    second = await created(client, t1, "key-2")
    assert first.provider_ref != second.provider_ref


async def test_a_wrong_or_missing_key_is_stripes_401(client: httpx.AsyncClient) -> None:
    form = {"mode": "payment"}
    wrong = await client.post(
        "/stripe/v1/checkout/sessions",
        data=form,
        headers={"Authorization": "Bearer sk_test_notthekey1234"},
    )
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": {
            "message": "Invalid API Key provided: sk_test_************1234",
            "type": "invalid_request_error",
        }
    }
    missing = await client.post("/stripe/v1/checkout/sessions", data=form)
    assert missing.json() == {"error": {"message": NO_KEY, "type": "invalid_request_error"}}
    assert ADAPTER.classify(
        httpx.Response(401, json=wrong.json(), request=wrong.request)
    ) == Rejected(
        "Invalid API Key provided: sk_test_************1234", 401, "invalid_request_error"
    )


async def test_an_invalid_session_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    answer = await client.post(
        "/stripe/v1/checkout/sessions",
        data={"mode": "payment", "line_items[0][quantity]": "1", "colour": "blue"},
        headers={"Authorization": f"Bearer {key_of(t1)}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": "Received unknown parameter: colour",
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
        "param": "colour",
    }


async def test_another_schools_key_cannot_see_the_session(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    session_id = (await created(client, t1)).provider_ref
    assert session_id is not None
    _, outcome = await call(client, t2, cmd(FetchPaymentStatus(order_id=session_id), "k", "t2"))
    assert outcome == Delivered(
        session_id, 404, PaymentSnapshot("NOT_FOUND", session_id).to_details()
    )


async def test_a_queued_fault_is_answered_as_stripe_and_retried(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    added = await client.post("/_sim/faults", json={"provider": "stripe", "status": 503})
    assert added.status_code == 201
    _, outcome = await call(client, t1, cmd(create_order()))
    assert outcome == RetryLater("An unknown error occurred", 503, "api_error")


# --- paying: events through the hub's ingress and normalizer -----------------------------


async def pay(client: httpx.AsyncClient, session_id: str, **attempt: Any) -> dict[str, Any]:
    answer = await client.post(f"/_sim/payments/stripe/orders/{session_id}/pay", json=attempt)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def through_the_hub(request: httpx.Request, tenants: TenantDirectory) -> PaymentEvent | None:
    """The callback as the ingress verifies it and the normalizer reads it."""
    assert str(request.url) == "http://ingress.test/webhooks/stripe/t1"
    headers = {k.lower(): v for k, v in request.headers.items()}
    delivery = Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")
    keys = check_route("stripe", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("stripe", "t1", keys, delivery)
    assert isinstance(raw, RawWebhook), raw
    assert raw.provider_event_id.startswith("evt_")
    return normalize_stripe(raw, json.loads(raw.body))


async def test_a_payment_is_one_captured_event_whose_ids_the_status_query_repeats(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    session_id = (await created(client, t1)).provider_ref
    assert session_id is not None
    result = await pay(client, session_id)
    assert result["events"] == ["checkout.session.completed"]
    [callback] = receiver.requests
    assert callback.headers["user-agent"].startswith("Stripe/1.0")
    event = through_the_hub(callback, tenants)
    assert event is not None
    assert event.kind is PaymentEventKind.CAPTURED
    assert event.order_id == session_id
    assert event.payment_id == result["payment_id"]
    assert event.payment_id.startswith("pi_")
    assert (event.amount_minor, event.currency, event.method) == (150_050, "INR", "card")
    snapshot = await status(client, t1, session_id)
    assert (snapshot.status, snapshot.order_id, snapshot.payment_id) == (
        "CAPTURED",
        session_id,
        event.payment_id,
    )


async def test_a_missed_webhook_is_found_by_the_status_query(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    session_id = (await created(client, t1)).provider_ref
    assert session_id is not None
    assert (await status(client, t1, session_id)).status == "PENDING"
    result = await pay(client, session_id, send_callback=False)
    assert receiver.requests == []
    assert "callback" not in result
    snapshot = await status(client, t1, session_id)
    assert snapshot == PaymentSnapshot(
        "CAPTURED", session_id, result["payment_id"], 150_050, "INR", "card"
    )


async def test_a_failed_async_payment_sends_completed_then_failed(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    session_id = (await created(client, t1)).provider_ref
    assert session_id is not None
    result = await pay(client, session_id, outcome="failed")
    assert result["events"] == [
        "checkout.session.completed",
        "checkout.session.async_payment_failed",
    ]
    completed, failed = receiver.requests
    assert through_the_hub(completed, tenants) is None  # unpaid: still settling
    event = through_the_hub(failed, tenants)
    assert event is not None
    assert (event.kind, event.order_id, event.error_code) == (
        PaymentEventKind.FAILED,
        session_id,
        "async_payment_failed",
    )
    snapshot = await status(client, t1, session_id)
    assert (snapshot.status, snapshot.payment_id) == ("FAILED", event.payment_id)
    assert snapshot.error_code == "insufficient_funds"


async def test_an_abandoned_checkout_expires_and_fails_under_the_sessions_id(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    delivered = await created(client, t1)
    session_id = delivered.provider_ref
    assert session_id is not None
    await pay(client, session_id, outcome="cancelled")
    [expired] = receiver.requests
    event = through_the_hub(expired, tenants)
    assert event is not None
    assert (event.kind, event.payment_id, event.error_code) == (
        PaymentEventKind.FAILED,
        session_id,
        "expired",
    )
    snapshot = await status(client, t1, session_id)
    assert (snapshot.status, snapshot.payment_id) == ("FAILED", session_id)
    assert (await client.get(delivered.details["payment_url"])).status_code == 404
    again = await client.post(f"/_sim/payments/stripe/orders/{session_id}/pay", json={})
    assert again.status_code == 409


async def test_a_partial_amount_cannot_be_paid_through_checkout(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    session_id = (await created(client, t1)).provider_ref
    answer = await client.post(
        f"/_sim/payments/stripe/orders/{session_id}/pay", json={"amount_minor": 100}
    )
    assert answer.status_code == 400


# --- refunds ----------------------------------------------------------------------------


def refund(payment_id: str, amount_minor: int, session_id: str = "cs") -> RefundPayment:
    return RefundPayment(
        payment_id=payment_id, order_id=session_id, amount_minor=amount_minor, currency="INR"
    )


async def test_a_refund_is_made_once_per_key_and_never_beyond_the_payment(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    session_id = (await created(client, t1)).provider_ref
    assert session_id is not None
    payment_id = (await pay(client, session_id, send_callback=False))["payment_id"]
    _, first = await call(client, t1, cmd(refund(payment_id, 100_000), "refund-1"))
    _, replay = await call(client, t1, cmd(refund(payment_id, 100_000), "refund-1"))
    assert isinstance(first, Delivered)
    assert first == replay
    assert first.details["amount_minor"] == "100000"
    assert first.provider_ref is not None and first.provider_ref.startswith("re_")
    _, too_much = await call(client, t1, cmd(refund(payment_id, 60_000), "refund-2"))
    assert too_much == Rejected(
        "Refund amount (60000) is greater than unrefunded amount on charge (50050)",
        400,
        "amount_too_large",
    )
    _, rest = await call(client, t1, cmd(refund(payment_id, 50_050), "refund-3"))
    assert isinstance(rest, Delivered)


async def test_a_refund_of_an_unknown_or_unpaid_intent_is_rejected(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    _, unknown = await call(client, t1, cmd(refund("pi_nope", 100)))
    assert unknown == Rejected("No such payment_intent: 'pi_nope'", 404, "resource_missing")


# --- stripe-python as the oracle, over a real socket -------------------------------------------


@pytest.fixture
def server(tenants: TenantDirectory, receiver: Receiver) -> Iterator[str]:
    app = create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        running.should_exit = True
        thread.join(timeout=10)


def sdk(server: str, api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key, base_addresses={"api": f"{server}/stripe"}, max_network_retries=0
    )


SESSION: dict[str, Any] = {
    "mode": "payment",
    "line_items": [
        {
            "price_data": {
                "currency": "usd",
                "unit_amount": 2500,
                "product_data": {"name": "Term fee"},
            },
            "quantity": 2,
        }
    ],
    "success_url": "https://school.example/paid",
    "metadata": {"invoice_id": "inv-7"},
}


def test_stripe_python_creates_pays_retrieves_and_refunds_a_session(
    server: str, t1: Tenant, receiver: Receiver
) -> None:
    client = sdk(server, key_of(t1))
    created = client.v1.checkout.sessions.create(SESSION, {"idempotency_key": "sdk-1"})
    assert isinstance(created, stripe.checkout.Session)
    assert (created.amount_total, created.currency, created.status) == (5000, "usd", "open")
    assert created.metadata.to_dict() == {"invoice_id": "inv-7"}
    assert created.url == f"{server}/stripe/checkout/{created.id}"
    paid = httpx.post(f"{server}/_sim/payments/stripe/orders/{created.id}/pay", json={})
    assert paid.status_code == 200
    fetched = client.v1.checkout.sessions.retrieve(created.id, {"expand": ["payment_intent"]})
    assert fetched.payment_status == "paid"
    assert isinstance(fetched.payment_intent, stripe.PaymentIntent)
    assert (fetched.payment_intent.status, fetched.payment_intent.amount_received) == (
        "succeeded",
        5000,
    )
    refund = client.v1.refunds.create({"payment_intent": fetched.payment_intent.id, "amount": 1000})
    assert isinstance(refund, stripe.Refund)
    assert (refund.status, refund.amount, refund.payment_intent) == (
        "succeeded",
        1000,
        fetched.payment_intent.id,
    )
    # The event the simulator signed is one stripe-python accepts with the endpoint secret.
    [callback] = receiver.requests
    secret = primary(t1, StripeAccount).webhook_secret.get_secret_value()
    event = stripe.Webhook.construct_event(
        callback.content, callback.headers["stripe-signature"], secret
    )
    assert event.type == "checkout.session.completed"
    assert event.data.object["id"] == created.id


def test_stripe_python_reads_the_simulators_errors(server: str, t1: Tenant) -> None:
    client = sdk(server, key_of(t1))
    client.v1.checkout.sessions.create(SESSION, {"idempotency_key": "sdk-2"})
    changed = {**SESSION, "metadata": {"invoice_id": "inv-8"}}
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(changed, {"idempotency_key": "sdk-2"})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.AuthenticationError):
        sdk(server, "sk_test_wrong").v1.balance.retrieve()
    assert sdk(server, key_of(t1)).v1.balance.retrieve().object == "balance"
