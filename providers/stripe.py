"""Stripe: Checkout Sessions out (create, status, refund), signed Checkout events in.

- Create: `POST /v1/checkout/sessions` (form-encoded, Stripe's bracket notation), one
  line item for the order's amount. The session id (`cs_...`) is the hub's order id;
  its `url` is the payer's hosted checkout page.
- Status: `GET /v1/checkout/sessions/{id}?expand[]=payment_intent`.
- Refund: `POST /v1/refunds` with `payment_intent`.
- Test connection: `GET /v1/balance`, the cheapest authenticated read.

Auth is `Authorization: Bearer <secret key>`; every call pins `Stripe-Version`, so
the shapes read here do not change when the account's default version does. Creates
and refunds carry `Idempotency-Key` (the command's key): a redelivered command gets
Stripe's saved answer, not a second session or refund.

Amounts: Stripe's `amount`/`unit_amount` are already in the currency's smallest unit,
the hub's minor units, so nothing is converted. For zero-decimal currencies (JPY,
KRW, ...) that unit is the whole yen; the hub's INR, KES and USD are all two-decimal.
Stripe's own exceptions (ISK, zero-decimal in ISO 4217 but two-decimal in Stripe's
API; three-decimal currencies whose amounts must end in 0) are not currencies the
hub charges in. Stripe's currency codes are lowercase, the hub's uppercase.

The webhook half (verifier, normalizer) is in providers/stripe_webhooks.py.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.tenants import Tenant
from providers.base import Delivered, Outcome, Rejected, RetryLater, classify_failure, json_or_empty
from providers.payments import GatewayAdapter, PaymentSnapshot
from providers.spec import API, Provider, Webhooks
from providers.stripe_webhooks import StripeVerifier, event_id, normalize_stripe, session_snapshot
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    RefundPayment,
)

# The API version every request pins (the shapes below are read as of this version).
API_VERSION = "2024-06-20"
# Stripe's limits: idempotency keys up to 255 characters, metadata 50 keys of up to
# 40 characters with values up to 500, client_reference_id up to 200.
MAX_IDEMPOTENCY_KEY = 255
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_REFERENCE = 200
# Refund reasons Stripe accepts as `reason`; any other text goes to metadata.
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


class StripeAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_key: SecretStr  # sk_live_/sk_test_..., or a restricted rk_... key
    webhook_secret: SecretStr  # the webhook endpoint's signing secret, whsec_...
    # Where the payer's browser goes after checkout when the command names no page.
    return_url: str | None = None


def idempotency_key(key: str) -> str:
    """The command's key, hashed when it is longer than Stripe accepts (still stable)."""
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return "hub_" + hashlib.sha256(key.encode()).hexdigest()


def _headers(account: StripeAccount) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {account.secret_key.get_secret_value()}",
        "Stripe-Version": API_VERSION,
    }


def _metadata(prefix: str, notes: dict[str, str]) -> dict[str, str]:
    """Notes as Stripe metadata (within its limits), under a bracket-notation prefix."""
    usable = [(k, v) for k, v in notes.items() if k and len(k) <= MAX_METADATA_KEY]
    return {f"{prefix}[{k}]": v[:MAX_METADATA_VALUE] for k, v in usable[:MAX_METADATA_KEYS]}


def _product_name(payload: CreatePaymentOrder) -> str:
    invoice = payload.notes.get("invoice_id")
    return f"Invoice {invoice}" if invoice else f"Payment {payload.receipt}"


def session_form(payload: CreatePaymentOrder, account: StripeAccount) -> dict[str, str]:
    """The create-session parameters, flattened the way Stripe's form encoding wants."""
    notes = {**payload.notes, "receipt": payload.receipt}
    form = {
        "mode": "payment",
        "line_items[0][price_data][currency]": payload.currency.lower(),
        "line_items[0][price_data][unit_amount]": str(payload.amount_minor),
        "line_items[0][price_data][product_data][name]": _product_name(payload),
        "line_items[0][quantity]": "1",
        "client_reference_id": payload.receipt[:MAX_REFERENCE],
        # On the session (its events) and on the PaymentIntent (its refunds, the dashboard).
        **_metadata("metadata", notes),
        **_metadata("payment_intent_data[metadata]", notes),
    }
    return_url = payload.return_url or account.return_url
    if return_url:  # optional at Stripe: without it, Checkout shows its own confirmation
        form["success_url"] = return_url
        form["cancel_url"] = return_url
    if payload.notes.get("customer_email"):
        form["customer_email"] = payload.notes["customer_email"]
    return form


def stripe_error(response: httpx.Response) -> tuple[str, str | None]:
    """The message and code of Stripe's `{"error": {...}}` (the type when no code)."""
    found = json_or_empty(response).get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    message = str(error.get("message") or response.reason_phrase or "error")
    code = error.get("code") or error.get("type")
    return message, str(code) if code else None


def classify_stripe_failure(response: httpx.Response) -> Outcome:
    """A non-2xx answer: Stripe's own retry advice first, as stripe-python obeys it."""
    message, code = stripe_error(response)
    advice = response.headers.get("stripe-should-retry", "").lower()
    if advice == "true":
        return RetryLater(message, response.status_code, code)
    if advice == "false":
        return Rejected(message, response.status_code, code)
    if response.status_code == 400 and code == "rate_limit":  # Stripe's older rate-limit 400
        return RetryLater(message, 400, code)
    return classify_failure(response, message, code)


def _session_id_of(response: httpx.Response) -> str:
    return response.request.url.path.rstrip("/").rsplit("/", 1)[-1]


class Stripe(GatewayAdapter):
    name = "stripe"

    # --- create -----------------------------------------------------------------

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = tenant.account("stripe", StripeAccount, command.account)
        return httpx.Request(
            "POST",
            f"{base}/v1/checkout/sessions",
            data=session_form(payload, account),
            headers={
                **_headers(account),
                "Idempotency-Key": idempotency_key(command.idempotency_key),
            },
        )

    def classify_order(self, response: httpx.Response) -> Outcome:
        if not response.is_success:
            return classify_stripe_failure(response)
        body = json_or_empty(response)
        session_id = body.get("id")
        if body.get("object") != "checkout.session" or not isinstance(session_id, str):
            return Rejected("Stripe answered without a Checkout Session", response.status_code)
        return Delivered(
            session_id,
            response.status_code,
            {
                "session_id": session_id,
                "payment_url": str(body.get("url") or ""),
                "status": str(body.get("status") or ""),
                "payment_status": str(body.get("payment_status") or ""),
                "expires_at": str(body.get("expires_at") or ""),
            },
        )

    # --- status -----------------------------------------------------------------

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = tenant.account("stripe", StripeAccount, command.account)
        return httpx.Request(
            "GET",
            f"{base}/v1/checkout/sessions/{quote(payload.order_id, safe='')}",
            params={"expand[]": "payment_intent"},
            headers=_headers(account),
        )

    def classify_status(self, response: httpx.Response) -> Outcome:
        if response.status_code == 404:
            _, code = stripe_error(response)
            if code == "resource_missing":  # no such session: the hub's order is unknown
                session_id = _session_id_of(response)
                snapshot = PaymentSnapshot("NOT_FOUND", session_id)
                return Delivered(session_id, 404, snapshot.to_details())
        if not response.is_success:
            return classify_stripe_failure(response)
        body = json_or_empty(response)
        if body.get("object") != "checkout.session" or not isinstance(body.get("id"), str):
            return Rejected("Stripe answered without a Checkout Session", response.status_code)
        snapshot = session_snapshot(body)
        return Delivered(snapshot.order_id, response.status_code, snapshot.to_details())

    # --- refund -----------------------------------------------------------------

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = tenant.account("stripe", StripeAccount, command.account)
        form = {
            "payment_intent": payload.payment_id,
            "amount": str(payload.amount_minor),
            "metadata[order_id]": payload.order_id,
        }
        if payload.reason in REFUND_REASONS:
            form["reason"] = payload.reason
        elif payload.reason:
            form["metadata[reason]"] = payload.reason[:MAX_METADATA_VALUE]
        return httpx.Request(
            "POST",
            f"{base}/v1/refunds",
            data=form,
            headers={
                **_headers(account),
                "Idempotency-Key": idempotency_key(command.idempotency_key),
            },
        )

    def classify_refund(self, response: httpx.Response) -> Outcome:
        if not response.is_success:
            return classify_stripe_failure(response)
        body = json_or_empty(response)
        refund_id = body.get("id")
        if body.get("object") != "refund" or not isinstance(refund_id, str):
            return Rejected("Stripe answered without a refund", response.status_code)
        # "pending" (some methods settle later) is accepted too; "failed" is not a refund.
        if body.get("status") in ("failed", "canceled"):
            reason = str(body.get("failure_reason") or body.get("status"))
            return Rejected(f"refund {refund_id} {reason}", response.status_code, reason)
        return Delivered(
            refund_id,
            response.status_code,
            {
                "refund_id": refund_id,
                "status": str(body.get("status") or ""),
                "amount_minor": str(body.get("amount") or ""),
                "payment_intent": str(body.get("payment_intent") or ""),
            },
        )

    # --- test connection ----------------------------------------------------------

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        account = tenant.account("stripe", StripeAccount, label)
        return httpx.Request("GET", f"{base_url.rstrip('/')}/v1/balance", headers=_headers(account))


PROVIDER = Provider(
    name="stripe",
    title="Stripe",
    category=Stripe.category,
    account_model=StripeAccount,
    adapter=Stripe(),
    base_urls={API: "https://api.stripe.com"},
    simulator_paths={API: "/stripe"},
    summary="Payment gateway (global): Checkout Sessions, refunds, signed checkout events",
    docs_url="https://docs.stripe.com/api/checkout/sessions",
    webhooks=Webhooks(
        StripeVerifier(),
        normalize_stripe,
        secret_field="webhook_secret",  # noqa: S106 - a field name
        event_id=event_id,
    ),
)
