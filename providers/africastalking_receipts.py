"""Africa's Talking's delivery reports to the hub: how a delivery is trusted, what it says.

The delivery-report callback URL is set in the dashboard (SMS -> Callback URLs;
docs.africastalking.com/sms/deliveryreports, providers.md section 9). Each report is a
form POST (form encoding unconfirmed) with `id` (the send's messageId, its provider_ref),
`status`, `phoneNumber`, `networkCode`, `failureReason` (Rejected/Failed only) and
`retryCount` (unconfirmed).

Africa's Talking signs nothing: the URL given to it carries `?token=<the account's
webhook_token>`, compared in constant time (the ingress drops `token` before Kafka).

Statuses: Success -> DELIVERED; Failed, Rejected and (seen in the wild) AbsentSubscriber,
Expired -> UNDELIVERED, with failureReason (InsufficientCredit, UserInBlackList,
DeliveryFailure, ...) as error_code; Sent, Submitted, Buffered -> SENT; any other -> SENT
with the word kept. A body without `status` is not a delivery report (the same URL may
be given for incoming messages): ignored.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from providers.spec import Delivery, NormalizationError
from schemas.events import DeliveryReceipt, RawWebhook, ReceiptStatus

EVENT_TYPE = "delivery_report"
STATUSES: Mapping[str, ReceiptStatus] = {
    "Success": ReceiptStatus.DELIVERED,
    "Failed": ReceiptStatus.UNDELIVERED,
    "Rejected": ReceiptStatus.UNDELIVERED,
    "AbsentSubscriber": ReceiptStatus.UNDELIVERED,
    "Expired": ReceiptStatus.UNDELIVERED,
    "Sent": ReceiptStatus.SENT,
    "Submitted": ReceiptStatus.SENT,
    "Buffered": ReceiptStatus.SENT,
}


class AfricasTalkingVerifier:
    """The callback URL's secret `token`: Africa's Talking has no signature."""

    # No header: the ingress skips its "missing signature" check and asks verify_delivery.
    signature_header = ""
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        return secret  # the "signature" is the token echoed back in the URL

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {}  # no header: the token is in the URL

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        return False  # body and headers alone can never prove a report

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        token = delivery.query.get("token", "")
        if not token or not secret:
            return False
        return hmac.compare_digest(token.encode(), secret.encode())


def _field(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def event_type(fields: Mapping[str, Any]) -> str | None:
    return EVENT_TYPE if "status" in fields else None


def event_id(fields: Mapping[str, Any]) -> str | None:
    message_id, status = _field(fields, "id"), _field(fields, "status")
    return f"{message_id}:{status}" if message_id and status else None


def receipt_status(status: str) -> ReceiptStatus:
    return STATUSES.get(status, ReceiptStatus.SENT)


def normalize_africastalking(raw: RawWebhook, fields: dict[str, Any]) -> DeliveryReceipt | None:
    status = _field(fields, "status")
    if not status:
        return None  # not a delivery report
    message_id = _field(fields, "id")
    if not message_id:
        raise NormalizationError("africastalking delivery report has no 'id'")
    mapped = receipt_status(status)
    failed = mapped is ReceiptStatus.UNDELIVERED
    reason = _field(fields, "failureReason")
    return DeliveryReceipt(
        header=raw.header.caused(DeliveryReceipt.EVENT_TYPE, source="normalizer"),
        provider=raw.provider,
        provider_event_id=f"{message_id}:{status}",
        provider_ref=message_id,
        status=mapped,
        provider_status=status,
        recipient=_field(fields, "phoneNumber") or None,
        error_code=(reason or status) if failed else None,
        error_description=f"{status}: {reason}" if failed and reason else None,
    )
