"""The Paytm adapter against the Paytm simulator: checksums, one order per orderId, status,
refunds, and the signed form callback the hub's verifier and normalizer accept."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from paytmchecksum import generateSignature, verifySignature
from pydantic import SecretStr
from sim_support import Receiver
from starlette.applications import Starlette
from tenant_accounts import primary

from core.tenants import Tenant
from providers.base import Delivered, Rejected, RetryLater
from providers.payments import PaymentSnapshot
from providers.paytm import Paytm, PaytmAccount
from providers.paytm_webhooks import normalize_paytm
from providers.spec import Delivery
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
from webhook_ingress.decision import WebhookKey, accept

pytestmark = pytest.mark.anyio

ADAPTER = Paytm()
BASE = "http://sim/paytm"


def cmd(payload: CommandPayload, key: str = "key-1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="paytm",
        payload=payload,
    )


def create(amount_minor: int = 150_050) -> ConnectorCommand:
    return cmd(CreatePaymentOrder(amount_minor=amount_minor, currency="INR", receipt="rcpt-1"))


async def send(client: httpx.AsyncClient, t: Tenant, command: ConnectorCommand) -> httpx.Response:
    return await client.send(ADAPTER.build_request(command, command.payload, t, BASE))


async def created(client: httpx.AsyncClient, t: Tenant) -> Delivered:
    outcome = ADAPTER.classify(await send(client, t, create()))
    assert isinstance(outcome, Delivered), outcome
    return outcome


def key_of(t: Tenant) -> str:
    return primary(t, PaytmAccount).merchant_key.get_secret_value()


async def test_initiate_answers_a_signed_token_and_the_payment_page_serves_it(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    answered = await send(client, t1, create())
    assert answered.status_code == 200
    envelope = answered.json()
    assert envelope["body"]["resultInfo"] == {
        "resultStatus": "S",
        "resultCode": "0000",
        "resultMsg": "Success",
    }
    # Paytm signs its answers too: the official utility verifies the head's signature.
    body_text = json.dumps(envelope["body"], separators=(",", ":"))
    assert verifySignature(body_text, key_of(t1), envelope["head"]["signature"])
    outcome = ADAPTER.classify(answered)
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == "rcpt-1"
    assert outcome.details["txn_token"] == envelope["body"]["txnToken"]
    page = await client.get(outcome.details["payment_url"])
    assert page.status_code == 200
    assert "INR 1,500.50" in page.text
    form = {"mid": primary(t1, PaytmAccount).mid, "orderId": "rcpt-1", "txnToken": "forged"}
    refused = await client.post("/paytm/theia/api/v1/showPaymentPage", data=form)
    assert refused.status_code == 400


async def test_a_repeated_initiate_creates_one_order_and_is_rejected_as_a_duplicate(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    first = await created(client, t1)
    again = await send(client, t1, create())
    assert again.json()["body"]["resultInfo"]["resultCode"] == "334"
    outcome = ADAPTER.classify(again)
    assert isinstance(outcome, Rejected)
    assert outcome.error_code == "334"
    orders = app.state.sim.gateways["paytm"].orders
    assert list(orders) == [(primary(t1, PaytmAccount).mid, first.provider_ref)]


async def test_a_request_signed_by_the_official_utility_is_accepted(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    # As Paytm's own sample does: generateSignature(json.dumps(body)), then post both.
    account = primary(t1, PaytmAccount)
    body = {"mid": account.mid, "orderId": "hub_probe_order"}
    signature = generateSignature(json.dumps(body), key_of(t1))
    content = json.dumps({"body": body, "head": {"signature": signature}})
    answered = await client.post(
        "/paytm/v3/order/status", content=content, headers={"content-type": "application/json"}
    )
    assert answered.json()["body"]["resultInfo"] == {
        "resultStatus": "TXN_FAILURE",
        "resultCode": "331",
        "resultMsg": "No Record Found",
    }


async def test_a_wrong_key_or_mid_is_refused_with_paytms_200_and_rejected(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    account = primary(t1, PaytmAccount)
    wrong_key = account.model_copy(update={"merchant_key": SecretStr("PONMLKJIHGFEDCBA")})
    wrong_mid = account.model_copy(update={"mid": "NOSUCHMID00000000000"})
    expected = {
        wrong_key.mid: ("227", "Checksum provided is invalid"),
        wrong_mid.mid: ("2006", "Mid is invalid"),
    }
    for changed in (wrong_key, wrong_mid):
        request = ADAPTER.build_request(create(), create().payload, with_account(t1, changed), BASE)
        answered = await client.send(request)
        assert answered.status_code == 200
        info = answered.json()["body"]["resultInfo"]
        assert (info["resultStatus"], info["resultCode"], info["resultMsg"]) == (
            "F",
            *expected[changed.mid],
        )
        assert ADAPTER.classify(answered) == Rejected(
            expected[changed.mid][1], 200, expected[changed.mid][0]
        )


def with_account(t: Tenant, account: PaytmAccount) -> Tenant:
    accounts = tuple(
        a.model_copy(update={"config": account}) if a.provider == "paytm" else a for a in t.accounts
    )
    return t.model_copy(update={"accounts": accounts})


async def status_of(client: httpx.AsyncClient, t: Tenant, order_id: str) -> PaymentSnapshot:
    answered = await send(client, t, cmd(FetchPaymentStatus(order_id=order_id)))
    outcome = ADAPTER.classify(answered)
    assert isinstance(outcome, Delivered), outcome
    found = PaymentSnapshot.from_details(outcome.details)
    assert found is not None
    return found


async def pay(client: httpx.AsyncClient, order_id: str, **attempt: Any) -> dict[str, Any]:
    paid = await client.post(f"/_sim/payments/paytm/orders/{order_id}/pay", json=attempt)
    assert paid.status_code == 200, paid.text
    result: dict[str, Any] = paid.json()
    return result


def delivered_to_hub(request: httpx.Request) -> Delivery:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")


async def test_a_payment_posts_a_callback_the_hub_accepts_and_normalizes(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    order = await created(client, t1)
    assert (await status_of(client, t1, "rcpt-1")).status == "PENDING"
    paid = await pay(client, "rcpt-1")
    [callback] = receiver.requests
    assert str(callback.url) == "http://ingress.test/webhooks/paytm/t1"
    assert callback.headers["content-type"] == "application/x-www-form-urlencoded"
    key = WebhookKey("paytm-primary", key_of(t1), primary(t1, PaytmAccount))
    raw = accept("paytm", "t1", [key], delivered_to_hub(callback))
    assert isinstance(raw, RawWebhook)
    assert raw.provider_event_id == f"rcpt-1:{paid['payment_id']}:TXN_SUCCESS"
    fields = dict(httpx.QueryParams(callback.content.decode()))
    event = normalize_paytm(raw, fields)
    assert isinstance(event, PaymentEvent)
    assert event.kind is PaymentEventKind.CAPTURED
    assert event.order_id == order.provider_ref
    assert (event.payment_id, event.amount_minor) == (paid["payment_id"], 150_050)
    snap = await status_of(client, t1, "rcpt-1")
    assert (snap.status, snap.payment_id) == ("CAPTURED", event.payment_id)


async def test_a_callback_goes_to_the_orders_callback_url(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    payload = CreatePaymentOrder(
        amount_minor=100, currency="INR", receipt="rcpt-1", callback_url="http://hub.test/cb"
    )
    assert isinstance(ADAPTER.classify(await send(client, t1, cmd(payload))), Delivered)
    await pay(client, "rcpt-1", outcome="failed")
    [callback] = receiver.requests
    assert str(callback.url) == "http://hub.test/cb"
    fields = dict(httpx.QueryParams(callback.content.decode()))
    assert (fields["STATUS"], fields["RESPCODE"]) == ("TXN_FAILURE", "227")


async def test_a_missed_callback_is_found_by_the_status_query(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await created(client, t1)
    paid = await pay(client, "rcpt-1", send_callback=False)
    assert receiver.requests == []
    snap = await status_of(client, t1, "rcpt-1")
    assert (snap.status, snap.payment_id, snap.amount_minor) == (
        "CAPTURED",
        paid["payment_id"],
        150_050,
    )
    assert snap.order_id == "rcpt-1"


async def test_the_checkout_page_buttons_pay_through_the_control_plane(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await created(client, t1)
    page = await client.post(
        "/_sim/payments/paytm/orders/rcpt-1/checkout", data={"outcome": "cancelled"}
    )
    assert page.status_code == 200
    fields = dict(httpx.QueryParams(receiver.requests[0].content.decode()))
    assert (fields["STATUS"], fields["RESPCODE"]) == ("TXN_FAILURE", "141")
    assert (await status_of(client, t1, "rcpt-1")).status == "FAILED"


def refund(payment_id: str, amount_minor: int, key: str) -> ConnectorCommand:
    payload = RefundPayment(
        payment_id=payment_id, order_id="rcpt-1", amount_minor=amount_minor, currency="INR"
    )
    return cmd(payload, key=key)


async def test_refunds_are_deduplicated_by_ref_id_and_bounded_by_the_payment(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await created(client, t1)
    paid = await pay(client, "rcpt-1", send_callback=False)
    first = ADAPTER.classify(await send(client, t1, refund(paid["payment_id"], 50_000, "rf-1")))
    assert isinstance(first, Delivered)
    assert (first.provider_ref, first.details["refund_status"]) == ("rf-1", "PENDING")
    again = ADAPTER.classify(await send(client, t1, refund(paid["payment_id"], 50_000, "rf-1")))
    assert isinstance(again, Delivered)
    assert (again.provider_ref, again.details["refund_status"]) == ("rf-1", "ALREADY_RAISED")
    too_much = await send(client, t1, refund(paid["payment_id"], 100_100, "rf-2"))
    assert ADAPTER.classify(too_much) == Rejected("Invalid refund amount", 200, "619")
    unknown = await send(client, t1, refund("NOSUCHTXN", 100, "rf-3"))
    assert ADAPTER.classify(unknown) == Rejected("Record not found", 200, "631")


async def test_a_queued_fault_answers_paytms_system_error_and_is_retried(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    added = await client.post("/_sim/faults", json={"provider": "paytm", "status": 503})
    assert added.status_code == 201
    answered = await send(client, t1, create())
    assert answered.status_code == 503
    assert answered.json()["body"]["resultInfo"]["resultCode"] == "501"
    assert ADAPTER.classify(answered) == RetryLater("System Error", 503, "501")
