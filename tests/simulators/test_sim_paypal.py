"""The PayPal adapter against the PayPal simulator: token auth, idempotent orders, approval,
capture, status, refund, and webhooks the hub's verifier accepts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from paypalserversdk.configuration import Environment, Server
from paypalserversdk.exceptions.error_exception import ErrorException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient
from sim_support import WEBHOOK_TEMPLATE, Receiver, basic
from starlette.applications import Starlette
from tenant_accounts import primary

from core.ports import free_port
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from providers.base import Delivered, Rejected
from providers.payments import FollowUp, PaymentSnapshot
from providers.paypal import PayPal, PayPalAccount
from providers.paypal_webhooks import CertificateStore, PayPalVerifier, normalize_paypal
from providers.spec import Delivery
from schemas.events import (
    CapturePayment,
    CommandPayload,
    ConnectorCommand,
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from simulators import create_app
from simulators.paypal_webhooks import CERT_ID

pytestmark = pytest.mark.anyio

BASE = "http://sim/paypal"
SETTINGS = Settings(provider_base_urls={"paypal.token": f"{BASE}/v1/oauth2/token"})
CERT_URL = f"{BASE}/v1/notifications/certs/{CERT_ID}"


@pytest.fixture
async def hub(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The hub's side: a client with no base URL, as the connector's is."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as c:
        yield c


def command(payload: CommandPayload, key: str = "key-1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="paypal",
        payload=payload,
    )


def order_payload(amount_minor: int = 150_050) -> CreatePaymentOrder:
    return CreatePaymentOrder(
        amount_minor=amount_minor,
        currency="USD",
        receipt="rcpt-1",
        notes={"invoice_id": "inv-1"},
        return_url="https://t1.school.example/paid",
    )


async def call(
    adapter: PayPal, hub: httpx.AsyncClient, t: Tenant, cmd: ConnectorCommand
) -> httpx.Response:
    request = adapter.build_request(cmd, cmd.payload, t, BASE)
    return await hub.send(request, auth=adapter.auth(t, SETTINGS))


async def created_order(adapter: PayPal, hub: httpx.AsyncClient, t: Tenant) -> Delivered:
    outcome = adapter.classify(await call(adapter, hub, t, command(order_payload())))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref
    return outcome


async def verifier_for(client: httpx.AsyncClient) -> PayPalVerifier:
    pem = (await client.get(CERT_URL)).content

    def fetch(url: str) -> bytes | None:
        return pem if url == CERT_URL else None

    return PayPalVerifier(
        CertificateStore(fetch), trusted_prefixes=lambda: (f"{BASE}/v1/notifications/certs/",)
    )


def delivery_of(request: httpx.Request) -> Delivery:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")


def raw_webhook(request: httpx.Request) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="paypal",
        provider_event_id=json.loads(request.content)["id"],
        content_type="application/json",
        http_headers={},
        body=request.content,
        received_at=EventHeader.new("x", "t1", source="test").occurred_at,
    )


def normalized(request: httpx.Request) -> Any:
    return normalize_paypal(raw_webhook(request), json.loads(request.content))


# --- auth --------------------------------------------------------------------------------


async def test_the_token_endpoint_issues_a_bearer_token_for_the_right_pair(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    account = primary(t1, PayPalAccount)
    secret = account.client_secret.get_secret_value()
    form = {"grant_type": "client_credentials"}
    ok = await client.post(
        "/paypal/v1/oauth2/token", data=form, headers=basic(account.client_id, secret)
    )
    assert ok.status_code == 200
    assert (ok.json()["token_type"], ok.json()["expires_in"]) == ("Bearer", 32400)
    wrong = await client.post(
        "/paypal/v1/oauth2/token", data=form, headers=basic(account.client_id, "nope")
    )
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": "invalid_client",
        "error_description": "Client Authentication failed",
    }


async def test_an_api_call_without_a_valid_token_gets_paypals_401(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.post(
        "/paypal/v2/checkout/orders", json={}, headers={"Authorization": "Bearer A21AAbogus"}
    )
    assert refused.status_code == 401
    assert refused.json()["name"] == "AUTHENTICATION_FAILURE"


# --- orders ----------------------------------------------------------------------------


async def test_a_repeated_create_makes_one_order_with_a_payer_action_link(
    app: Starlette, hub: httpx.AsyncClient, t1: Tenant
) -> None:
    adapter = PayPal()
    first = await call(adapter, hub, t1, command(order_payload()))
    again = await call(adapter, hub, t1, command(order_payload()))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    outcome = adapter.classify(first)
    assert isinstance(outcome, Delivered)
    order_id = first.json()["id"]
    assert outcome.provider_ref == order_id
    assert outcome.details["payment_url"] == f"{BASE}/checkout/{order_id}"
    assert outcome.details["status"] == "PAYER_ACTION_REQUIRED"
    orders = [o for o in app.state.sim.gateways["paypal"].orders.values()]
    assert len(orders) == 1
    # One token for both calls: the flow cached it.
    assert len(app.state.sim.gateways["paypal"].tokens) == 1


async def test_another_body_under_the_same_request_id_is_refused(
    hub: httpx.AsyncClient, t1: Tenant
) -> None:
    adapter = PayPal()
    await call(adapter, hub, t1, command(order_payload()))
    other = await call(adapter, hub, t1, command(order_payload(amount_minor=99)))
    assert other.status_code == 422
    assert adapter.classify(other) == Rejected(
        "The PayPal-Request-Id has already been used for another request.",
        422,
        "PAYPAL_REQUEST_ID_PREVIOUSLY_USED",
    )


async def test_another_apps_order_is_not_found(
    hub: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    adapter = PayPal()
    created = await created_order(adapter, hub, t1)
    assert created.provider_ref is not None
    status = FetchPaymentStatus(order_id=created.provider_ref)
    outcome = adapter.classify(await call(adapter, hub, t2, command(status)))
    assert isinstance(outcome, Delivered)
    assert outcome.details["payment.status"] == "NOT_FOUND"


async def test_the_approval_page_shows_the_order(hub: httpx.AsyncClient, t1: Tenant) -> None:
    created = await created_order(PayPal(), hub, t1)
    page = await hub.get(created.details["payment_url"])
    assert page.status_code == 200
    assert "USD 1,500.50" in page.text


# --- paying, capturing, webhooks ----------------------------------------------------------


async def test_approval_webhook_then_capture_then_completed_webhook_all_name_one_order(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, receiver: Receiver, t1: Tenant
) -> None:
    adapter = PayPal()
    verifier = await verifier_for(client)
    account = primary(t1, PayPalAccount)
    created = await created_order(adapter, hub, t1)
    order_id = created.provider_ref
    assert order_id is not None
    paid = (await client.post(f"/_sim/payments/paypal/orders/{order_id}/pay", json={})).json()
    assert paid["status"] == "APPROVED"
    [approved] = receiver.requests
    assert str(approved.url) == "http://ingress.test/webhooks/paypal/t1"
    assert verifier.verify_delivery(delivery_of(approved), "unused", account)
    follow_up = normalized(approved)
    assert follow_up == FollowUp("capture", order_id, reason="approved")

    captured = await call(adapter, hub, t1, command(CapturePayment(order_id=order_id), "cap-1"))
    assert captured.status_code == 201
    outcome = adapter.classify(captured)
    assert isinstance(outcome, Delivered)
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    assert (snapshot.status, snapshot.order_id, snapshot.amount_minor) == (
        "CAPTURED",
        order_id,
        150_050,
    )
    [_, completed] = receiver.requests
    assert verifier.verify_delivery(delivery_of(completed), "unused", account)
    event = normalized(completed)
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.order_id, event.payment_id) == (order_id, snapshot.payment_id)
    assert (event.amount_minor, event.currency) == (150_050, "USD")

    again = await call(adapter, hub, t1, command(CapturePayment(order_id=order_id), "cap-2"))
    assert (again.status_code, again.json()["details"][0]["issue"]) == (
        422,
        "ORDER_ALREADY_CAPTURED",
    )


async def test_a_tampered_or_foreign_webhook_is_refused(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, receiver: Receiver, t1: Tenant, t2: Tenant
) -> None:
    verifier = await verifier_for(client)
    created = await created_order(PayPal(), hub, t1)
    await client.post(f"/_sim/payments/paypal/orders/{created.provider_ref}/pay", json={})
    [approved] = receiver.requests
    delivery = delivery_of(approved)
    tampered = Delivery("POST", delivery.url, {}, delivery.headers, delivery.body + b" ", None)
    assert not verifier.verify_delivery(tampered, "unused", primary(t1, PayPalAccount))
    # Signed for t1's webhook id: t2's subscription would not have received it.
    assert not verifier.verify_delivery(delivery, "unused", primary(t2, PayPalAccount))


async def test_a_failed_payment_is_a_declined_capture_and_a_denied_webhook(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, receiver: Receiver, t1: Tenant
) -> None:
    adapter = PayPal()
    order_id = (await created_order(adapter, hub, t1)).provider_ref
    assert order_id is not None
    await client.post(f"/_sim/payments/paypal/orders/{order_id}/pay", json={"outcome": "failed"})
    outcome = adapter.classify(
        await call(adapter, hub, t1, command(CapturePayment(order_id=order_id)))
    )
    assert isinstance(outcome, Delivered)
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    assert snapshot.status == "FAILED"
    [_, denied] = receiver.requests
    event = normalized(denied)
    assert event.kind is PaymentEventKind.FAILED
    assert (event.order_id, event.payment_id) == (order_id, snapshot.payment_id)
    assert event.error_code == "DECLINED_BY_RISK_FRAUD_FILTERS"


async def test_a_cancelled_payment_sends_nothing_and_cannot_be_captured(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, receiver: Receiver, t1: Tenant
) -> None:
    adapter = PayPal()
    order_id = (await created_order(adapter, hub, t1)).provider_ref
    assert order_id is not None
    paid = await client.post(
        f"/_sim/payments/paypal/orders/{order_id}/pay", json={"outcome": "cancelled"}
    )
    assert paid.json()["status"] == "PAYER_ACTION_REQUIRED"
    assert receiver.requests == []
    outcome = adapter.classify(
        await call(adapter, hub, t1, command(CapturePayment(order_id=order_id)))
    )
    assert outcome == Rejected(
        "Payer has not yet approved the Order for payment. Please redirect the payer to the "
        "'rel':'approve' url returned as part of the HATEOAS links within the Create Order "
        "call or provide a valid payment_source in the request.",
        422,
        "ORDER_NOT_APPROVED",
    )


async def test_a_missed_webhook_is_found_by_status_then_captured_then_refunded(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, receiver: Receiver, t1: Tenant
) -> None:
    adapter = PayPal()
    order_id = (await created_order(adapter, hub, t1)).provider_ref
    assert order_id is not None
    pay = {"send_callback": False}
    await client.post(f"/_sim/payments/paypal/orders/{order_id}/pay", json=pay)
    assert receiver.requests == []

    async def status() -> PaymentSnapshot:
        answer = await call(adapter, hub, t1, command(FetchPaymentStatus(order_id=order_id)))
        outcome = adapter.classify(answer)
        assert isinstance(outcome, Delivered)
        found = PaymentSnapshot.from_details(outcome.details)
        assert found is not None
        return found

    assert (await status()).status == "AUTHORIZED"  # approved, not yet captured
    captured = adapter.classify(
        await call(adapter, hub, t1, command(CapturePayment(order_id=order_id)))
    )
    assert isinstance(captured, Delivered)
    after = await status()
    assert (after.status, after.payment_id) == ("CAPTURED", captured.details["payment.payment_id"])

    refund = RefundPayment(
        payment_id=after.payment_id, order_id=order_id, amount_minor=50_000, currency="USD"
    )
    refunded = await call(adapter, hub, t1, command(refund, "refund-1"))
    repeated = await call(adapter, hub, t1, command(refund, "refund-1"))
    assert (refunded.status_code, repeated.status_code) == (201, 200)
    assert refunded.json()["id"] == repeated.json()["id"]
    assert refunded.json()["amount"] == {"currency_code": "USD", "value": "500.00"}
    outcome = adapter.classify(refunded)
    assert isinstance(outcome, Delivered)
    assert outcome.details["status"] == "COMPLETED"
    too_much = RefundPayment(
        payment_id=after.payment_id, order_id=order_id, amount_minor=200_000, currency="USD"
    )
    exceeded = adapter.classify(await call(adapter, hub, t1, command(too_much, "refund-2")))
    assert isinstance(exceeded, Rejected)
    assert (exceeded.http_status, exceeded.error_code) == (422, "REFUND_AMOUNT_EXCEEDED")


async def test_a_partial_payment_is_refused_by_the_control_plane(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, t1: Tenant
) -> None:
    order_id = (await created_order(PayPal(), hub, t1)).provider_ref
    paid = await client.post(
        f"/_sim/payments/paypal/orders/{order_id}/pay", json={"amount_minor": 100}
    )
    assert paid.status_code == 400


async def test_a_queued_fault_answers_paypals_error_body(
    client: httpx.AsyncClient, hub: httpx.AsyncClient, t1: Tenant
) -> None:
    assert (
        await client.post("/_sim/faults", json={"provider": "paypal", "status": 503})
    ).status_code == 201
    answer = await call(PayPal(), hub, t1, command(order_payload()))
    assert answer.status_code == 503
    assert answer.json()["name"] == "SERVICE_UNAVAILABLE"


# --- PayPal's own SDK (paypal-server-sdk) against the simulator, over a real socket -------


@pytest.fixture
def server_url(tenants: TenantDirectory, receiver: Receiver) -> Iterator[str]:
    app = create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sdk_client(server_url: str, account: PayPalAccount, secret: str | None = None) -> Any:
    credentials = ClientCredentialsAuthCredentials(
        o_auth_client_id=account.client_id,
        o_auth_client_secret=secret or account.client_secret.get_secret_value(),
    )
    client = PaypalServersdkClient(
        client_credentials_auth_credentials=credentials, environment=Environment.SANDBOX
    )
    # The SDK knows only PayPal's two hosts: point its sandbox at the simulator.
    client.config.environments = {Environment.SANDBOX: {Server.DEFAULT: f"{server_url}/paypal"}}
    return client


def test_paypals_sdk_creates_and_captures_an_order_on_the_simulator(
    server_url: str, t1: Tenant
) -> None:
    account = primary(t1, PayPalAccount)
    orders = sdk_client(server_url, account).orders
    unit = PurchaseUnitRequest(amount=AmountWithBreakdown(currency_code="USD", value="25.00"))
    body = OrderRequest(intent=CheckoutPaymentIntent.CAPTURE, purchase_units=[unit])
    created = orders.create_order({"body": body, "paypal_request_id": "sdk-req-1"})
    assert created.status_code == 201
    order_id = created.body.id
    assert created.body.status == "CREATED"
    assert [link.rel for link in created.body.links] == ["self", "approve"]
    httpx.post(f"{server_url}/_sim/payments/paypal/orders/{order_id}/pay", json={})
    captured = orders.capture_order({"id": order_id, "paypal_request_id": "sdk-cap-1"})
    assert (captured.status_code, captured.body.status) == (201, "COMPLETED")
    [capture] = captured.body.purchase_units[0].payments.captures
    assert (capture.status, capture.amount.value) == ("COMPLETED", "25.00")
    fetched = orders.get_order({"id": order_id})
    assert fetched.body.purchase_units[0].payments.captures[0].id == capture.id


def test_paypals_sdk_reads_the_simulators_not_found(server_url: str, t1: Tenant) -> None:
    with pytest.raises(ErrorException) as missing:
        sdk_client(server_url, primary(t1, PayPalAccount)).orders.get_order({"id": "NOPE"})
    assert missing.value.response_code == 404
    assert missing.value.name == "RESOURCE_NOT_FOUND"
