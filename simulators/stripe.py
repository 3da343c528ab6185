"""Stripe's API (v1) as the hub and stripe-python call it, with its auth, errors and idempotency.

- `POST /v1/checkout/sessions`            create a Checkout Session (mode=payment)
- `GET  /v1/checkout/sessions/{id}`       retrieve one (`expand[]=payment_intent`)
- `POST /v1/refunds`                      refund a PaymentIntent, wholly or in part
- `GET  /v1/balance`                      the account's balance (the hub's probe)
- `GET  /checkout/{id}`                   the hosted checkout page (the session's `url`)

Auth: `Authorization: Bearer sk_...` (or Basic with the key as user, as curl sends
it). Bodies are form-encoded in Stripe's bracket notation. A POST with an
`Idempotency-Key` saves its first successful answer: the same key and parameters
replay it (`Idempotent-Replayed: true`), other parameters or another endpoint are
a 400 `idempotency_error`. Errors are `{"error": {"type", "code", "message", "param"}}`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.stripe import StripeAccount
from simulators.common import (
    Call,
    Endpoint,
    Handler,
    ProviderSpec,
    SimContext,
    basic_credentials,
    provider_endpoint,
)
from simulators.payments import checkout_page
from simulators.state import random_id
from simulators.stripe_gateway import Saved, StripeGateway, owner_of, public
from simulators.stripe_params import (
    ParamError,
    decode,
    refund_params,
    session_params,
    wants_intent,
)

MOUNT = "/stripe"
INVALID = "invalid_request_error"
NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
SESSION_LIFETIME = 24 * 60 * 60


def error(
    status: int, message: str, kind: str = INVALID, code: str | None = None, **extra: str
) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "type": kind, **extra}
    if code is not None:
        body["code"] = code
        body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    return stripe_json({"error": body}, status)


def stripe_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Request-Id": random_id("req_", 14)})


# The error Stripe answers with for a status a fault asks for: (message, type, code).
FAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    401: ("Invalid API Key provided: sk_test_********************", INVALID, None),
    402: ("Your card was declined.", "card_error", "card_declined"),
    404: ("Unrecognized request URL.", INVALID, "resource_missing"),
    409: (
        "There is currently another in-progress request using this Idempotent Key.",
        "idempotency_error",
        None,
    ),
    429: (
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        INVALID,
        "rate_limit",
    ),
}


def error_for_status(status: int) -> Response:
    if status >= 500:
        return error(status, "An unknown error occurred", "api_error")
    message, kind, code = FAULT_ERRORS.get(
        status, ("The request could not be completed.", INVALID, None)
    )
    return error(status, message, kind, code)


def presented_key(headers: Headers) -> str | None:
    """The secret key a request carries: Bearer, or Basic with the key as user."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    basic = basic_credentials(headers)
    return basic[0] if basic else None


def account_for(ctx: SimContext, headers: Headers) -> tuple[Tenant, StripeAccount] | None:
    key = presented_key(headers)
    if key is None:
        return None
    for tenant, account in ctx.accounts("stripe", StripeAccount):
        if hmac.compare_digest(account.secret_key.get_secret_value().encode(), key.encode()):
            return tenant, account
    return None


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    found = account_for(ctx, headers)
    return found[0] if found else None


SPEC = ProviderSpec(name="stripe", authenticate=authenticate, error_for_status=error_for_status)


def unauthorized(headers: Headers) -> Response:
    key = presented_key(headers)
    if key is None:
        response = error(401, NO_KEY)
    else:  # Stripe shows the key's last four characters only
        response = error(401, f"Invalid API Key provided: {key[:8]}{'*' * 12}{key[-4:]}")
    response.headers["WWW-Authenticate"] = 'Basic realm="Stripe"'
    return response


# Builds the object a POST creates from its decoded parameters (or answers an error).
Creator = Callable[[dict[str, Any], str, Call], "dict[str, Any] | Response"]


class StripeApi:
    def __init__(self, ctx: SimContext, gateway: StripeGateway) -> None:
        self.ctx = ctx
        self.gateway = gateway
        self.store = gateway.store

    def _owner(self, call: Call) -> str | None:
        found = account_for(self.ctx, call.request.headers)
        return owner_of(found[1]) if found else None

    def _idempotent(self, call: Call, owner: str, create: Creator) -> Response:
        """Answer a POST once per Idempotency-Key, as Stripe saves its first result."""
        pairs = parse_qsl(call.raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        key = call.request.headers.get("idempotency-key")
        endpoint = call.request.url.path
        saved = self.store.saved.get((owner, key)) if key else None
        if saved is not None:
            if saved.endpoint != endpoint:
                message = (
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    f"were first used for ('{endpoint}' vs '{saved.endpoint}'). Try using a key "
                    f"other than '{key}' if you meant to execute a different request."
                )
                return error(400, message, "idempotency_error")
            if saved.params != pairs:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request."
                )
                return error(400, message, "idempotency_error")
            response = stripe_json(saved.body, saved.status)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        try:
            body = create(decode(pairs), owner, call)
        except ParamError as exc:
            return exc.response(error)
        if isinstance(body, Response):
            return body
        if key:
            self.store.saved[(owner, key)] = Saved(endpoint, pairs, 200, body)
        return stripe_json(body)

    # --- checkout sessions ------------------------------------------------------

    def create_session(self, call: Call) -> Response:
        owner = self._owner(call)
        if owner is None or call.tenant is None:
            return unauthorized(call.request.headers)
        return self._idempotent(call, owner, self._new_session)

    def _new_session(self, params: dict[str, Any], owner: str, call: Call) -> dict[str, Any]:
        wanted = session_params(params)
        assert call.tenant is not None
        session_id = random_id("cs_test_", 58)
        now = int(time.time())
        base = str(call.request.url).split("/v1/checkout/sessions", 1)[0]
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": wanted.amount_total,
            "amount_total": wanted.amount_total,
            "cancel_url": wanted.cancel_url,
            "client_reference_id": wanted.client_reference_id,
            "created": now,
            "currency": wanted.currency,
            "customer": None,
            "customer_email": wanted.customer_email,
            "expires_at": now + SESSION_LIFETIME,
            "livemode": False,
            "metadata": wanted.metadata,
            "mode": "payment",
            "payment_intent": None,
            "payment_method_types": wanted.payment_method_types,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": wanted.success_url,
            "ui_mode": "hosted",
            "url": f"{base}/checkout/{session_id}",
            "_owner": owner,
            "_tenant": call.tenant.id,
            "_intent_metadata": wanted.intent_metadata,
        }
        self.store.sessions[session_id] = session
        return public(session)

    def retrieve_session(self, call: Call) -> Response:
        owner = self._owner(call)
        if owner is None:
            return unauthorized(call.request.headers)
        session_id = call.request.path_params["session_id"]
        session = self.store.sessions.get(session_id)
        if session is None or session["_owner"] != owner:
            message = f"No such checkout.session: '{session_id}'"
            return error(404, message, INVALID, "resource_missing", param="session")
        try:
            expand = wants_intent(decode(parse_qsl(call.request.url.query)))
        except ParamError as exc:
            return exc.response(error)
        shown = public(session)
        intent = self.store.intents.get(session["payment_intent"] or "")
        if expand and intent is not None:
            shown["payment_intent"] = public(intent)
        return stripe_json(shown)

    # --- refunds ------------------------------------------------------------------

    def create_refund(self, call: Call) -> Response:
        owner = self._owner(call)
        if owner is None:
            return unauthorized(call.request.headers)
        return self._idempotent(call, owner, self._new_refund)

    def _new_refund(
        self, params: dict[str, Any], owner: str, call: Call
    ) -> dict[str, Any] | Response:
        wanted = refund_params(params)
        intent = self.store.intents.get(wanted.payment_intent)
        if intent is None or intent["_owner"] != owner:
            message = f"No such payment_intent: '{wanted.payment_intent}'"
            return error(404, message, INVALID, "resource_missing", param="payment_intent")
        if intent["status"] != "succeeded":
            message = "This PaymentIntent does not have a successful charge to refund."
            return error(400, message, INVALID, param="payment_intent")
        left = intent["amount_received"] - self.store.refunded(intent["id"])
        if left <= 0:
            message = f"Charge {intent['latest_charge']} has already been refunded."
            return error(400, message, INVALID, "charge_already_refunded")
        amount = left if wanted.amount is None else wanted.amount
        if amount > left:
            message = (
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
            )
            return error(400, message, INVALID, "amount_too_large", param="amount")
        refund = {
            "id": random_id("re_", 24),
            "object": "refund",
            "amount": amount,
            "charge": intent["latest_charge"],
            "created": int(time.time()),
            "currency": intent["currency"],
            "metadata": wanted.metadata,
            "payment_intent": intent["id"],
            "reason": wanted.reason,
            "status": "succeeded",
        }
        self.store.refunds[refund["id"]] = refund
        return refund

    # --- the probe and the checkout page --------------------------------------------

    def balance(self, call: Call) -> Response:
        owner = self._owner(call)
        if owner is None:
            return unauthorized(call.request.headers)
        pending: dict[str, int] = {}
        for intent in self.store.intents.values():
            if intent["_owner"] == owner and intent["status"] == "succeeded":
                net = intent["amount_received"] - self.store.refunded(intent["id"])
                pending[intent["currency"]] = pending.get(intent["currency"], 0) + net
        currencies = sorted(pending) or ["usd"]
        return stripe_json(
            {
                "object": "balance",
                "available": [
                    {"amount": 0, "currency": c, "source_types": {"card": 0}} for c in currencies
                ],
                "livemode": False,
                "pending": [
                    {"amount": pending.get(c, 0), "currency": c, "source_types": {"card": 0}}
                    for c in currencies
                ],
            }
        )

    def checkout(self, call: Call) -> Response:
        order = self.gateway.order(call.request.path_params["session_id"])
        if order is None or order["status"] != "open":
            return HTMLResponse("<h1>This Checkout Session is no longer active.</h1>", 404)
        return checkout_page("stripe", "Stripe Checkout", order)


def _not_found(call: Call) -> Response:
    message = f"Unrecognized request URL ({call.request.method}: {call.request.url.path})."
    return error(404, message)


def gateway(ctx: SimContext) -> StripeGateway:
    return StripeGateway(ctx)


def routes(ctx: SimContext) -> list[BaseRoute]:
    found = ctx.gateways.get("stripe")
    api = StripeApi(ctx, found if isinstance(found, StripeGateway) else gateway(ctx))

    def endpoint(handler: Handler, faultable: bool = True) -> Endpoint:
        return provider_endpoint(ctx, SPEC, handler, faultable=faultable)

    return [
        Route("/v1/checkout/sessions", endpoint(api.create_session), methods=["POST"]),
        Route(
            "/v1/checkout/sessions/{session_id}",
            endpoint(api.retrieve_session),
            methods=["GET"],
        ),
        Route("/v1/refunds", endpoint(api.create_refund), methods=["POST"]),
        Route("/v1/balance", endpoint(api.balance), methods=["GET"]),
        Route("/checkout/{session_id}", endpoint(api.checkout, False), methods=["GET"]),
        Route(
            "/{path:path}",
            endpoint(_not_found, False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
