"""Paytm's payment callback: the form POST to the order's callbackUrl, verified and normalized.

After checkout Paytm makes the payer's browser POST an HTML form (UPPERCASE fields:
ORDERID, MID, TXNID, TXNAMOUNT, STATUS, RESPCODE, RESPMSG, ..., CHECKSUMHASH) to the
callbackUrl the order was initiated with. CHECKSUMHASH is Paytm's checksum of the
other fields under the merchant key: the browser relays the form but cannot forge it.
It carries no timestamp, so a replayed callback verifies: the ingress de-duplicates
it by its event id (ORDERID:TXNID:STATUS), and the ledger by payment id and kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel

from providers.payments import FollowUp
from providers.paytm_checksum import CHECKSUM_FIELD, generate_signature, verify_signature
from providers.spec import Delivery, NormalizationError
from schemas.events import PaymentEvent, PaymentEventKind, RawWebhook

# TXNDATE is Paytm's local time (IST), without an offset: "2024-01-15 12:30:45.0".
IST = timezone(timedelta(hours=5, minutes=30))
TXNDATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")

_KINDS = {"TXN_SUCCESS": PaymentEventKind.CAPTURED, "TXN_FAILURE": PaymentEventKind.FAILED}


def form_fields(body: bytes) -> dict[str, str] | None:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def signed_form(fields: Mapping[str, str], key: str) -> bytes:
    """A callback body as Paytm posts it: the fields and their CHECKSUMHASH (tests, simulator)."""
    plain = {k: v for k, v in fields.items() if k != CHECKSUM_FIELD}
    return urlencode({**plain, CHECKSUM_FIELD: generate_signature(plain, key)}).encode()


class PaytmVerifier:
    """CHECKSUMHASH, inside the form body, over every other field of it.

    There is no signature header (`signature_header` is empty, so the ingress leaves
    the "missing signature" verdict to this verifier) and no event id header.
    """

    signature_header = ""
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        """The CHECKSUMHASH Paytm would put into the form `body` (its other fields)."""
        fields = form_fields(body) or {}
        return generate_signature({k: v for k, v in fields.items() if k != CHECKSUM_FIELD}, secret)

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {}  # Paytm signs inside the body: see signed_form

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        fields = form_fields(body)
        if not fields or not fields.get(CHECKSUM_FIELD):
            return False
        checksum = fields.pop(CHECKSUM_FIELD)
        return verify_signature(fields, secret, checksum)

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        # The MID must be the account's too: a merchant key signs for its MID only.
        fields = form_fields(delivery.body) or {}
        if fields.get("MID") != getattr(account, "mid", None):
            return False
        return self.verify(delivery.body, delivery.headers, secret)


def callback_event_id(body: Mapping[str, Any]) -> str | None:
    """One id per payment outcome: a resent (or replayed) callback is the same delivery."""
    parts = [body.get(k) for k in ("ORDERID", "TXNID", "STATUS")]
    if not all(isinstance(p, str) and p for p in parts):
        return None
    return ":".join(str(p) for p in parts)


def callback_event_type(body: Mapping[str, Any]) -> str | None:
    status = body.get("STATUS")
    return status if isinstance(status, str) and status else None


def minor_units(value: Any, field: str) -> int:
    """Paytm's rupee text ("1500.50") in paise; NormalizationError when it is no amount."""
    if not isinstance(value, str) or not value.strip():
        raise NormalizationError(f"paytm callback has no valid {field!r}")
    try:
        minor = Decimal(value.strip()) * 100
    except InvalidOperation:
        raise NormalizationError(f"{field} {value!r} is not a number") from None
    if not minor.is_finite() or minor != minor.to_integral_value() or minor < 0:
        raise NormalizationError(f"{field} {value!r} is no amount in rupees and paise")
    return int(minor)


def _required(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"paytm callback has no {name}")
    return value


def _optional(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


def _txn_date(value: str | None) -> datetime | None:
    for fmt in TXNDATE_FORMATS:
        try:
            return datetime.strptime(value or "", fmt).replace(tzinfo=IST)
        except ValueError:
            continue
    return None


def normalize_paytm(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | FollowUp | None:
    status = body.get("STATUS")
    if status == "PENDING":
        # The bank has not answered yet; Paytm's own advice is to ask /v3/order/status.
        return FollowUp("fetch_status", _required(body, "ORDERID"), reason="pending")
    kind = _KINDS.get(str(status))
    if kind is None:
        if not status:
            raise NormalizationError("paytm callback has no STATUS")
        return None  # a status the hub does not act on
    failed = kind is PaymentEventKind.FAILED
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=_required(body, "TXNID"),
        order_id=_required(body, "ORDERID"),
        amount_minor=minor_units(body.get("TXNAMOUNT"), "TXNAMOUNT"),
        currency=_optional(body, "CURRENCY") or "INR",  # Paytm PG settles in rupees only
        method=_optional(body, "PAYMENTMODE"),
        error_code=_optional(body, "RESPCODE") if failed else None,
        error_description=_optional(body, "RESPMSG") if failed else None,
        provider_created_at=_txn_date(_optional(body, "TXNDATE")),
    )
