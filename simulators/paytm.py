"""Paytm PG: Initiate Transaction, the payment page, order status and refunds.

Every call is `{"body": {...}, "head": {"signature": ...}}`; the signature is Paytm's
checksum of the body's JSON text exactly as sent, under the MID's merchant key. An
unknown MID or a signature the key did not make is refused as Paytm does, with HTTP
200 and `resultInfo.resultStatus` "F" (2006, 227). Answers are signed the same way.

- `initiateTransaction?mid=&orderId=`: a txnToken; an orderId seen before is `334`.
- `showPaymentPage?mid=&orderId=`: the checkout page (GET, or real Paytm's form POST
  with txnToken, which must be the order's).
- `/v3/order/status`: the order's last transaction; `331` when Paytm has no record.
- `/refund/apply`: `601` PENDING when accepted; a refId seen before is `617`; more than
  is left to refund is `619`; an unknown or unpaid transaction `631`.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.paytm import PAYTM_ID, PaytmAccount
from providers.paytm_checksum import generate_signature, verify_signature
from simulators.common import Call, ProviderSpec, SimContext, provider_endpoint
from simulators.payments import checkout_page
from simulators.paytm_gateway import PaytmGateway, PaytmOrder, rupee_text

BODY_START = re.compile(r'\s*\{\s*"body"\s*:\s*')
Result = tuple[str, str, str]  # resultStatus, resultCode, resultMsg
CHECKSUM_INVALID: Result = ("F", "227", "Checksum provided is invalid")
MID_INVALID: Result = ("F", "2006", "Mid is invalid")
BAD_REQUEST: Result = ("F", "400", "Bad Request")


def _head(body_text: str, key: str | None) -> dict[str, str]:
    head = {"responseTimestamp": str(int(time.time() * 1000)), "version": "v1"}
    if key is not None:
        head["signature"] = generate_signature(body_text, key)
    return head


def answer(body: dict[str, Any], key: str | None = None, status: int = 200) -> JSONResponse:
    """Paytm's envelope, the head signed over the body's JSON text when the MID is known."""
    text = json.dumps(body, separators=(",", ":"))
    return JSONResponse({"head": _head(text, key), "body": body}, status_code=status)


def result_info(info: Result) -> dict[str, str]:
    status, code, message = info
    return {"resultStatus": status, "resultCode": code, "resultMsg": message}


def result(info: Result, key: str | None = None, **fields: Any) -> JSONResponse:
    return answer({**fields, "resultInfo": result_info(info)}, key)


def error_for_status(status: int) -> Response:
    if status >= 500:
        return answer({"resultInfo": result_info(("F", "501", "System Error"))}, status=status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return answer({"resultInfo": result_info(("F", str(status), phrase))}, status=status)


def no_header_auth(ctx: SimContext, headers: Headers) -> Tenant | None:
    return None  # Paytm has no credentials in headers: the body's signature is the auth


def tenant_of_mid(ctx: SimContext, body: Any) -> Tenant | None:
    """The MID's tenant, for recording; whether the signature is its key's is the handler's."""
    inner = body.get("body") if isinstance(body, dict) else None
    mid = inner.get("mid") if isinstance(inner, dict) else None
    for tenant, account in ctx.accounts("paytm", PaytmAccount):
        if account.mid == mid:
            return tenant
    return None


SPEC = ProviderSpec(
    name="paytm",
    authenticate=no_header_auth,
    error_for_status=error_for_status,
    authenticate_body=tenant_of_mid,
)


def signed_text(raw: bytes) -> str | None:
    """The "body" member's JSON text as sent (the checksum covers exactly that)."""
    text = raw.decode("utf-8", errors="replace")
    start = BODY_START.match(text)
    if start is None:
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(text, start.end())
    except ValueError:
        return None
    return text[start.end() : end]


class Signed:
    """A request whose signature the MID's merchant key made, or Paytm's refusal of it."""

    def __init__(self, sim: PaytmGateway, call: Call) -> None:
        self.refusal: JSONResponse | None = None
        self.body: dict[str, Any] = {}
        self.key = ""
        envelope = call.body if isinstance(call.body, dict) else {}
        body, head = envelope.get("body"), envelope.get("head")
        text = signed_text(call.raw)
        if not isinstance(body, dict) or not isinstance(head, dict) or text is None:
            self.refusal = result(BAD_REQUEST)
            return
        found = sim.account(str(body.get("mid") or ""))
        if found is None:
            self.refusal = result(MID_INVALID)
            return
        self.key = found[1].merchant_key.get_secret_value()
        if not verify_signature(text, self.key, str(head.get("signature") or "")):
            self.refusal = result(CHECKSUM_INVALID)
            return
        self.tenant, self.body = found[0], body


def _amount_minor(txn_amount: Any) -> int | None:
    value = txn_amount.get("value") if isinstance(txn_amount, dict) else txn_amount
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        return None
    if amount is None or not amount.is_finite() or amount <= 0:
        return None
    minor = amount * 100
    return int(minor) if minor == minor.to_integral_value() else None


def _initiate_problem(call: Call, body: dict[str, Any], account: PaytmAccount) -> Result | None:
    params = call.request.query_params
    order_id = body.get("orderId")
    if params.get("mid") != body.get("mid") or params.get("orderId") != order_id:
        return ("F", "400", "mid and orderId in the URL must match the body")
    if not isinstance(order_id, str) or not PAYTM_ID.match(order_id):
        return ("F", "330", "Invalid orderId")
    if body.get("requestType") != "Payment" or body.get("websiteName") != account.website:
        return ("F", "400", "Invalid requestType or websiteName")
    txn = body.get("txnAmount")
    if _amount_minor(txn) is None or not isinstance(txn, dict) or txn.get("currency") != "INR":
        return ("F", "400", "Invalid txnAmount")
    user = body.get("userInfo")
    if not isinstance(user, dict) or not user.get("custId"):
        return ("F", "400", "userInfo.custId is mandatory")
    return None


def _initiate(sim: PaytmGateway, call: Call) -> Response:
    signed = Signed(sim, call)
    if signed.refusal is not None:
        return signed.refusal
    body = signed.body
    found = sim.account(body["mid"])
    assert found is not None
    problem = _initiate_problem(call, body, found[1])
    if problem is not None:
        return result(problem, signed.key)
    if (body["mid"], body["orderId"]) in sim.orders:
        return result(("F", "334", "Duplicate Order Id"), signed.key)
    order = PaytmOrder(
        order_id=body["orderId"],
        mid=body["mid"],
        tenant=signed.tenant,
        amount_minor=_amount_minor(body["txnAmount"]) or 0,
        currency="INR",
        txn_token=secrets.token_hex(24),
        callback_url=body.get("callbackUrl") or None,
    )
    sim.orders[(order.mid, order.order_id)] = order
    info: Result = ("S", "0000", "Success")
    return result(
        info, signed.key, txnToken=order.txn_token, isPromoCodeValid=False, authenticated=False
    )


def _status_fields(order: PaytmOrder) -> tuple[Result, dict[str, Any]]:
    if order.status == "CREATED":
        return ("PENDING", "402", "Looks like the payment is not complete."), {
            "orderId": order.order_id,
            "mid": order.mid,
        }
    fields = {
        "txnId": order.txn_id,
        "bankTxnId": order.bank_txn_id,
        "orderId": order.order_id,
        "txnAmount": rupee_text(order.paid_minor),
        "txnType": "SALE",
        "gatewayName": order.gateway_name,
        "bankName": order.bank_name,
        "mid": order.mid,
        "paymentMode": order.payment_mode,
        "refundAmt": rupee_text(order.refunded_minor),
        "txnDate": order.txn_date,
    }
    return (order.status, order.resp_code, order.resp_msg), fields


def _order_status(sim: PaytmGateway, call: Call) -> Response:
    signed = Signed(sim, call)
    if signed.refusal is not None:
        return signed.refusal
    order = sim.orders.get((signed.body["mid"], str(signed.body.get("orderId") or "")))
    if order is None:
        return result(("TXN_FAILURE", "331", "No Record Found"), signed.key)
    info, fields = _status_fields(order)
    return result(info, signed.key, **fields)


def _refund_problem(order: PaytmOrder | None, body: dict[str, Any]) -> Result | None:
    if body.get("txnType") != "REFUND" or not PAYTM_ID.match(str(body.get("refId") or "")):
        return ("TXN_FAILURE", "400", "Invalid txnType or refId")
    if order is None or order.status != "TXN_SUCCESS" or body.get("txnId") != order.txn_id:
        return ("TXN_FAILURE", "631", "Record not found")
    if body["refId"] in order.refunds:
        return ("TXN_FAILURE", "617", "Refund Already Raised")
    amount = _amount_minor(body.get("refundAmount"))
    if amount is None or amount > order.paid_minor - order.refunded_minor:
        return ("TXN_FAILURE", "619", "Invalid refund amount")
    return None


def _refund(sim: PaytmGateway, call: Call) -> Response:
    signed = Signed(sim, call)
    if signed.refusal is not None:
        return signed.refusal
    body = signed.body
    order = sim.orders.get((body["mid"], str(body.get("orderId") or "")))
    echo = {k: body.get(k) for k in ("orderId", "mid", "refId", "txnId", "refundAmount")}
    problem = _refund_problem(order, body)
    if problem is not None:
        return result(problem, signed.key, **echo)
    assert order is not None
    refund_id = "2024" + secrets.token_hex(8).upper()
    order.refunds[body["refId"]] = {
        "refund_id": refund_id,
        "amount_minor": _amount_minor(body["refundAmount"]) or 0,
    }
    info: Result = (
        "PENDING",
        "601",
        "Refund request was raised for this transaction. But it is pending state.",
    )
    stamp = str(int(time.time() * 1000))
    return result(info, signed.key, **echo, refundId=refund_id, txnTimestamp=stamp)


async def _payment_page(request: Request, sim: PaytmGateway) -> Response:
    params = dict(request.query_params)
    if request.method == "POST":
        params |= dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
    order = sim.orders.get((params.get("mid", ""), params.get("orderId", "")))
    if order is None:
        return HTMLResponse("<h1>Invalid order</h1>", status_code=404)
    token = params.get("txnToken")
    if request.method == "POST" and not hmac.compare_digest(
        (token or "").encode(), order.txn_token.encode()
    ):
        return HTMLResponse("<h1>Session expired or invalid txnToken</h1>", status_code=400)
    view = {
        "order_id": order.order_id,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "status": order.status,
    }
    return checkout_page("paytm", "Paytm", view)


def _not_found(call: Call) -> Response:
    return answer({"resultInfo": result_info(("F", "404", "Not Found"))}, status=404)


MOUNT = "/paytm"


def gateway(ctx: SimContext) -> PaytmGateway:
    return PaytmGateway(ctx)


def routes(ctx: SimContext) -> list[BaseRoute]:
    sim = ctx.gateways["paytm"]
    assert isinstance(sim, PaytmGateway)

    def endpoint(handler: Any) -> Any:
        return provider_endpoint(ctx, SPEC, lambda c: handler(sim, c))

    async def page(request: Request) -> Response:
        return await _payment_page(request, sim)

    return [
        Route("/theia/api/v1/initiateTransaction", endpoint(_initiate), methods=["POST"]),
        Route("/theia/api/v1/showPaymentPage", page, methods=["GET", "POST"]),
        Route("/v3/order/status", endpoint(_order_status), methods=["POST"]),
        Route("/refund/apply", endpoint(_refund), methods=["POST"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
