"""Flutterwave v3, auth by `Authorization: Bearer <secret key>`.

- `POST /v3/payments` (Standard): a hosted checkout link for the `tx_ref`. The same
  `tx_ref` again, before anyone paid and with the same amount and currency, gets the
  same checkout; after a transaction exists (or with another amount), 400.
- `GET  /v3/transactions/verify_by_reference?tx_ref=` and `GET /v3/transactions/{id}/verify`.
- `POST /v3/transactions/{id}/refund` `{amount?}`: at most what is left of the charge.
- `GET  /v3/balances`: the wallets (the hub's test-connection call).
- `GET  /checkout/{tx_ref}`: the hosted checkout page (no auth: the payer's browser).

Errors are Flutterwave's `{"status": "error", "message", "data": null}`. A payment
posts `charge.completed` to the tenant's webhook URL with the account's secret hash
in `verif-hash`, as Flutterwave does; a cancelled or abandoned checkout creates no
transaction and sends nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.currency_units import json_number, to_major, to_minor
from providers.flutterwave import FlutterwaveAccount
from simulators.common import (
    Call,
    ProviderSpec,
    SimContext,
    app_root,
    bearer_token,
    provider_endpoint,
)
from simulators.payments import GatewaySim, PayAttempt, PayError, SentCallback, checkout_page
from simulators.state import random_id

MOUNT = "/flutterwave"
PAY_OUTCOMES = {"success": "successful", "failed": "failed"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, "data": None}, status_code=status)


def error_for_status(status: int) -> Response:
    if status >= 500:
        return error(status, "An error occurred. Please contact support")
    if status == 401:
        return error(401, "Invalid authorization key")
    if status == 429:
        return error(429, "Too many requests, please try again later")
    try:
        return error(status, HTTPStatus(status).phrase)
    except ValueError:
        return error(status, "request failed")


def find_account(ctx: SimContext, key: str) -> tuple[Tenant, FlutterwaveAccount] | None:
    for tenant, account in ctx.accounts("flutterwave", FlutterwaveAccount):
        expected = account.secret_key.get_secret_value().encode()
        if hmac.compare_digest(expected, key.encode()):
            return tenant, account
    return None


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    key = bearer_token(headers)
    found = find_account(ctx, key) if key else None
    return found[0] if found else None


SPEC = ProviderSpec(
    name="flutterwave", authenticate=authenticate, error_for_status=error_for_status
)


def merchant_of(key: str) -> str:
    """Orders are the merchant's (one per secret key): a digest, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class FlutterwaveSim:
    """The merchants' payments: orders by (merchant, tx_ref), each with its transactions."""

    ctx: SimContext
    name: str = "flutterwave"
    orders: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(4_800_001))

    def find(self, tx_ref: str) -> dict[str, Any] | None:
        """The latest order with this tx_ref, whoever's (the control plane names only the ref)."""
        found = [o for (_, ref), o in self.orders.items() if ref == tx_ref]
        return found[-1] if found else None

    def order(self, order_id: str) -> dict[str, Any] | None:
        found = self.find(order_id)
        return None if found is None else {k: v for k, v in found.items() if not k.startswith("_")}

    def transaction(self, merchant: str, tx_id: str) -> dict[str, Any] | None:
        for (owner, _), order in self.orders.items():
            transactions: list[dict[str, Any]] = order["transactions"] if owner == merchant else []
            for tx in transactions:
                if str(tx["id"]) == tx_id:
                    return tx
        return None

    def _transaction(
        self, order: dict[str, Any], attempt: PayAttempt, status: str
    ) -> dict[str, Any]:
        currency = attempt.currency or order["currency"]
        amount_minor = (
            order["amount_minor"] if attempt.amount_minor is None else attempt.amount_minor
        )
        amount = json_number(to_major(amount_minor, currency))
        tx_id = next(self._ids)
        return {
            "id": tx_id,
            "tx_ref": order["order_id"],
            "flw_ref": f"FLW-MOCK-{random_id('', 24)}",
            "amount": amount,
            "currency": currency,
            "charged_amount": amount,
            "app_fee": 0,
            "merchant_fee": 0,
            "processor_response": "Approved" if status == "successful" else "Declined by issuer",
            "status": status,
            "payment_type": attempt.method or "card",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "customer": order["customer"],
            "amount_refunded_minor": 0,
        }

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        order = self.find(order_id)
        if order is None:
            raise PayError(404, f"no flutterwave payment with tx_ref {order_id!r}")
        if order["status"] == "successful":
            raise PayError(409, f"{order_id} is already paid")
        status = PAY_OUTCOMES.get(attempt.outcome)
        if status is None:  # cancelled or abandoned: no transaction, no webhook
            return {"order_id": order_id, "payment_id": "", "status": order["status"]}
        tx = self._transaction(order, attempt, status)
        order["transactions"].append(tx)
        order["status"] = status
        result: dict[str, Any] = {
            "order_id": order_id,
            "payment_id": str(tx["id"]),
            "status": status,
        }
        if attempt.send_callback:
            result["callback"] = await self._send_webhook(order, tx, attempt.callback_url)
        return result

    async def _send_webhook(
        self, order: dict[str, Any], tx: dict[str, Any], url: str | None
    ) -> dict[str, Any]:
        account: FlutterwaveAccount = order["_account"]
        payload = {
            "event": "charge.completed",
            "data": public_tx(tx),
            "event.type": "CARD_TRANSACTION",
        }
        callback = SentCallback(
            provider=self.name,
            tenant=order["tenant"],
            order_id=order["order_id"],
            payment_id=str(tx["id"]),
            event="charge.completed",
            url=url or self.ctx.webhook_url(self.name, order["tenant"]),
            body=json.dumps(payload, separators=(",", ":")).encode(),
            headers={
                "content-type": "application/json",
                "verif-hash": account.secret_hash.get_secret_value(),
            },
        )
        return await self.ctx.callbacks.send(callback)

    def reset(self) -> None:
        self.orders.clear()


def public_tx(tx: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tx.items() if k != "amount_refunded_minor"}


def gateway(ctx: SimContext) -> GatewaySim:
    return FlutterwaveSim(ctx)


def _sim(ctx: SimContext) -> FlutterwaveSim:
    sim = ctx.gateways["flutterwave"]
    assert isinstance(sim, FlutterwaveSim)
    return sim


# --- the API ------------------------------------------------------------------------------


def _caller(ctx: SimContext, call: Call) -> tuple[str, Tenant, FlutterwaveAccount] | Response:
    key = bearer_token(call.request.headers)
    found = find_account(ctx, key) if key else None
    if key is None:
        return error(401, "Authorization required")
    if found is None:
        return error_for_status(401)
    return merchant_of(key), found[0], found[1]


def _payment_problem(body: Any) -> Response | None:
    if not isinstance(body, dict):
        return error(400, "Invalid request body")
    if not isinstance(body.get("tx_ref"), str) or not body["tx_ref"]:
        return error(400, "tx_ref is required")
    amount = body.get("amount")
    try:
        valid = not isinstance(amount, bool) and Decimal(str(amount)) > 0
    except InvalidOperation:
        valid = False
    if not valid:
        return error(400, "amount is required and must be a positive number")
    customer = body.get("customer")
    if not isinstance(customer, dict) or not customer.get("email"):
        return error(400, "customer.email is required")
    return None


def _checkout_link(request: Request, tx_ref: str) -> str:
    root = f"{request.url.scheme}://{request.url.netloc}{app_root(request)}"
    return f"{root}{MOUNT}/checkout/{quote(tx_ref, safe='')}"


def _hosted_link(link: str) -> JSONResponse:
    return JSONResponse({"status": "success", "message": "Hosted Link", "data": {"link": link}})


def _create_payment(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call)
    if isinstance(caller, Response):
        return caller
    merchant, tenant, account = caller
    problem = _payment_problem(call.body)
    if problem is not None:
        return problem
    body: dict[str, Any] = call.body
    currency = str(body.get("currency") or "NGN")
    try:
        amount_minor = to_minor(body["amount"], currency)
    except ValueError:
        return error(400, f"amount has more decimals than {currency} allows")
    key = (merchant, body["tx_ref"])
    existing = _sim(ctx).orders.get(key)
    if existing is not None:
        same = (existing["amount_minor"], existing["currency"]) == (amount_minor, currency)
        if existing["transactions"] or not same:
            return error(400, "Duplicate transaction reference. Please use a unique reference")
        return _hosted_link(existing["link"])
    link = _checkout_link(call.request, body["tx_ref"])
    _sim(ctx).orders[key] = {
        "order_id": body["tx_ref"],
        "tenant": tenant.id,
        "amount_minor": amount_minor,
        "currency": currency,
        "status": "pending",
        "link": link,
        "redirect_url": body.get("redirect_url"),
        "customer": body["customer"],
        "meta": body.get("meta") or {},
        "transactions": [],
        "_account": account,
    }
    return _hosted_link(link)


def _fetched(tx: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        {"status": "success", "message": "Transaction fetched successfully", "data": public_tx(tx)}
    )


def _verify_by_reference(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call)
    if isinstance(caller, Response):
        return caller
    tx_ref = call.request.query_params.get("tx_ref", "")
    order = _sim(ctx).orders.get((caller[0], tx_ref))
    if order is None or not order["transactions"]:
        return error(400, "No transaction was found for this id")
    return _fetched(order["transactions"][-1])


def _verify_by_id(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call)
    if isinstance(caller, Response):
        return caller
    tx = _sim(ctx).transaction(caller[0], call.request.path_params["tx_id"])
    return error(400, "No transaction was found for this id") if tx is None else _fetched(tx)


def _refund_amount(body: Any, tx: dict[str, Any]) -> int | Response:
    left = to_minor(tx["amount"], tx["currency"]) - tx["amount_refunded_minor"]
    asked = body.get("amount") if isinstance(body, dict) else None
    try:
        wanted = left if asked is None else to_minor(asked, tx["currency"])
    except ValueError:
        return error(400, "amount must be a number")
    if wanted <= 0 or wanted > left:
        return error(400, "Refund amount cannot be greater than the amount left on the transaction")
    return wanted


def _refund(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call)
    if isinstance(caller, Response):
        return caller
    tx = _sim(ctx).transaction(caller[0], call.request.path_params["tx_id"])
    if tx is None:
        return error(400, "No transaction was found for this id")
    if tx["status"] != "successful":
        return error(400, "Only successful transactions can be refunded")
    amount = _refund_amount(call.body, tx)
    if isinstance(amount, Response):
        return amount
    tx["amount_refunded_minor"] += amount
    data = {
        "id": next(_sim(ctx)._ids),
        "tx_id": tx["id"],
        "flw_ref": tx["flw_ref"],
        "amount_refunded": json_number(to_major(amount, tx["currency"])),
        "status": "completed",
        "destination": "payment_source",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    return JSONResponse(
        {"status": "success", "message": "Transaction refund initiated", "data": data}
    )


def _balances(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call)
    if isinstance(caller, Response):
        return caller
    wallets = [{"currency": c, "available_balance": 0, "ledger_balance": 0} for c in ("NGN", "KES")]
    return JSONResponse(
        {"status": "success", "message": "Wallet balances fetched", "data": wallets}
    )


def _checkout(ctx: SimContext, call: Call) -> Response:
    order = _sim(ctx).order(call.request.path_params["tx_ref"])
    if order is None:
        return error(404, "This payment link is invalid or has expired")
    return checkout_page("flutterwave", "Flutterwave", order)


def _not_found(call: Call) -> Response:
    return error(404, "Route not found")


def routes(ctx: SimContext) -> list[BaseRoute]:
    def api(handler: Any, *, faultable: bool = True) -> Any:
        return provider_endpoint(ctx, SPEC, lambda c: handler(ctx, c), faultable=faultable)

    return [
        Route("/v3/payments", api(_create_payment), methods=["POST"]),
        Route("/v3/transactions/verify_by_reference", api(_verify_by_reference), methods=["GET"]),
        Route("/v3/transactions/{tx_id}/verify", api(_verify_by_id), methods=["GET"]),
        Route("/v3/transactions/{tx_id}/refund", api(_refund), methods=["POST"]),
        Route("/v3/balances", api(_balances), methods=["GET"]),
        Route("/checkout/{tx_ref}", api(_checkout, faultable=False), methods=["GET"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
