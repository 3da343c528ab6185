"""Razorpay: the Orders, Payments and Refunds APIs out, payment webhooks in.

Every call uses HTTP Basic with the key id and key secret.

- Create:  POST /v1/orders. Idempotency is Razorpay's own: `receipt` carries the
  command's receipt and `unique_receipt: true` makes a retried create return the
  order it already created instead of a second one.
- Status:  GET /v1/orders/{order_id}/payments, every payment attempted on the order.
- Refund:  POST /v1/payments/{payment_id}/refund with `X-Refund-Idempotency` (Razorpay's
  refund idempotency header: at least 10 characters of [A-Za-z0-9_-]) and a `receipt`,
  both derived from the command's key.
- Test connection: GET /v1/orders?count=1 (Fetch All Orders, one item).

Razorpay returns no checkout URL: its Checkout.js opens with the order id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.tenants import Tenant
from providers.base import (
    Delivered,
    Outcome,
    Rejected,
    RetryLater,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from providers.payments import GatewayAdapter, PaymentSnapshot, SnapshotStatus
from providers.spec import API, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    PaymentEvent,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)

MAX_NOTES = 15
# Razorpay's idempotency keys: at least 10 of [A-Za-z0-9_-]; receipts: at most 40 chars.
REFUND_KEY = re.compile(r"^[A-Za-z0-9_-]{10,40}$")
# Razorpay answers "The id provided does not exist" (400) for an order it does not know.
UNKNOWN_ID = "The id provided does not exist"


class RazorpayAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    key_secret: SecretStr
    webhook_secret: SecretStr


def refund_key_for(idempotency_key: str) -> str:
    """The command's key when Razorpay accepts it (as idempotency key and receipt), else a
    stable hash of it: a retry of the same command names the same refund."""
    if REFUND_KEY.match(idempotency_key):
        return idempotency_key
    return "hub_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:36]


def _auth(tenant: Tenant, label: str | None) -> dict[str, str]:
    account = tenant.account("razorpay", RazorpayAccount, label)
    return basic_auth(account.key_id, account.key_secret.get_secret_value())


def _error(response: httpx.Response) -> tuple[str, str | None]:
    raw_error = json_or_empty(response).get("error")
    error: dict[str, object] = raw_error if isinstance(raw_error, dict) else {}
    description = str(error.get("description") or response.reason_phrase or "error")
    return description, str(error.get("code") or "") or None


def _failure(response: httpx.Response) -> Outcome:
    return classify_failure(response, *_error(response))


def _order_of(response: httpx.Response) -> str:
    """The order id a status query asked about: /v1/orders/{order_id}/payments."""
    parts = response.request.url.path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _latest(payments: list[dict[str, Any]]) -> dict[str, Any]:
    def created(p: dict[str, Any]) -> int:
        value = p.get("created_at")
        return value if isinstance(value, int) else 0

    return max(payments, key=created)


def _snapshot(order_id: str, payments: list[dict[str, Any]]) -> PaymentSnapshot:
    """The captured payment if any; else an authorized one (its capture is coming);
    else the latest failed one; else nothing has happened yet."""
    by_status: dict[str, list[dict[str, Any]]] = {}
    for payment in payments:
        by_status.setdefault(str(payment.get("status")), []).append(payment)
    # A refunded payment was captured first: the order was paid.
    captured = by_status.get("captured", []) + by_status.get("refunded", [])
    if captured:
        return _payment_snapshot("CAPTURED", order_id, _latest(captured))
    if by_status.get("authorized"):
        return _payment_snapshot("AUTHORIZED", order_id, _latest(by_status["authorized"]))
    if by_status.get("failed"):
        return _payment_snapshot("FAILED", order_id, _latest(by_status["failed"]))
    return PaymentSnapshot("PENDING", order_id)


def _payment_snapshot(
    status: SnapshotStatus, order_id: str, entity: dict[str, Any]
) -> PaymentSnapshot:
    amount = entity.get("amount")
    if not isinstance(entity.get("id"), str) or not isinstance(amount, int):
        raise NormalizationError("payment entity without id or amount")
    failed = status == "FAILED"
    return PaymentSnapshot(
        status=status,
        order_id=order_id,
        payment_id=str(entity["id"]),
        amount_minor=amount,  # paise already
        currency=str(entity.get("currency") or ""),
        method=str(entity.get("method") or ""),
        error_code=str(entity.get("error_code") or "") if failed else "",
        error_description=str(entity.get("error_description") or "") if failed else "",
    )


class Razorpay(GatewayAdapter):
    name = "razorpay"
    payload_type = (CreatePaymentOrder, FetchPaymentStatus, RefundPayment)

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        body = {
            "amount": payload.amount_minor,
            "currency": payload.currency,
            "receipt": payload.receipt,
            "notes": dict(list(payload.notes.items())[:MAX_NOTES]),  # Razorpay allows 15
            "unique_receipt": True,
        }
        return httpx.Request(
            "POST", f"{base}/v1/orders", json=body, headers=_auth(tenant, command.account)
        )

    def classify_order(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code == 200 and isinstance(body.get("id"), str):
            order_id = str(body["id"])
            return Delivered(
                order_id,
                200,
                {
                    "order_id": order_id,
                    "receipt": str(body.get("receipt") or ""),
                    "status": str(body.get("status") or ""),
                    "amount": str(body.get("amount") or ""),
                },
            )
        return _failure(response)

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        return httpx.Request(
            "GET",
            f"{base}/v1/orders/{payload.order_id}/payments",
            headers=_auth(tenant, command.account),
        )

    def classify_status(self, response: httpx.Response) -> Outcome:
        order_id = _order_of(response)
        if response.status_code == 400 and _error(response)[0] == UNKNOWN_ID:
            return Delivered(None, 400, PaymentSnapshot("NOT_FOUND", order_id).to_details())
        body = json_or_empty(response)
        items = body.get("items")
        if response.status_code != 200 or not isinstance(items, list):
            return _failure(response)
        if not all(isinstance(p, dict) for p in items):
            return Rejected("razorpay payments collection with a non-object item", 200)
        try:
            snapshot = _snapshot(order_id, items)
        except NormalizationError as exc:
            return Rejected(str(exc), 200)
        return Delivered(snapshot.payment_id or None, 200, snapshot.to_details())

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        key = refund_key_for(command.idempotency_key)
        notes = {"order_id": payload.order_id}
        if payload.reason:
            notes["reason"] = payload.reason[:256]  # Razorpay's limit for a note's value
        return httpx.Request(
            "POST",
            f"{base}/v1/payments/{payload.payment_id}/refund",
            json={"amount": payload.amount_minor, "receipt": key, "notes": notes},
            headers={**_auth(tenant, command.account), "X-Refund-Idempotency": key},
        )

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        refund_id = body.get("id")
        if response.status_code == 200 and isinstance(refund_id, str) and refund_id:
            return Delivered(
                refund_id,
                200,
                {
                    "refund_id": refund_id,
                    "refund_status": str(body.get("status") or ""),
                    "payment_id": str(body.get("payment_id") or ""),
                    "amount": str(body.get("amount") or ""),
                },
            )
        if response.status_code == 409:
            # Razorpay: the same idempotency key while the first request is still
            # being processed; retrying later answers that refund.
            return RetryLater(_error(response)[0], 409, _error(response)[1])
        return _failure(response)

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """Fetch All Orders, one item: the cheapest read the key pair must authorize."""
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}/v1/orders",
            params={"count": "1"},
            headers=_auth(tenant, label),
        )


class RazorpayVerifier:
    """X-Razorpay-Signature: hex HMAC-SHA256 of the raw body, keyed with the webhook secret.

    Razorpay sends no timestamp, and X-Razorpay-Event-Id is outside the signature: a
    captured body replayed under a new id would verify. So the dedup key is derived
    from the signed body (`razorpay_event_id`); the header is kept as information only.
    """

    signature_header = "x-razorpay-signature"
    event_id_header: str | None = "x-razorpay-event-id"  # unsigned: never the dedup key

    def sign(self, body: bytes, secret: str) -> str:
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {self.signature_header: self.sign(body, secret)}

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = headers.get(self.signature_header, "").strip().lower()
        # compare_digest takes ASCII str only; a header's Latin-1 bytes can be anything.
        if not received or not received.isascii():
            return False
        return hmac.compare_digest(self.sign(body, secret), received)


# --- Webhooks: payment.* events to the hub's PaymentEvent ---------------------


def razorpay_event_id(body: Mapping[str, Any]) -> str | None:
    """`<event>:<entity ids>:<created_at>`, all from the signed body, e.g.
    `payment.captured:pay_X:1767225600`.

    Razorpay's retry of an event resends that event (same name, same entities, the
    event's own `created_at`), so it gets this id again even if re-serialised; a
    replay under a new X-Razorpay-Event-Id gets it too, because nothing here is
    unsigned. Two different events differ in name or entity (a payment is captured
    once; a new attempt is a new pay_ id). A body without these fields returns None:
    the ingress falls back to the body's hash, which is signed as well.
    """
    event, created, payload = body.get("event"), body.get("created_at"), body.get("payload")
    if not isinstance(event, str) or not isinstance(created, int) or not isinstance(payload, dict):
        return None
    contains = body.get("contains")
    names = contains if isinstance(contains, list) else sorted(payload)
    ids = []
    for name in names:
        part = payload.get(name) if isinstance(name, str) else None
        entity = part.get("entity") if isinstance(part, dict) else None
        entity_id = entity.get("id") if isinstance(entity, dict) else None
        if isinstance(entity_id, str) and entity_id:
            ids.append(entity_id)
    return f"{event}:{'/'.join(ids)}:{created}" if ids else None


_RAZORPAY_KINDS = {
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.captured": PaymentEventKind.CAPTURED,
    "payment.failed": PaymentEventKind.FAILED,
}


def _require(entity: dict[str, Any], field: str, kind: type) -> Any:
    value = entity.get(field)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise NormalizationError(f"payment entity has no valid {field!r}")
    return value


def _optional_str(entity: dict[str, Any], field: str) -> str | None:
    value = entity.get(field)
    return value if isinstance(value, str) and value else None


def normalize_razorpay(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | None:
    kind = _RAZORPAY_KINDS.get(str(body.get("event")))
    if kind is None:
        return None
    try:
        entity = body["payload"]["payment"]["entity"]
    except (KeyError, TypeError):
        raise NormalizationError(f"{body.get('event')} without payload.payment.entity") from None
    if not isinstance(entity, dict):
        raise NormalizationError("payload.payment.entity is not an object")
    created = entity.get("created_at")
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=_require(entity, "id", str),
        order_id=_require(entity, "order_id", str),
        amount_minor=_require(entity, "amount", int),
        currency=_require(entity, "currency", str),
        method=_optional_str(entity, "method"),
        error_code=_optional_str(entity, "error_code"),
        error_description=_optional_str(entity, "error_description"),
        provider_created_at=(
            datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
        ),
    )


PROVIDER = Provider(
    name="razorpay",
    title="Razorpay",
    category="payment",
    account_model=RazorpayAccount,
    adapter=Razorpay(),
    base_urls={API: "https://api.razorpay.com"},
    simulator_paths={API: "/razorpay"},
    summary="Payment gateway (India): orders, status, refunds, checkout, payment webhooks",
    docs_url="https://razorpay.com/docs/api/",
    webhooks=Webhooks(
        RazorpayVerifier(),
        normalize_razorpay,
        event_id=razorpay_event_id,
        # A payment event is a few KB (notes are capped at 15 keys of 256 chars).
        max_body_bytes=64 * 1024,
    ),
)
