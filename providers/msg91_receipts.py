"""MSG91's delivery reports to the hub: how a delivery is trusted, and what it says.

The webhook is set in MSG91's panel (SMS -> Webhook; msg91.com/help/webhooks). The v3
format is used here: `application/json`, one flat report per delivery (providers.md
section 8): `{"requestId", "number", "status", "desc", "date", "senderId", "credit",
...}`, where `requestId` is the Flow answer's `message` (the send's provider_ref). A JSON
array of such reports (the ingress reads it as {"items": [...]}) gives one receipt each.
The v2 format (a form field `data` holding a JSON string) is not read: choose v3 in the
panel.

MSG91 signs nothing: the URL given to MSG91 carries `?token=<the account's
webhook_token>`, compared in constant time (the ingress drops `token` before Kafka).

Status codes: "1" is DELIVERED (the documented sample). Every other code is
unconfirmed: "2" (failed), "9" (NDNC), "16" (rejected), "17" (blocked), "25" and "26"
(rejected) are read as UNDELIVERED with the code as error_code; anything else (such as
"8", submitted to the operator) is SENT, not final, with the provider's word kept.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel

from providers.spec import Delivery, NormalizationError
from schemas.events import DeliveryReceipt, RawWebhook, ReceiptStatus

INDIA = timezone(timedelta(hours=5, minutes=30), "IST")
DELIVERED = "1"
# Unconfirmed (see the module docstring).
UNDELIVERED = frozenset({"2", "9", "16", "17", "25", "26"})
EVENT_TYPE = "delivery_report"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # unconfirmed: the documented sample has no value


class Msg91Verifier:
    """The webhook URL's secret `token`: MSG91 has no signature."""

    # No header: the ingress skips its "missing signature" check and asks verify_delivery.
    signature_header = ""
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        return secret  # the "signature" is the token MSG91 echoes back in the URL

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {}  # MSG91 sends no header: the token is in the URL

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        return False  # body and headers alone can never prove an MSG91 report

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        token = delivery.query.get("token", "")
        if not token or not secret:
            return False
        return hmac.compare_digest(token.encode(), secret.encode())


def _text(report: Mapping[str, Any], field: str) -> str:
    value = report.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a number or a status may arrive as a JSON number
    if not isinstance(value, str) or not value.strip():
        raise NormalizationError(f"msg91 delivery report has no valid {field!r}")
    return value.strip()


def _optional(report: Mapping[str, Any], field: str) -> str:
    value = report.get(field)
    return value.strip() if isinstance(value, str) else ""


def event_type(fields: Mapping[str, Any]) -> str | None:
    return EVENT_TYPE if "requestId" in fields or "items" in fields else None


def event_id(fields: Mapping[str, Any]) -> str | None:
    """One id per report (request, number, status); a batch falls back to the body's hash."""
    try:
        return f"{_text(fields, 'requestId')}:{_text(fields, 'number')}:{_text(fields, 'status')}"
    except NormalizationError:
        return None


def receipt_status(code: str) -> ReceiptStatus:
    if code == DELIVERED:
        return ReceiptStatus.DELIVERED
    if code in UNDELIVERED:
        return ReceiptStatus.UNDELIVERED
    return ReceiptStatus.SENT


def india_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=INDIA)
    except ValueError:
        return None


def _receipt(raw: RawWebhook, report: Mapping[str, Any]) -> DeliveryReceipt:
    request_id = _text(report, "requestId")
    number = _text(report, "number")
    code = _text(report, "status")
    desc = _optional(report, "desc")
    status = receipt_status(code)
    failed = status is ReceiptStatus.UNDELIVERED
    reason = _optional(report, "failedReason") or desc
    return DeliveryReceipt(
        header=raw.header.caused(DeliveryReceipt.EVENT_TYPE, source="normalizer"),
        provider=raw.provider,
        provider_event_id=f"{request_id}:{number}:{code}",
        provider_ref=request_id,
        status=status,
        provider_status=f"{desc} ({code})" if desc else code,
        recipient=number,
        error_code=code if failed else None,
        error_description=(reason or None) if failed else None,
        occurred_at=india_time(_optional(report, "date")),
    )


def normalize_msg91(
    raw: RawWebhook, body: dict[str, Any]
) -> DeliveryReceipt | list[DeliveryReceipt]:
    items = body.get("items")
    if isinstance(items, list):  # a JSON array of reports
        if not all(isinstance(item, dict) for item in items):
            raise NormalizationError("msg91 delivery reports must be JSON objects")
        return [_receipt(raw, item) for item in items]
    return _receipt(raw, body)
