"""M-Pesa Daraja: OAuth, STK push and query, reversal, C2B URL registration, the phone.

- `GET  /oauth/v1/generate?grant_type=client_credentials` (Basic consumer key:secret)
  -> `{"access_token", "expires_in": "3599"}`; wrong credentials: 400 `400.008.01`.
- Every other call wants `Authorization: Bearer`; a missing or unknown token is
  Daraja's 404 `404.001.03 Invalid Access Token`.
- `POST /mpesa/stkpush/v1/processrequest` checks the fields and the Password
  (base64(shortcode + passkey + timestamp); wrong: 500 `500.001.1001 Wrong credentials`).
  Like Daraja it has no idempotency: a second push is a second prompt, unless the
  phone's prompt is still open ("Unable to lock subscriber").
- `POST /mpesa/stkpushquery/v1/query`: 500 `500.001.1001` "being processed" while
  the prompt is open, then the ResultCode; an unknown id: 400 "Invalid CheckoutRequestID".
- `POST /mpesa/reversal/v1/request`: accepted for a receipt of the tenant's.
- `POST /mpesa/c2b/v1/registerurl`: where paybill payments are confirmed.
- `GET  /phone/{CheckoutRequestID}`: the prompt, as a page (simulator only).
- `POST /_phone/paybill` `{tenant, bill_ref, amount_minor, msisdn?, send_callback?}`:
  a parent pays the paybill; the C2B confirmation goes to the registered URL.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from datetime import datetime
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.mpesa import MpesaAccount, stk_password
from simulators.common import Call, ProviderSpec, SimContext, basic_credentials, bearer_token
from simulators.common import provider_endpoint as endpoint
from simulators.mpesa_phone import PROVIDER, MpesaSim, Registration, account_of, nairobi_stamp
from simulators.payments import PayError, checkout_page
from simulators.state import random_id

MOUNT = "/mpesa"
PHONE = re.compile(r"^254[17]\d{8}$")
STAMP = re.compile(r"^\d{14}$")
MAX_AMOUNT = 250_000
BAD_REQUEST = "400.002.02"
CATCH_ALL = "500.001.1001"
MAX_REFERENCE = 12
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
LOCKED = "Unable to lock subscriber, a transaction is already in process for the current subscriber"
STK_FIELDS = (
    "BusinessShortCode",
    "Password",
    "Timestamp",
    "TransactionType",
    "Amount",
    "PartyA",
    "PartyB",
    "PhoneNumber",
    "CallBackURL",
    "AccountReference",
)


def error(status: int, code: str, message: str) -> JSONResponse:
    request_id = f"{secrets.randbelow(10**4)}-{secrets.randbelow(10**8)}-1"
    body = {"requestId": request_id, "errorCode": code, "errorMessage": message}
    return JSONResponse(body, status_code=status)


def bad_request(field: str) -> JSONResponse:
    return error(400, BAD_REQUEST, f"Bad Request - Invalid {field}")


def error_for_status(status: int) -> Response:
    if status == 429:
        return error(429, "500.003.02", "Spike arrest violation")
    if status >= 500:
        return error(status, "500.003.1001", "Internal Server Error")
    if status in (401, 404):
        return error(404, "404.001.03", "Invalid Access Token")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, f"{status}.001.01", phrase)


def gateway(ctx: SimContext) -> MpesaSim:
    return MpesaSim(ctx)


def _sim(ctx: SimContext) -> MpesaSim:
    found = ctx.gateways[PROVIDER]
    assert isinstance(found, MpesaSim)
    return found


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    token = bearer_token(headers)
    tenant_id = _sim(ctx).token_tenant(token) if token else None
    return ctx.tenants.get(tenant_id) if tenant_id else None


SPEC = ProviderSpec(name=PROVIDER, authenticate=authenticate, error_for_status=error_for_status)


def _token(ctx: SimContext, call: Call) -> Response:
    if call.request.query_params.get("grant_type") != "client_credentials":
        return error(400, "400.008.02", "Invalid grant type passed")
    creds = basic_credentials(call.request.headers)
    for tenant, account in ctx.accounts(PROVIDER, MpesaAccount) if creds else ():
        assert creds is not None
        secret = account.consumer_secret.get_secret_value().encode()
        if account.consumer_key == creds[0] and hmac.compare_digest(secret, creds[1].encode()):
            token = _sim(ctx).issue_token(tenant, account.consumer_key)
            return JSONResponse({"access_token": token, "expires_in": "3599"})
    return error(400, "400.008.01", "Invalid Authentication passed")


def _stk_gate(
    ctx: SimContext, call: Call
) -> Response | tuple[Tenant, MpesaAccount, dict[str, Any]]:
    """The tenant, its account and the body of an authenticated STK call, or Daraja's error."""
    if call.tenant is None:
        return error_for_status(404)
    body = call.body
    if not isinstance(body, dict):
        return bad_request("JSON body")
    account = account_of(ctx, call.tenant.id)
    if account is None or str(body.get("BusinessShortCode")) != account.shortcode:
        return bad_request("BusinessShortCode")
    timestamp = str(body.get("Timestamp", ""))
    if not STAMP.match(timestamp):
        return bad_request("Timestamp")
    expected = stk_password(account.shortcode, account.passkey.get_secret_value(), timestamp)
    if not hmac.compare_digest(expected.encode(), str(body.get("Password", "")).encode()):
        return error(500, CATCH_ALL, "Wrong credentials")
    return call.tenant, account, body


def _invalid_field(body: dict[str, Any], account: MpesaAccount) -> str | None:
    """The first field Daraja would call invalid, or None."""
    missing = next((f for f in STK_FIELDS if body.get(f) in (None, "")), None)
    amount = body.get("Amount")
    checks = [
        (missing is not None, str(missing)),
        (body.get("TransactionType") not in TRANSACTION_TYPES, "TransactionType"),
        (isinstance(amount, bool) or not isinstance(amount, int), "Amount"),
        (isinstance(amount, int) and not 1 <= amount <= MAX_AMOUNT, "Amount"),
        (not PHONE.match(str(body.get("PartyA"))), "PartyA"),
        (not PHONE.match(str(body.get("PhoneNumber"))), "PhoneNumber"),
        (str(body.get("PartyB")) != account.shortcode, "PartyB"),
        (not str(body.get("CallBackURL")).startswith(("https://", "http://")), "CallBackURL"),
        (len(str(body.get("AccountReference"))) > MAX_REFERENCE, "AccountReference"),
    ]
    return next((name for failed, name in checks if failed), None)


def _push(ctx: SimContext, call: Call) -> Response:
    gate = _stk_gate(ctx, call)
    if isinstance(gate, Response):
        return gate
    tenant, account, body = gate
    invalid = _invalid_field(body, account)
    if invalid is not None:
        return bad_request(invalid)
    sim = _sim(ctx)
    phone = str(body["PhoneNumber"])
    if sim.open_prompt_for(phone) is not None:
        return error(500, CATCH_ALL, LOCKED)
    checkout_id = f"ws_CO_{datetime.now().strftime('%d%m%Y%H%M%S')}{secrets.randbelow(10**9):09d}"
    merchant_id = (
        f"{random_id('', 4).lower()}-{random_id('', 4).lower()}-{secrets.randbelow(10**6)}"
    )
    sim.orders[checkout_id] = {
        "order_id": checkout_id,
        "tenant": tenant.id,
        "amount_minor": int(body["Amount"]) * 100,
        "currency": "KES",
        "status": "PENDING",
        "phone": phone,
        "callback_url": str(body["CallBackURL"]),
        "merchant_request_id": merchant_id,
        "account_reference": str(body["AccountReference"]),
        "result_code": None,
        "result_desc": None,
        "receipt": None,
    }
    accepted = "Success. Request accepted for processing"
    return JSONResponse(
        {
            "MerchantRequestID": merchant_id,
            "CheckoutRequestID": checkout_id,
            "ResponseCode": "0",
            "ResponseDescription": accepted,
            "CustomerMessage": accepted,
        }
    )


def _query(ctx: SimContext, call: Call) -> Response:
    gate = _stk_gate(ctx, call)
    if isinstance(gate, Response):
        return gate
    tenant, _, body = gate
    order = _sim(ctx).orders.get(str(body.get("CheckoutRequestID", "")))
    if order is None or order["tenant"] != tenant.id:
        return bad_request("CheckoutRequestID")
    if order["status"] == "PENDING":
        return error(500, CATCH_ALL, "The transaction is being processed")
    return JSONResponse(
        {
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": order["merchant_request_id"],
            "CheckoutRequestID": order["order_id"],
            "ResultCode": str(order["result_code"]),  # a string here, a number in callbacks
            "ResultDesc": order["result_desc"],
        }
    )


def _receipts(sim: MpesaSim, tenant_id: str) -> set[str]:
    paid = {o["receipt"] for o in sim.orders.values() if o["tenant"] == tenant_id and o["receipt"]}
    return paid | {p["TransID"] for p in sim.c2b_payments if p["_tenant"] == tenant_id}


def _reversal(ctx: SimContext, call: Call) -> Response:
    if call.tenant is None:
        return error_for_status(404)
    body = call.body if isinstance(call.body, dict) else {}
    account = account_of(ctx, call.tenant.id)
    sim = _sim(ctx)
    if account is None or body.get("Initiator") != account.initiator_name:
        return bad_request("Initiator")
    for name in ("ResultURL", "QueueTimeOutURL"):
        if not str(body.get(name, "")).startswith(("https://", "http://")):
            return bad_request(name)
    if body.get("TransactionID") not in _receipts(sim, call.tenant.id):
        return bad_request("TransactionID")
    conversation = f"AG_{nairobi_stamp()}_{random_id('', 20)}"
    originator = f"{secrets.randbelow(10**5)}-{secrets.randbelow(10**8)}-1"
    sim.reversals.append({**body, "ConversationID": conversation, "_tenant": call.tenant.id})
    return JSONResponse(
        {
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        }
    )


def _register(ctx: SimContext, call: Call) -> Response:
    if call.tenant is None:
        return error_for_status(404)
    body = call.body if isinstance(call.body, dict) else {}
    account = account_of(ctx, call.tenant.id)
    if account is None or str(body.get("ShortCode")) != account.shortcode:
        return bad_request("ShortCode")
    if body.get("ResponseType") not in ("Completed", "Cancelled"):
        return bad_request("ResponseType")
    urls = [str(body.get(n, "")) for n in ("ConfirmationURL", "ValidationURL")]
    if not all(u.startswith(("https://", "http://")) for u in urls):
        return bad_request("ConfirmationURL")
    _sim(ctx).registrations[(call.tenant.id, account.shortcode)] = Registration(
        urls[0], urls[1], str(body["ResponseType"])
    )
    return JSONResponse(
        {
            "OriginatorCoversationID": random_id("", 12),
            "ResponseCode": "0",
            "ResponseDescription": "Success",
        }
    )


def _not_found(call: Call) -> Response:
    return error(404, "404.001.01", "Resource not found")


async def _phone_page(ctx: SimContext, request: Request) -> Response:
    order = _sim(ctx).order(request.path_params["checkout_id"])
    if order is None:
        return JSONResponse({"error": "no such STK push"}, status_code=404)
    prompt = (
        f"<p>Phone {order['phone']}: pay KES {order['amount_minor'] // 100} to "
        f"{order['account_reference']}? (in production this prompt is on the phone)</p>"
    )
    return checkout_page(PROVIDER, "M-Pesa", order, prompt)


async def _paybill(ctx: SimContext, request: Request) -> Response:
    try:
        data = json.loads(await request.body())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    amount, tenant, bill_ref = data.get("amount_minor"), data.get("tenant"), data.get("bill_ref")
    if not isinstance(tenant, str) or not isinstance(bill_ref, str) or not bill_ref:
        return JSONResponse({"error": "tenant and bill_ref are required"}, status_code=400)
    if isinstance(amount, bool) or not isinstance(amount, int):
        return JSONResponse({"error": "amount_minor must be an integer"}, status_code=400)
    msisdn = str(data.get("msisdn") or "254708374149")
    try:
        paid = await _sim(ctx).paybill(
            tenant, bill_ref, amount, msisdn, bool(data.get("send_callback", True))
        )
    except PayError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse(paid)


def routes(ctx: SimContext) -> list[BaseRoute]:
    def api(handler: Any) -> Any:
        return endpoint(ctx, SPEC, lambda c: handler(ctx, c))

    async def phone_page(request: Request) -> Response:
        return await _phone_page(ctx, request)

    async def paybill(request: Request) -> Response:
        return await _paybill(ctx, request)

    return [
        # Not faultable: a queued fault is meant for the API call the token precedes.
        Route(
            "/oauth/v1/generate",
            endpoint(ctx, SPEC, lambda c: _token(ctx, c), faultable=False),
            methods=["GET"],
        ),
        Route("/mpesa/stkpush/v1/processrequest", api(_push), methods=["POST"]),
        Route("/mpesa/stkpushquery/v1/query", api(_query), methods=["POST"]),
        Route("/mpesa/reversal/v1/request", api(_reversal), methods=["POST"]),
        Route("/mpesa/c2b/v1/registerurl", api(_register), methods=["POST"]),
        Route("/phone/{checkout_id}", phone_page, methods=["GET"]),
        Route("/_phone/paybill", paybill, methods=["POST"]),
        Route(
            "/{path:path}",
            endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
