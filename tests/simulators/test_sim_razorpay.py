"""Razorpay Orders API: shapes, auth, validation errors, unique_receipt, checkout page."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from sim_support import basic, rzp_auth
from tenant_accounts import primary

from core.tenants import Tenant
from providers.razorpay import RazorpayAccount

pytestmark = pytest.mark.anyio

ORDERS = "/razorpay/v1/orders"


async def create(client: httpx.AsyncClient, t: Tenant, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"amount": 50000, "currency": "INR", "receipt": "rcpt-1"}
    payload.update(body)
    return await client.post(ORDERS, json=payload, headers=rzp_auth(t))


def assert_error(
    response: httpx.Response, status: int, description: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST_ERROR"
    assert error["description"] == description
    assert error["metadata"] == {}
    assert error.get("field") == field
    return dict(error)


async def test_create_order_returns_razorpay_order_entity(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    before = int(time.time())
    response = await create(client, t1, notes={"student": "S-1", "term": "T1"})
    assert response.status_code == 200
    order = response.json()
    assert re.fullmatch(r"order_[A-Za-z0-9]{14}", order["id"])
    assert before <= order["created_at"] <= int(time.time())
    assert {k: v for k, v in order.items() if k not in {"id", "created_at"}} == {
        "entity": "order",
        "amount": 50000,
        "amount_paid": 0,
        "amount_due": 50000,
        "currency": "INR",
        "receipt": "rcpt-1",
        "offer_id": None,
        "status": "created",
        "attempts": 0,
        "notes": {"student": "S-1", "term": "T1"},
    }


async def test_empty_notes_are_an_array_like_razorpay(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response = await create(client, t1)
    assert response.json()["notes"] == []


async def test_fetch_order_is_scoped_to_the_account(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    order = (await create(client, t1)).json()
    fetched = await client.get(f"{ORDERS}/{order['id']}", headers=rzp_auth(t1))
    assert fetched.status_code == 200
    assert fetched.json() == order
    other = await client.get(f"{ORDERS}/{order['id']}", headers=rzp_auth(t2))
    assert_error(other, 400, "The id provided does not exist")
    unknown = await client.get(f"{ORDERS}/order_doesnotexist00", headers=rzp_auth(t1))
    assert_error(unknown, 400, "The id provided does not exist")


@pytest.mark.parametrize("auth", ["missing", "wrong_secret", "unknown_key", "bearer"])
async def test_bad_basic_auth_is_401(client: httpx.AsyncClient, t1: Tenant, auth: str) -> None:
    account = primary(t1, RazorpayAccount)
    headers = {
        "missing": {},
        "wrong_secret": basic(account.key_id, "nope"),
        "unknown_key": basic("rzp_test_unknown", account.key_secret.get_secret_value()),
        "bearer": {"Authorization": "Bearer " + account.key_secret.get_secret_value()},
    }[auth]
    response = await client.post(ORDERS, json={"amount": 50000, "currency": "INR"}, headers=headers)
    error = assert_error(response, 401, "Authentication failed")
    assert (error["source"], error["step"], error["reason"]) == ("NA", "NA", "NA")


@pytest.mark.parametrize(
    ("body", "description", "field"),
    [
        ({"currency": "INR"}, "The amount field is required.", "amount"),
        ({"amount": 99, "currency": "INR"}, "The amount must be at least INR 1.00", "amount"),
        ({"amount": "50000", "currency": "INR"}, "The amount must be an integer.", "amount"),
        ({"amount": 500.5, "currency": "INR"}, "The amount must be an integer.", "amount"),
        ({"amount": True, "currency": "INR"}, "The amount must be an integer.", "amount"),
        ({"amount": 500}, "The currency field is required.", "currency"),
        (
            {"amount": 500, "currency": "INR", "receipt": "r" * 41},
            "receipt: the length must be no more than 40.",
            "receipt",
        ),
        (
            {"amount": 500, "currency": "INR", "notes": {f"k{i}": "v" for i in range(16)}},
            "Number of fields in notes should be less than or equal to 15",
            "notes",
        ),
        (
            {"amount": 500, "currency": "INR", "unique_receipt": "yes"},
            "The unique_receipt field must be true or false.",
            "unique_receipt",
        ),
    ],
)
async def test_invalid_order_bodies_are_400_input_validation_failed(
    client: httpx.AsyncClient, t1: Tenant, body: dict[str, Any], description: str, field: str
) -> None:
    response = await client.post(ORDERS, json=body, headers=rzp_auth(t1))
    error = assert_error(response, 400, description, field)
    assert error["source"] == "business"
    assert error["step"] == "payment_initiation"
    assert error["reason"] == "input_validation_failed"


async def test_receipt_of_exactly_40_chars_is_accepted(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response = await create(client, t1, receipt="r" * 40)
    assert response.status_code == 200
    assert response.json()["receipt"] == "r" * 40


async def test_extra_fields_are_rejected(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await create(client, t1, customer_id="cust_1")
    error = assert_error(
        response, 400, "customer_id is/are not required and should not be sent", "customer_id"
    )
    assert error["reason"] == "extra_field_sent"


async def test_non_json_body_is_400(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.post(
        ORDERS, content=b"amount=500", headers={**rzp_auth(t1), "Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST_ERROR"


async def test_unique_receipt_returns_the_same_order(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    first = (await create(client, t1, receipt="fee-42", unique_receipt=True)).json()
    again = await create(client, t1, receipt="fee-42", unique_receipt=True)
    assert again.status_code == 200
    assert again.json() == first
    other_account = (await create(client, t2, receipt="fee-42", unique_receipt=True)).json()
    assert other_account["id"] != first["id"]


async def test_without_unique_receipt_each_call_creates_an_order(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    first = (await create(client, t1, receipt="fee-43")).json()
    second = (await create(client, t1, receipt="fee-43")).json()
    assert first["id"] != second["id"]


async def test_fetch_payment_after_pay(client: httpx.AsyncClient, t1: Tenant, t2: Tenant) -> None:
    order = (await create(client, t1)).json()
    paid = (await client.post(f"/_sim/razorpay/orders/{order['id']}/pay", json={})).json()
    response = await client.get(f"/razorpay/v1/payments/{paid['payment_id']}", headers=rzp_auth(t1))
    assert response.status_code == 200
    payment = response.json()
    assert (payment["id"], payment["order_id"], payment["status"]) == (
        paid["payment_id"],
        order["id"],
        "captured",
    )
    hidden = await client.get(f"/razorpay/v1/payments/{paid['payment_id']}", headers=rzp_auth(t2))
    assert_error(hidden, 400, "The id provided does not exist")


async def test_unknown_url_is_razorpay_400(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.get("/razorpay/v1/customers", headers=rzp_auth(t1))
    assert_error(response, 400, "The requested URL was not found on the server.")


async def test_checkout_page_and_form_pay_the_order(
    client: httpx.AsyncClient, t1: Tenant, receiver: Any
) -> None:
    order = (await create(client, t1, amount=123456)).json()
    page = await client.get(f"/razorpay/checkout/{order['id']}")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "₹1,234.56" in page.text
    action = f'action="/_sim/razorpay/orders/{order["id"]}/checkout"'
    assert action in page.text
    assert 'value="captured"' in page.text
    assert 'value="failed"' in page.text

    result = await client.post(
        f"/_sim/razorpay/orders/{order['id']}/checkout", data={"outcome": "captured"}
    )
    assert result.status_code == 200
    assert "Payment successful" in result.text
    assert len(receiver.requests) == 1
    fetched = await client.get(f"{ORDERS}/{order['id']}", headers=rzp_auth(t1))
    assert fetched.json()["status"] == "paid"
    # The checkout page is a browser page, not an API call: it is not recorded.
    recorded = (await client.get("/_sim/requests", params={"provider": "razorpay"})).json()
    assert [r["path"] for r in recorded["requests"]] == [ORDERS, f"{ORDERS}/{order['id']}"]


async def test_checkout_of_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/razorpay/checkout/order_missing")).status_code == 404
