"""Razorpay: the Orders API out, payment webhooks in.

Orders:  POST /v1/orders, HTTP Basic with the key id and key secret.
Test connection: GET /v1/orders?count=1 (Fetch All Orders, one item), with the same auth.

Idempotency is Razorpay's own: `receipt` carries the command's key and
`unique_receipt: true` makes a retried create return the order it already
created instead of a second one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from providers.spec import API, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    PaymentEvent,
    PaymentEventKind,
    RawWebhook,
)


class RazorpayAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    key_secret: SecretStr
    webhook_secret: SecretStr


class Razorpay:
    name = "razorpay"
    category: Category = "payment"
    payload_type = CreatePaymentOrder

    def build_request(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.account("razorpay", RazorpayAccount, command.account)
        body = {
            "amount": payload.amount_minor,
            "currency": payload.currency,
            "receipt": payload.receipt,
            "notes": dict(list(payload.notes.items())[:15]),  # Razorpay allows 15 notes
            "unique_receipt": True,
        }
        return httpx.Request(
            "POST",
            f"{base_url.rstrip('/')}/v1/orders",
            json=body,
            headers=basic_auth(account.key_id, account.key_secret.get_secret_value()),
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """Fetch All Orders, one item: the cheapest read the key pair must authorize."""
        account = tenant.account("razorpay", RazorpayAccount, label)
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}/v1/orders",
            params={"count": "1"},
            headers=basic_auth(account.key_id, account.key_secret.get_secret_value()),
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
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
        raw_error = body.get("error")
        error: dict[str, object] = raw_error if isinstance(raw_error, dict) else {}
        description = str(error.get("description") or response.reason_phrase or "error")
        return classify_failure(response, description, str(error.get("code") or "") or None)


class RazorpayVerifier:
    """X-Razorpay-Signature: hex HMAC-SHA256 of the raw body, keyed with the webhook secret.

    Razorpay sends no timestamp; replays are defeated by de-duplicating on
    X-Razorpay-Event-Id downstream (Razorpay retries one event for 24 h).
    """

    signature_header = "x-razorpay-signature"
    event_id_header: str | None = "x-razorpay-event-id"

    def sign(self, body: bytes, secret: str) -> str:
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {self.signature_header: self.sign(body, secret)}

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = headers.get(self.signature_header, "")
        if not received:
            return False
        return hmac.compare_digest(self.sign(body, secret), received.strip().lower())


# --- Webhooks: payment.* events to the hub's PaymentEvent ---------------------

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
    category=Razorpay.category,
    account_model=RazorpayAccount,
    adapter=Razorpay(),
    base_urls={API: "https://api.razorpay.com"},
    simulator_paths={API: "/razorpay"},
    summary="Payment gateway (India): orders, checkout, payment webhooks",
    docs_url="https://razorpay.com/docs/api/",
    webhooks=Webhooks(RazorpayVerifier(), normalize_razorpay),
)
