"""PayPal's REST endpoints as the simulator answers them: token, orders, capture, refund."""

from __future__ import annotations

import re
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from providers.paypal_webhooks import minor_units, paypal_value
from simulators import paypal_webhooks as signing
from simulators.common import Call, app_root, basic_credentials, bearer_token
from simulators.paypal_errors import error, error_for_status, invalid
from simulators.paypal_store import PayPalSim, now, public, upper_id
from simulators.state import random_id

PAYPAL_PATH = "/paypal"  # where the simulator app serves PayPal (paypal.MOUNT)
TOKEN_LIFETIME = 32400
NO_RESOURCE = "Specified resource ID does not exist. Please check the resource ID and try again."
SYNTAX = "The value of a field does not conform to the expected format."
REFUND_EXCEEDED = (
    "The refund amount must be less than or equal to the capture amount that has not yet "
    "been refunded."
)
NOT_APPROVED = (
    "Payer has not yet approved the Order for payment. Please redirect the payer to the "
    "'rel':'approve' url returned as part of the HATEOAS links within the Create Order call "
    "or provide a valid payment_source in the request."
)
VALUE = re.compile(r"^((-?[0-9]+)|(-?([0-9]+)?[.][0-9]+))$")


def issue_token(sim: PayPalSim, call: Call) -> Response:
    pair = basic_credentials(call.request.headers)
    if call.tenant is None or pair is None:
        body = {"error": "invalid_client", "error_description": "Client Authentication failed"}
        return JSONResponse(body, status_code=401)
    form = call.body if isinstance(call.body, dict) else {}
    if form.get("grant_type") != "client_credentials":
        body = {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
        return JSONResponse(body, status_code=400)
    token = "A21AA" + random_id("", 60)
    sim.tokens[token] = (call.tenant.id, pair[0])
    return JSONResponse(
        {
            "scope": "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": TOKEN_LIFETIME,
            "nonce": f"{now()}{random_id('', 20)}",
        }
    )


def _client_id(sim: PayPalSim, call: Call) -> str | None:
    issued = sim.tokens.get(bearer_token(call.request.headers) or "")
    return issued[1] if issued and call.tenant else None


def api_base(request: Request) -> str:
    """PayPal's API base as the caller reached it (links and the certificate URL use it)."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{app_root(request)}{PAYPAL_PATH}"


# --- orders ---------------------------------------------------------------------------


def _unit_problem(unit: Any) -> Response | None:
    if not isinstance(unit, dict) or not isinstance(unit.get("amount"), dict):
        return invalid(
            "MISSING_REQUIRED_PARAMETER",
            "/purchase_units/0/amount",
            "A required field / parameter is missing.",
        )
    amount = unit["amount"]
    currency, value = amount.get("currency_code"), amount.get("value")
    if not isinstance(currency, str) or len(currency) != 3:
        return invalid(
            "MISSING_REQUIRED_PARAMETER",
            "/purchase_units/0/amount/currency_code",
            "A required field / parameter is missing.",
        )
    if not isinstance(value, str) or not VALUE.match(value):
        return invalid(
            "INVALID_PARAMETER_SYNTAX",
            "/purchase_units/0/amount/value",
            "The value of a field does not conform to the expected format.",
        )
    try:
        minor_units(value, currency)
    except ValueError:
        message = (
            "If the currency supports decimals, only two decimal place precision is supported."
        )
        return error(422, "DECIMAL_PRECISION", message, "/purchase_units/0/amount/value")
    return None


def _order_problem(body: Any) -> Response | None:
    if not isinstance(body, dict):
        return invalid("MALFORMED_REQUEST_JSON", "", "The request JSON is not well formed.")
    if body.get("intent") not in ("CAPTURE", "AUTHORIZE"):
        return invalid("INVALID_PARAMETER_VALUE", "/intent", "The value of a field is invalid.")
    units = body.get("purchase_units")
    if not isinstance(units, list) or len(units) != 1:
        return invalid(
            "MISSING_REQUIRED_PARAMETER",
            "/purchase_units",
            "A required field / parameter is missing.",
        )
    return _unit_problem(units[0])


def _new_order(sim: PayPalSim, call: Call, client_id: str, body: dict[str, Any]) -> dict[str, Any]:
    order_id, base = upper_id(), api_base(call.request)
    unit = dict(body["purchase_units"][0])
    currency = unit["amount"]["currency_code"]
    single_step = (
        isinstance(body.get("payment_source"), dict) and "paypal" in body["payment_source"]
    )
    assert call.tenant is not None
    order = {
        "id": order_id,
        "intent": body["intent"],
        "status": "PAYER_ACTION_REQUIRED" if single_step else "CREATED",
        "purchase_units": [unit],
        "create_time": now(),
        "links": [
            {"href": f"{base}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
            {
                "href": f"{base}/checkout/{order_id}",
                "rel": "payer-action" if single_step else "approve",
                "method": "GET",
            },
        ],
        "_tenant": call.tenant.id,
        "_client_id": client_id,
        "_currency": currency,
        "_amount_minor": minor_units(unit["amount"]["value"], currency),
        "_api_base": base,
    }
    if single_step:
        order["payment_source"] = {"paypal": {}}
    sim.orders[(client_id, order_id)] = order
    return order


def _replayed(sim: PayPalSim, key: tuple[str, str, str], body: Any) -> Response | None:
    """PayPal's answer to a PayPal-Request-Id it has seen: the first answer again, with 200."""
    seen = sim.replies.get(key)
    if seen is None:
        return None
    if seen[0] != body:
        message = "The PayPal-Request-Id has already been used for another request."
        return error(
            422, "PAYPAL_REQUEST_ID_PREVIOUSLY_USED", message, "PayPal-Request-Id", "header"
        )
    return JSONResponse(seen[1], status_code=200)


def create_order(sim: PayPalSim, call: Call) -> Response:
    client_id = _client_id(sim, call)
    if client_id is None:
        return error_for_status(401)
    problem = _order_problem(call.body)
    if problem is not None:
        return problem
    request_id = call.request.headers.get("paypal-request-id", "")
    single_step = isinstance(call.body.get("payment_source"), dict)
    if single_step and not request_id:
        return invalid(
            "PAYPAL_REQUEST_ID_REQUIRED",
            "PayPal-Request-Id",
            "A PayPal-Request-Id is required if you are trying to process payment for an Order.",
            "header",
        )
    key = (client_id, "create", request_id)
    replay = _replayed(sim, key, call.body) if request_id else None
    if replay is not None:
        return replay
    order = _new_order(sim, call, client_id, call.body)
    answer = {k: order[k] for k in ("id", "status", "links")}
    if "payment_source" in order:
        answer["payment_source"] = order["payment_source"]
    if request_id:
        sim.replies[key] = (call.body, answer)
    return JSONResponse(answer, status_code=201)


def _owned_order(sim: PayPalSim, call: Call) -> tuple[str, dict[str, Any]] | Response:
    client_id = _client_id(sim, call)
    if client_id is None:
        return error_for_status(401)
    order_id = call.request.path_params["order_id"]
    order = sim.orders.get((client_id, order_id))
    if order is None:
        message = (
            "Specified resource ID does not exist. Please check the resource ID and try again."
        )
        return error(404, "INVALID_RESOURCE_ID", message, "", "path", name="RESOURCE_NOT_FOUND")
    return client_id, order


def fetch_order(sim: PayPalSim, call: Call) -> Response:
    found = _owned_order(sim, call)
    return found if isinstance(found, Response) else JSONResponse(public(found[1]))


def _capture(sim: PayPalSim, order: dict[str, Any]) -> dict[str, Any]:
    capture_id = upper_id()
    unit = order["purchase_units"][0]
    declined = order.get("_decline", False)
    capture: dict[str, Any] = {
        "id": capture_id,
        "status": "DECLINED" if declined else "COMPLETED",
        "amount": dict(unit["amount"]),
        "final_capture": True,
        "invoice_id": unit.get("invoice_id"),
        "custom_id": unit.get("custom_id"),
        "create_time": now(),
        "update_time": now(),
        "links": [
            {
                "href": f"{order['_api_base']}/v2/payments/captures/{capture_id}",
                "rel": "self",
                "method": "GET",
            }
        ],
    }
    if declined:
        capture["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
    unit["payments"] = {"captures": [capture]}
    order.update(status="COMPLETED", update_time=now(), _capture_id=capture_id)
    order["links"] = order["links"][:1]
    sim.captures[(order["_client_id"], capture_id)] = {
        **capture,
        "_refunded_minor": 0,
        "_order": order,
    }
    return capture


def capture_order(sim: PayPalSim, call: Call) -> Response:
    found = _owned_order(sim, call)
    if isinstance(found, Response):
        return found
    client_id, order = found
    request_id = call.request.headers.get("paypal-request-id", "")
    key = (client_id, "capture", request_id)
    replay = _replayed(sim, key, call.body) if request_id else None
    if replay is not None:
        return replay
    if order["status"] == "COMPLETED":
        return error(
            422,
            "ORDER_ALREADY_CAPTURED",
            "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
        )
    if order["status"] != "APPROVED":
        return error(
            422,
            "ORDER_NOT_APPROVED",
            NOT_APPROVED,
        )
    capture = _capture(sim, order)
    answer = public(order)
    if request_id:
        sim.replies[key] = (call.body, answer)
    body = signing.capture_event(capture, order["id"])
    event = (
        "PAYMENT.CAPTURE.COMPLETED"
        if capture["status"] == "COMPLETED"
        else "PAYMENT.CAPTURE.DENIED"
    )
    # PayPal notifies after it has answered the capture call.
    return JSONResponse(
        answer, status_code=201, background=BackgroundTask(sim.send, order, event, body)
    )


def _refund_problem(capture: dict[str, Any], body: Any) -> Response | int:
    """The amount to refund in minor units, or PayPal's refusal."""
    currency = capture["amount"]["currency_code"]
    captured = minor_units(capture["amount"]["value"], currency)
    remaining: int = captured - int(capture["_refunded_minor"])
    if remaining <= 0:
        return error(422, "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded")
    amount = body.get("amount") if isinstance(body, dict) else None
    if amount is None:
        return remaining  # no amount: the rest of the capture
    if not isinstance(amount, dict) or amount.get("currency_code") != currency:
        message = "Refund must be in the same currency as the capture."
        return error(422, "REFUND_CURRENCY_MISMATCH", message, "/amount/currency_code")
    try:
        wanted = minor_units(amount.get("value"), currency)
    except ValueError:
        return invalid("INVALID_PARAMETER_SYNTAX", "/amount/value", SYNTAX)
    if wanted > remaining:
        return error(422, "REFUND_AMOUNT_EXCEEDED", REFUND_EXCEEDED)
    return wanted


def refund(sim: PayPalSim, call: Call) -> Response:
    client_id = _client_id(sim, call)
    if client_id is None:
        return error_for_status(401)
    capture = sim.captures.get((client_id, call.request.path_params["capture_id"]))
    if capture is None or capture["status"] != "COMPLETED":
        return error(404, "INVALID_RESOURCE_ID", NO_RESOURCE, name="RESOURCE_NOT_FOUND")
    request_id = call.request.headers.get("paypal-request-id", "")
    key = (client_id, "refund", request_id)
    replay = _replayed(sim, key, call.body) if request_id else None
    if replay is not None:
        return replay
    wanted = _refund_problem(capture, call.body)
    if isinstance(wanted, Response):
        return wanted
    capture["_refunded_minor"] += wanted
    refund_id, currency = upper_id(), capture["amount"]["currency_code"]
    href = f"{api_base(call.request)}/v2/payments/refunds/{refund_id}"
    answer = {
        "id": refund_id,
        "status": "COMPLETED",
        "amount": {"currency_code": currency, "value": paypal_value(wanted, currency)},
        "links": [{"href": href, "rel": "self", "method": "GET"}],
    }
    if request_id:
        sim.replies[key] = (call.body, answer)
    return JSONResponse(answer, status_code=201)
