"""The Cashfree adapter's own requests against the Cashfree simulator: idempotency, auth, 404."""

from __future__ import annotations

import json

import httpx
import pytest
from tenant_accounts import primary

from core.tenants import Tenant
from providers.base import Delivered, Rejected
from providers.cashfree import Cashfree, CashfreeAccount
from schemas.events import ConnectorCommand, CreatePaymentOrder, EventHeader

pytestmark = pytest.mark.anyio

ADAPTER = Cashfree()
BASE = "http://sim/cashfree"


def order_command(key: str = "key-1", amount_minor: int = 150_050) -> ConnectorCommand:
    payload = CreatePaymentOrder(
        amount_minor=amount_minor, currency="INR", receipt="rcpt-1", notes={"invoice_id": "inv-1"}
    )
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="cashfree",
        payload=payload,
    )


async def send(client: httpx.AsyncClient, t: Tenant, cmd: ConnectorCommand) -> httpx.Response:
    assert isinstance(cmd.payload, CreatePaymentOrder)
    return await client.send(ADAPTER.build_request(cmd, cmd.payload, t, BASE))


async def test_a_redelivered_command_creates_one_order(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    first = await send(client, t1, order_command())
    again = await send(client, t1, order_command())
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    order = first.json()
    assert (order["order_id"], order["order_amount"], order["order_status"]) == (
        "rcpt-1",
        1500.5,
        "ACTIVE",
    )
    outcome = ADAPTER.classify(again)
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == "rcpt-1"
    assert outcome.details["cf_order_id"] == order["cf_order_id"]
    fetched = await client.get("/cashfree/orders/rcpt-1", headers=auth(t1))
    assert fetched.json()["cf_order_id"] == order["cf_order_id"]


async def test_the_same_key_with_another_body_is_an_idempotency_error(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    assert (await send(client, t1, order_command())).status_code == 200
    changed = await send(client, t1, order_command(amount_minor=99_900))
    assert changed.status_code == 422
    assert changed.json() == {
        "message": "idempotency key used with a different request",
        "code": "request_invalid",
        "type": "idempotency_error",
    }
    assert ADAPTER.classify(changed) == Rejected(
        "idempotency key used with a different request", 422, "request_invalid"
    )


async def test_a_taken_order_id_under_another_key_is_409(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    assert (await send(client, t1, order_command("key-1"))).status_code == 200
    other = await send(client, t1, order_command("key-2"))
    assert other.status_code == 409
    assert other.json()["code"] == "order_already_exists"
    assert ADAPTER.classify(other) == Rejected(
        "order with same order_id exists", 409, "order_already_exists"
    )


async def test_a_wrong_secret_is_401(client: httpx.AsyncClient, t1: Tenant) -> None:
    cmd = order_command()
    assert isinstance(cmd.payload, CreatePaymentOrder)
    request = ADAPTER.build_request(cmd, cmd.payload, t1, BASE)
    request.headers["x-client-secret"] = "not-the-secret"
    answered = await client.send(request)
    assert answered.status_code == 401
    assert answered.json()["type"] == "authentication_error"
    assert isinstance(ADAPTER.classify(answered), Rejected)


async def test_another_tenants_orders_are_invisible(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    assert (await send(client, t1, order_command())).status_code == 200
    assert (await client.get("/cashfree/orders/rcpt-1", headers=auth(t2))).status_code == 404


async def test_an_unknown_order_is_404_and_the_probe_reads_it_as_ok(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    answered = await client.send(ADAPTER.probe_request(t1, None, BASE))
    assert answered.status_code == 404
    assert answered.json() == {
        "message": "order not found",
        "code": "order_not_found",
        "type": "invalid_request_error",
    }
    assert answered.status_code in ADAPTER.probe_ok_statuses


async def test_a_missing_api_version_is_400(client: httpx.AsyncClient, t1: Tenant) -> None:
    headers = {k: v for k, v in auth(t1).items() if k != "x-api-version"}
    answered = await client.post("/cashfree/orders", content=json.dumps({}), headers=headers)
    assert answered.status_code == 400


async def test_the_client_secret_is_not_recorded(client: httpx.AsyncClient, t1: Tenant) -> None:
    await send(client, t1, order_command())
    recorded = await client.get("/_sim/requests", params={"provider": "cashfree"})
    text = recorded.text
    assert primary(t1, CashfreeAccount).client_secret.get_secret_value() not in text
    assert "rcpt-1" in text


def auth(t: Tenant) -> dict[str, str]:
    account = primary(t, CashfreeAccount)
    return {
        "x-client-id": account.client_id,
        "x-client-secret": account.client_secret.get_secret_value(),
        "x-api-version": "2023-08-01",
    }
