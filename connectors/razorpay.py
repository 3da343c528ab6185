"""Razorpay Orders API: POST /v1/orders, HTTP Basic with the key id and key secret.

Idempotency is Razorpay's own: `receipt` carries the command's key and
`unique_receipt: true` makes a retried create return the order it already
created instead of a second one.
"""

from __future__ import annotations

import httpx

from connectors.base import (
    Category,
    Delivered,
    MissingCredentialsError,
    Outcome,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from core.settings import Settings
from core.tenants import Tenant
from schemas.events import ConnectorCommand, CreatePaymentOrder


class Razorpay:
    name = "razorpay"
    category: Category = "payment"
    payload_type = CreatePaymentOrder

    def build_request(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.razorpay
        if account is None:
            raise MissingCredentialsError(f"tenant {tenant.id!r} has no Razorpay account")
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

    def auth(self, tenant: Tenant, settings: Settings) -> httpx.Auth | None:
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
