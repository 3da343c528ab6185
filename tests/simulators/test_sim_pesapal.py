"""The Pesapal adapter (with its token flow) against the Pesapal simulator: order, IPN, status."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sim_support import Receiver
from tenant_accounts import primary

from core.settings import Settings
from core.tenants import Tenant
from processors.normalize import normalize
from providers.base import AuthError, Delivered, Rejected
from providers.payments import FollowUp, PaymentSnapshot
from providers.pesapal import Pesapal, PesapalAccount
from providers.pesapal_auth import token_from_response
from providers.spec import Delivery
from schemas.events import (
    CommandPayload,
    ConnectorCommand,
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import WebhookKey, accept

pytestmark = pytest.mark.anyio

BASE = "http://sim/pesapal"
SETTINGS = Settings(
    provider_base_urls={"pesapal": BASE, "pesapal.token": BASE + "/api/Auth/RequestToken"}
)
ORDER = CreatePaymentOrder(
    amount_minor=150_050, currency="KES", receipt="rcpt-1", notes={"customer_phone": "0712000000"}
)


def cmd(payload: CommandPayload, tenant_id: str = "t1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, tenant_id, source="test"),
        idempotency_key="key-1",
        provider="pesapal",
        payload=payload,
    )


async def call(
    client: httpx.AsyncClient, t: Tenant, payload: CommandPayload, adapter: Pesapal | None = None
) -> httpx.Response:
    adapter = adapter or Pesapal()
    request = adapter.build_request(cmd(payload, t.id), payload, t, BASE)
    return await client.send(request, auth=adapter.auth(t, SETTINGS))


async def created(client: httpx.AsyncClient, t: Tenant) -> Delivered:
    outcome = Pesapal().classify(await call(client, t, ORDER))
    assert isinstance(outcome, Delivered), outcome
    return outcome


async def status(client: httpx.AsyncClient, t: Tenant, tracking: str) -> PaymentSnapshot:
    outcome = Pesapal().classify(await call(client, t, FetchPaymentStatus(order_id=tracking)))
    assert isinstance(outcome, Delivered)
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    return snapshot


async def test_a_resubmitted_order_is_the_same_order(client: httpx.AsyncClient, t1: Tenant) -> None:
    first, again = await created(client, t1), await created(client, t1)
    assert first.provider_ref == again.provider_ref
    assert first.details == again.details
    page = await client.get(first.details["payment_url"])
    assert page.status_code == 200
    assert "KES 1,500.50" in page.text
    snapshot = await status(client, t1, str(first.provider_ref))
    assert (snapshot.status, snapshot.amount_minor) == ("PENDING", 150_050)


async def test_wrong_credentials_are_refused_at_the_token(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    answered = await client.post(
        "/pesapal/api/Auth/RequestToken",
        json={"consumer_key": primary(t1, PesapalAccount).consumer_key, "consumer_secret": "no"},
    )
    assert answered.status_code == 200
    assert answered.json()["error"]["code"] == "invalid_consumer_key_or_secret_provided"
    with pytest.raises(AuthError, match="Invalid consumer_key"):
        token_from_response(answered, 0.0)


async def test_an_api_call_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    answered = await client.get("/pesapal/api/URLSetup/GetIpnList")
    assert answered.status_code == 401
    assert answered.json()["error"]["code"] == "invalid_api_credentials_provided"


async def test_an_unregistered_ipn_id_is_refused_with_http_200(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    account = primary(t1, PesapalAccount)
    wrong = account.model_copy(update={"ipn_id": "not-registered"})
    bad = t1.model_copy(
        update={"accounts": tuple(
            a.model_copy(update={"config": wrong}) if a.provider == "pesapal" else a
            for a in t1.accounts
        )}
    )  # fmt: skip
    answered = await call(client, bad, ORDER)
    assert answered.status_code == 200
    outcome = Pesapal().classify(answered)
    assert isinstance(outcome, Rejected)
    assert outcome.error_code == "invalid_notification_id"


def delivery_of(request: httpx.Request) -> Delivery:
    query = dict(parse_qsl(urlsplit(str(request.url)).query))
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Delivery(request.method, str(request.url), query, headers, b"", "127.0.0.1")


async def test_a_payment_sends_an_ipn_whose_follow_up_finds_it_captured(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order = await created(client, t1)
    tracking = str(order.provider_ref)
    paid = await client.post(f"/_sim/payments/pesapal/orders/{tracking}/pay", json={})
    assert paid.status_code == 200
    [sent] = receiver.requests
    assert sent.method == "GET"
    account = primary(t1, PesapalAccount)
    key = WebhookKey("pesapal-primary", account.ipn_token.get_secret_value(), account)
    raw = accept("pesapal", "t1", [key], delivery_of(sent))
    assert isinstance(raw, RawWebhook)
    follow_up = normalize(raw)
    assert follow_up == FollowUp("fetch_status", tracking, "ipn")
    snapshot = await status(client, t1, follow_up.order_id)
    assert (snapshot.status, snapshot.order_id) == ("CAPTURED", order.provider_ref)
    assert snapshot.payment_id == paid.json()["payment_id"]
    assert (snapshot.amount_minor, snapshot.currency) == (150_050, "KES")


async def test_a_missed_ipn_is_found_by_the_status_query(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    tracking = str((await created(client, t1)).provider_ref)
    body = {"send_callback": False}
    await client.post(f"/_sim/payments/pesapal/orders/{tracking}/pay", json=body)
    assert receiver.requests == []
    assert (await status(client, t1, tracking)).status == "CAPTURED"


async def test_a_failed_payment_is_failed_under_the_tracking_id(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    tracking = str((await created(client, t1)).provider_ref)
    await client.post(f"/_sim/payments/pesapal/orders/{tracking}/pay", json={"outcome": "failed"})
    snapshot = await status(client, t1, tracking)
    assert (snapshot.status, snapshot.payment_id) == ("FAILED", tracking)


async def test_one_refund_per_payment(client: httpx.AsyncClient, t1: Tenant) -> None:
    tracking = str((await created(client, t1)).provider_ref)
    paid = await client.post(f"/_sim/payments/pesapal/orders/{tracking}/pay", json={})
    refund = RefundPayment(
        payment_id=paid.json()["payment_id"],
        order_id=tracking,
        amount_minor=150_050,
        currency="KES",
    )
    assert isinstance(Pesapal().classify(await call(client, t1, refund)), Delivered)
    second = Pesapal().classify(await call(client, t1, refund))
    assert not isinstance(second, Delivered)


async def test_another_merchants_order_is_not_found(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    tracking = str((await created(client, t1)).provider_ref)
    answered = await call(client, t2, FetchPaymentStatus(order_id=tracking))
    assert answered.json()["error"]["code"] == "payment_details_not_found"
    assert (await status(client, t2, tracking)).status == "NOT_FOUND"


async def test_the_consumer_secret_is_not_recorded(client: httpx.AsyncClient, t1: Tenant) -> None:
    await created(client, t1)
    recorded = (await client.get("/_sim/requests", params={"provider": "pesapal"})).text
    assert primary(t1, PesapalAccount).consumer_secret.get_secret_value() not in recorded
    assert "RequestToken" in recorded
