"""Razorpay payments and signed webhooks: body, signature over exact bytes, resend."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import httpx
import pytest
from sim_support import WEBHOOK_TEMPLATE, Receiver, razorpay_signature, rzp_auth
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tenant_accounts import primary

from core.tenants import Tenant, TenantDirectory
from providers.razorpay import RazorpayAccount
from simulators import create_app

pytestmark = pytest.mark.anyio


async def new_order(client: httpx.AsyncClient, t: Tenant, **extra: Any) -> dict[str, Any]:
    body = {"amount": 250000, "currency": "INR", "receipt": "fee-7", **extra}
    response = await client.post("/razorpay/v1/orders", json=body, headers=rzp_auth(t))
    assert response.status_code == 200
    return dict(response.json())


async def pay(client: httpx.AsyncClient, order_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/_sim/razorpay/orders/{order_id}/pay", json=body)


async def test_captured_payment_fires_signed_webhook(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant, receiver: Receiver
) -> None:
    order = await new_order(client, t1, notes={"student": "S-9"})
    response = await pay(client, order["id"])
    assert response.status_code == 200
    result = response.json()
    assert re.fullmatch(r"evt_[A-Za-z0-9]{14}", result["event_id"])
    assert re.fullmatch(r"pay_[A-Za-z0-9]{14}", result["payment_id"])
    assert result["order_id"] == order["id"]
    assert result["webhook_url"] == "http://ingress.test/webhooks/razorpay/t1"
    assert (result["webhook_status"], result["error"]) == (200, None)

    [hook] = receiver.requests
    assert str(hook.url) == result["webhook_url"]
    assert hook.method == "POST"
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["user-agent"] == "Razorpay-Webhook/v1"
    assert hook.headers["x-razorpay-event-id"] == result["event_id"]
    signature = hook.headers["x-razorpay-signature"]
    assert re.fullmatch(r"[0-9a-f]{64}", signature)
    assert hmac.compare_digest(signature, razorpay_signature(hook.content, t1))
    assert signature != razorpay_signature(hook.content, t2)
    tampered = hook.content.replace(b"250000", b"250001")
    assert signature != razorpay_signature(tampered, t1)

    event = json.loads(hook.content)
    assert event["entity"] == "event"
    assert re.fullmatch(r"acc_[A-Za-z0-9]{14}", event["account_id"])
    assert event["event"] == "payment.captured"
    assert event["contains"] == ["payment"]
    assert isinstance(event["created_at"], int)
    payment = event["payload"]["payment"]["entity"]
    assert payment["id"] == result["payment_id"]
    assert (payment["entity"], payment["status"], payment["captured"]) == (
        "payment",
        "captured",
        True,
    )
    assert (payment["amount"], payment["currency"], payment["order_id"]) == (
        250000,
        "INR",
        order["id"],
    )
    assert payment["method"] == "card"
    assert payment["notes"] == {"student": "S-9"}
    assert (payment["fee"], payment["tax"]) == (5900, 900)
    for key in (
        "error_code",
        "error_description",
        "error_source",
        "error_step",
        "error_reason",
        "invoice_id",
        "refund_status",
        "bank",
        "wallet",
        "vpa",
    ):
        assert payment[key] is None, key
    assert (payment["international"], payment["amount_refunded"], payment["acquirer_data"]) == (
        False,
        0,
        {},
    )
    for key in ("description", "email", "contact", "created_at", "card_id"):
        assert key in payment

    fetched = await client.get(f"/razorpay/v1/orders/{order['id']}", headers=rzp_auth(t1))
    assert {k: fetched.json()[k] for k in ("status", "amount_paid", "amount_due", "attempts")} == {
        "status": "paid",
        "amount_paid": 250000,
        "amount_due": 0,
        "attempts": 1,
    }


async def test_failed_payment_then_capture(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order = await new_order(client, t1)
    failed = (await pay(client, order["id"], outcome="failed", method="upi")).json()
    assert failed["webhook_status"] == 200
    event = json.loads(receiver.requests[0].content)
    assert event["event"] == "payment.failed"
    payment = event["payload"]["payment"]["entity"]
    assert (payment["status"], payment["captured"], payment["method"]) == ("failed", False, "upi")
    assert {k: payment[k] for k in payment if k.startswith("error_")} == {
        "error_code": "BAD_REQUEST_ERROR",
        "error_description": "Payment failed due to insufficient funds in the account",
        "error_source": "customer",
        "error_step": "payment_authorization",
        "error_reason": "insufficient_funds",
    }
    state = (await client.get(f"/_sim/razorpay/orders/{order['id']}")).json()
    assert (state["status"], state["attempts"], state["amount_paid"]) == ("attempted", 1, 0)

    captured = (await pay(client, order["id"])).json()
    assert captured["payment_id"] != failed["payment_id"]
    state = (await client.get(f"/_sim/razorpay/orders/{order['id']}")).json()
    assert (state["status"], state["attempts"], state["amount_due"]) == ("paid", 2, 0)


async def test_failed_payment_error_can_be_chosen(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order = await new_order(client, t1)
    await pay(
        client,
        order["id"],
        outcome="failed",
        error_code="GATEWAY_ERROR",
        error_description="Bank is down",
    )
    payment = json.loads(receiver.requests[0].content)["payload"]["payment"]["entity"]
    assert (payment["error_code"], payment["error_description"]) == (
        "GATEWAY_ERROR",
        "Bank is down",
    )


async def test_pay_errors(client: httpx.AsyncClient, t1: Tenant, receiver: Receiver) -> None:
    assert (await pay(client, "order_missing")).status_code == 404
    order = await new_order(client, t1)
    assert (await pay(client, order["id"], outcome="refunded")).status_code == 400
    assert (await pay(client, order["id"])).status_code == 200
    again = await pay(client, order["id"])
    assert again.status_code == 409
    assert "already paid" in again.json()["error"]
    assert len(receiver.requests) == 1


async def test_webhook_url_override_and_receiver_status(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    receiver.status = 503
    order = await new_order(client, t1)
    result = (await pay(client, order["id"], webhook_url="http://elsewhere.test/hook")).json()
    assert result["webhook_url"] == "http://elsewhere.test/hook"
    assert result["webhook_status"] == 503
    assert str(receiver.requests[0].url) == "http://elsewhere.test/hook"


async def test_unreachable_receiver_is_not_a_crash(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    receiver.refuse = True
    order = await new_order(client, t1)
    response = await pay(client, order["id"])
    assert response.status_code == 200
    assert response.json()["webhook_status"] is None
    assert "ConnectError" in response.json()["error"]


async def test_unreachable_over_the_real_network(tenants: TenantDirectory, t1: Tenant) -> None:
    app = create_app(tenants, webhook_url_template="http://127.0.0.1:1/webhooks/{tenant}")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim"
    ) as c:
        order = await new_order(c, t1)
        result = (await pay(c, order["id"])).json()
    assert result["webhook_url"] == "http://127.0.0.1:1/webhooks/t1"
    assert result["webhook_status"] is None
    assert result["error"]


async def test_resend_posts_identical_bytes_and_headers(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order = await new_order(client, t1)
    first = (await pay(client, order["id"])).json()
    resent = await client.post(f"/_sim/razorpay/webhooks/{first['event_id']}/resend")
    assert resent.status_code == 200
    assert resent.json() == {**first, "webhook_status": 200}
    override = await client.post(
        f"/_sim/razorpay/webhooks/{first['event_id']}/resend",
        json={"webhook_url": "http://retry.test/hook"},
    )
    assert override.json()["webhook_url"] == "http://retry.test/hook"

    original, again, elsewhere = receiver.requests
    assert again.content == original.content == elsewhere.content
    for name in ("x-razorpay-signature", "x-razorpay-event-id", "content-type", "user-agent"):
        assert again.headers[name] == original.headers[name] == elsewhere.headers[name]
    assert str(elsewhere.url) == "http://retry.test/hook"

    listed = (await client.get("/_sim/razorpay/webhooks")).json()["webhooks"]
    [hook] = listed
    assert hook["event_id"] == first["event_id"]
    assert hook["body"].encode() == original.content
    assert [d["url"] for d in hook["deliveries"]] == [
        first["webhook_url"],
        first["webhook_url"],
        "http://retry.test/hook",
    ]


async def test_resend_unknown_event_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_sim/razorpay/webhooks/evt_missing/resend")).status_code == 404


async def test_webhooks_reach_a_real_starlette_receiver(
    tenants: TenantDirectory, t1: Tenant
) -> None:
    """End to end through ASGI: the receiver verifies the signature the way the ingress must."""
    secret = primary(t1, RazorpayAccount).webhook_secret.get_secret_value().encode()
    seen: list[str] = []

    async def ingress(request: Request) -> JSONResponse:
        raw = await request.body()
        expected = hmac.new(secret, raw, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, request.headers["x-razorpay-signature"])
        seen.append(request.path_params["tenant"])
        return JSONResponse({"ok": ok}, status_code=200 if ok else 401)

    receiver_app = Starlette(
        routes=[Route("/webhooks/razorpay/{tenant}", ingress, methods=["POST"])]
    )
    app = create_app(
        tenants,
        webhook_url_template=WEBHOOK_TEMPLATE,
        webhook_transport=httpx.ASGITransport(app=receiver_app),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim"
    ) as c:
        order = await new_order(c, t1)
        result = (await pay(c, order["id"])).json()
    assert result["webhook_status"] == 200
    assert seen == ["t1"]


def test_template_with_unknown_placeholder_is_rejected(tenants: TenantDirectory) -> None:
    with pytest.raises(ValueError, match="tenant"):
        create_app(tenants, webhook_url_template="http://x/{tenant}/{secret}")
