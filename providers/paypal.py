"""PayPal: Orders v2 out (create, capture, status, refund), certificate-signed webhooks in.

Auth is OAuth 2.0 client credentials: `POST /v1/oauth2/token` with Basic
client_id:secret gives a Bearer token (about 9 h), cached per account and fetched
again before it expires or when the API answers 401 (`CachedTokenAuth`, with
PayPal's token request; the answer is a plain RFC 6749 one, as Google's is).

PayPal authorizes first: the payer approves the order on PayPal's page
(`payer-action` link), CHECKOUT.ORDER.APPROVED arrives, and the hub captures
(`manual_capture`). The capture's id is the payment id, whichever path reports
it: the capture answer, PAYMENT.CAPTURE.COMPLETED, or a status query.

Idempotency: `PayPal-Request-Id` carries the command's key on create, capture and
refund (PayPal keeps it at least 6 hours); the order's `invoice_id`, derived from
the receipt, is unique per merchant as well.

Test connection: GET of an order that does not exist; its 404 proves the token
exchange and the token (wrong credentials fail at the token endpoint).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

import providers
from core.settings import Settings
from core.tenants import Tenant
from providers.base import Delivered, Outcome, Rejected, classify_failure, json_or_empty
from providers.payments import (
    GatewayAdapter,
    PaymentSnapshot,
    SnapshotStatus,
    UnsupportedOperationError,
)
from providers.paypal_webhooks import (
    CERTS,
    PayPalVerifier,
    event_id,
    event_type,
    minor_units,
    normalize_paypal,
    paypal_value,
)
from providers.spec import API, Provider, Webhooks
from providers.token_auth import TOKEN, AccessToken, CachedTokenAuth, Clock, oauth2_token
from schemas.events import (
    CapturePayment,
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    RefundPayment,
)

PROBE_ORDER_ID = "HUBPROBE0000000000"
REQUEST_ID_MAX = 108  # PayPal-Request-Id: 1-108 characters
INVOICE_ID_MAX = 127
CUSTOM_ID_MAX = 127
# Capture refusals that are the payer's payment failing, not the hub's request.
DECLINED_ISSUES = frozenset({"INSTRUMENT_DECLINED", "TRANSACTION_REFUSED", "PAYER_CANNOT_PAY"})
CAPTURE_STATUS: dict[str, SnapshotStatus] = {
    "COMPLETED": "CAPTURED",
    "DECLINED": "FAILED",
    "FAILED": "FAILED",
}


class PayPalAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr
    # The webhook subscription's id: public, part of every signed webhook message.
    webhook_id: str
    # Where the payer's browser goes after approving / cancelling (an order's own wins).
    return_url: str = ""
    cancel_url: str = ""


class AmountNotAcceptedError(UnsupportedOperationError):
    """An amount PayPal cannot take in its currency (a fraction of a forint): rejected."""


def request_id(key: str) -> str:
    """The command's key as a PayPal-Request-Id (hashed when longer than PayPal takes)."""
    return key if len(key) <= REQUEST_ID_MAX else hashlib.sha256(key.encode()).hexdigest()


def invoice_id_for(receipt: str) -> str:
    """The receipt when it fits PayPal's invoice_id, else a stable hash of it."""
    if 0 < len(receipt) <= INVOICE_ID_MAX and receipt.isprintable():
        return receipt
    return "hub_" + hashlib.sha256(receipt.encode()).hexdigest()[:40]


def _value(amount_minor: int, currency: str) -> str:
    try:
        return paypal_value(amount_minor, currency)
    except ValueError as exc:
        raise AmountNotAcceptedError(str(exc)) from None


class PayPalAuth(CachedTokenAuth):
    """The shared token flow with PayPal's client-credentials token request."""

    def __init__(self, account: PayPalAccount, token_url: str, clock: Clock = time.time) -> None:
        super().__init__(token_url, clock)
        self._client = httpx.BasicAuth(account.client_id, account.client_secret.get_secret_value())

    def new_token_request(self) -> httpx.Request:
        request = httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Accept": "application/json"},
        )
        return next(self._client.auth_flow(request))

    def read_token(self, response: httpx.Response, now: float) -> AccessToken:
        return oauth2_token(response, now)


class PayPalAuths:
    """One token flow per (tenant, client id, token URL), so a token outlives one call."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._auths: dict[tuple[str, str, str], tuple[PayPalAccount, PayPalAuth]] = {}

    def get(self, tenant_id: str, account: PayPalAccount, token_url: str) -> PayPalAuth:
        key = (tenant_id, account.client_id, token_url)
        cached = self._auths.get(key)
        if cached is not None and cached[0] == account:
            return cached[1]
        auth = PayPalAuth(account, token_url, self.clock)
        self._auths[key] = (account, auth)
        return auth


# --- reading PayPal's answers ----------------------------------------------------


def error_of(body: dict[str, object]) -> tuple[str, str | None]:
    """PayPal's {"name", "message", "details": [{"issue", "description"}]} as reason, code."""
    details = body.get("details")
    first = details[0] if isinstance(details, list) and details else {}
    first = first if isinstance(first, dict) else {}
    issue = str(first.get("issue") or "") or None
    reason = str(first.get("description") or body.get("message") or "") or "error"
    return reason, issue or (str(body.get("name") or "") or None)


def payer_url(order: dict[str, object]) -> str:
    links = order.get("links")
    for rel in ("payer-action", "approve"):
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("rel") == rel and link.get("href"):
                return str(link["href"])
    return ""


def first_capture(order: dict[str, Any]) -> dict[str, Any]:
    units = order.get("purchase_units")
    unit = units[0] if isinstance(units, list) and units and isinstance(units[0], dict) else {}
    payments = unit.get("payments")
    captures = payments.get("captures") if isinstance(payments, dict) else None
    found = captures[0] if isinstance(captures, list) and captures else {}
    return found if isinstance(found, dict) else {}


def capture_snapshot(capture: dict[str, Any], order_id: str) -> PaymentSnapshot:
    """A capture's outcome: COMPLETED is a payment, DECLINED/FAILED a failed one."""
    capture_status = str(capture.get("status") or "")
    found = capture.get("amount")
    amount: dict[str, Any] = found if isinstance(found, dict) else {}
    currency = str(amount.get("currency_code") or "")
    try:
        minor = minor_units(amount.get("value"), currency)
    except ValueError:
        minor = 0
    settled = CAPTURE_STATUS.get(capture_status, "PENDING")
    details = capture.get("status_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    return PaymentSnapshot(
        status=settled,
        order_id=order_id,
        payment_id=str(capture.get("id") or ""),
        amount_minor=minor,
        currency=currency,
        method="paypal",
        error_code=str(reason or capture_status) if settled == "FAILED" else "",
    )


def order_snapshot(order: dict[str, Any], order_id: str) -> PaymentSnapshot:
    """What a status or capture answer says about the order, in the hub's words."""
    capture = first_capture(order)
    if capture:
        return capture_snapshot(capture, order_id)
    status = str(order.get("status") or "")
    if status == "APPROVED":
        return PaymentSnapshot("AUTHORIZED", order_id, method="paypal")
    if status == "VOIDED":
        # No capture, so no capture id: the order is the failed payment's one id.
        return PaymentSnapshot("FAILED", order_id, order_id, method="paypal", error_code="VOIDED")
    return PaymentSnapshot("PENDING", order_id, method="paypal")


def _order_id_in(response: httpx.Response) -> str:
    # /v2/checkout/orders/{id} or /v2/checkout/orders/{id}/capture
    parts = response.request.url.path.rstrip("/").split("/")
    return parts[-2] if parts[-1] == "capture" else parts[-1]


class PayPal(GatewayAdapter):
    name = "paypal"
    # GET of an order that does not exist: 404 means the token was accepted.
    probe_ok_statuses = frozenset({200, 404})

    def __init__(self) -> None:
        self._auths = PayPalAuths()

    # --- requests ---

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        notes = payload.notes
        invoice_id = invoice_id_for(payload.receipt)
        context: dict[str, str] = {"user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING"}
        for field, value in (
            ("return_url", payload.return_url or account.return_url),
            ("cancel_url", account.cancel_url or payload.return_url or account.return_url),
        ):
            if value:
                context[field] = value
        unit = {
            "reference_id": invoice_id,
            "invoice_id": invoice_id,
            "custom_id": (notes.get("invoice_id") or notes.get("request_id") or invoice_id)[
                :CUSTOM_ID_MAX
            ],
            "amount": {
                "currency_code": payload.currency.upper(),
                "value": _value(payload.amount_minor, payload.currency),
            },
        }
        body = {
            "intent": "CAPTURE",
            "purchase_units": [unit],
            "payment_source": {"paypal": {"experience_context": context}},
        }
        return httpx.Request(
            "POST",
            f"{base}/v2/checkout/orders",
            json=body,
            headers={"PayPal-Request-Id": request_id(command.idempotency_key)},
        )

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        self._account(tenant, command.account)
        return httpx.Request("GET", f"{base}/v2/checkout/orders/{payload.order_id}")

    def capture(
        self, command: ConnectorCommand, payload: CapturePayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        self._account(tenant, command.account)
        return httpx.Request(
            "POST",
            f"{base}/v2/checkout/orders/{payload.order_id}/capture",
            json={},
            headers={"PayPal-Request-Id": request_id(command.idempotency_key)},
        )

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        self._account(tenant, command.account)
        body: dict[str, Any] = {
            "amount": {
                "currency_code": payload.currency.upper(),
                "value": _value(payload.amount_minor, payload.currency),
            }
        }
        if payload.reason:
            body["note_to_payer"] = payload.reason[:255]
        return httpx.Request(
            "POST",
            f"{base}/v2/payments/captures/{payload.payment_id}/refund",
            json=body,
            headers={"PayPal-Request-Id": request_id(command.idempotency_key)},
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        self._account(tenant, label)
        return httpx.Request("GET", f"{base_url.rstrip('/')}/v2/checkout/orders/{PROBE_ORDER_ID}")

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        token_url = providers.base_url(settings, self.name, TOKEN)
        return self._auths.get(tenant.id, self._account(tenant, label), token_url)

    # --- answers ---

    def classify_order(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code in (200, 201) and isinstance(body.get("id"), str):
            order_id = str(body["id"])
            details = {
                "order_id": order_id,
                "status": str(body.get("status") or ""),
                "payment_url": payer_url(body),
            }
            return Delivered(order_id, response.status_code, details)
        return self._failure(response, body)

    def classify_status(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        order_id = _order_id_in(response)
        if response.status_code == 200 and isinstance(body.get("id"), str):
            snapshot = order_snapshot(body, str(body["id"]))
            return Delivered(snapshot.order_id, 200, snapshot.to_details())
        if response.status_code == 404:
            return Delivered(order_id, 404, PaymentSnapshot("NOT_FOUND", order_id).to_details())
        return self._failure(response, body)

    def classify_capture(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        order_id = _order_id_in(response)
        if response.status_code in (200, 201) and isinstance(body.get("id"), str):
            snapshot = order_snapshot(body, str(body["id"]))
            return Delivered(snapshot.order_id, response.status_code, snapshot.to_details())
        reason, issue = error_of(body)
        if response.status_code == 422 and issue in DECLINED_ISSUES:
            # The payer's funding was refused: a failed payment, not a failed call.
            failed = PaymentSnapshot(
                "FAILED", order_id, order_id, method="paypal", error_code=issue or "",
                error_description=reason,
            )  # fmt: skip
            return Delivered(order_id, 422, failed.to_details())
        if response.status_code == 422 and issue == "ORDER_ALREADY_CAPTURED":
            # Another capture (a redelivered approval) won: its answer and its
            # PAYMENT.CAPTURE.COMPLETED carry the capture id; nothing more to do here.
            captured = PaymentSnapshot("CAPTURED", order_id, method="paypal")
            return Delivered(order_id, 422, captured.to_details())
        return classify_failure(response, reason, issue)

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code in (200, 201) and isinstance(body.get("id"), str):
            refund_id = str(body["id"])
            details = {"refund_id": refund_id, "status": str(body.get("status") or "")}
            return Delivered(refund_id, response.status_code, details)
        return self._failure(response, body)

    @staticmethod
    def _failure(response: httpx.Response, body: dict[str, object]) -> Outcome:
        reason, code = error_of(body)
        if 200 <= response.status_code < 300:
            return Rejected(f"unexpected answer without an id: {reason}", response.status_code)
        return classify_failure(response, reason, code)

    @staticmethod
    def _account(tenant: Tenant, label: str | None) -> PayPalAccount:
        return tenant.account("paypal", PayPalAccount, label)


PROVIDER = Provider(
    name="paypal",
    title="PayPal",
    category=PayPal.category,
    account_model=PayPalAccount,
    adapter=PayPal(),
    base_urls={
        API: "https://api-m.paypal.com",
        TOKEN: "https://api-m.paypal.com/v1/oauth2/token",
        CERTS: "https://api.paypal.com/v1/notifications/certs/",
    },
    simulator_paths={
        API: "/paypal",
        TOKEN: "/paypal/v1/oauth2/token",
        CERTS: "/paypal/v1/notifications/certs/",
    },
    summary="Payment gateway: Orders v2 (approve, then capture), certificate-signed webhooks",
    docs_url="https://developer.paypal.com/docs/api/orders/v2/",
    manual_capture=True,
    # The verifier checks the account's public webhook_id against PayPal's certificate;
    # the ingress needs a secret field to find the account by, the client secret.
    webhooks=Webhooks(
        PayPalVerifier(),
        normalize_paypal,
        secret_field="client_secret",  # noqa: S106 - a field name
        event_type=event_type,
        event_id=event_id,
    ),
)
