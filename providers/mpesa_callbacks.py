"""M-Pesa's callbacks to the hub: how a delivery is trusted, and what it means.

M-Pesa signs nothing. A delivery is trusted when both hold:

- its URL carries `?token=<the account's callback_token>` (the hub put the token
  in every CallBackURL / ConfirmationURL it gave Safaricom; compared in constant time);
- it comes from one of the account's `allowed_ips` (Safaricom's published callback
  addresses by default). `Delivery.remote_addr` is the socket's peer: an ingress
  behind a proxy must be run so that it is the client's (uvicorn --proxy-headers).

The rest is the hub's own: the CheckoutRequestID must be one the hub issued (the
order matcher), the amount the one pushed (the ledger).

Three kinds of delivery reach the same route:

- STK callbacks `{"Body": {"stkCallback": {...}}}` -> CAPTURED / FAILED, keyed by
  CheckoutRequestID (the create's provider_ref) for both order_id and payment_id, so
  a status query reporting the same payment is de-duplicated by the ledger; the
  MpesaReceiptNumber travels in `method` as "mpesa:<receipt>".
- C2B (paybill) `?kind=confirmation` -> CAPTURED with order_id "c2b:<BillRefNumber>"
  (the admission number the parent typed), payment_id TransID.
- C2B `?kind=validation` (only if Safaricom enabled external validation) and
  reversal results `?kind=reversal`: acknowledged, nothing recorded.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from providers.spec import Delivery, NormalizationError
from schemas.events import PaymentEvent, PaymentEventKind, RawWebhook

# Safaricom's published callback source addresses (Daraja "IP whitelisting").
SAFARICOM_CALLBACK_IPS: tuple[str, ...] = (
    "196.201.214.200",
    "196.201.214.206",
    "196.201.213.114",
    "196.201.214.207",
    "196.201.214.208",
    "196.201.213.44",
    "196.201.212.127",
    "196.201.212.138",
    "196.201.212.129",
    "196.201.212.136",
    "196.201.212.74",
    "196.201.212.69",
)
NAIROBI = timezone(timedelta(hours=3), "EAT")  # no DST: a fixed offset needs no tzdata
CURRENCY = "KES"
STK = "stk_callback"
C2B_PREFIX = "c2b:"
ACKNOWLEDGEMENT: Mapping[str, Any] = {"ResultCode": 0, "ResultDesc": "Accepted"}


class MpesaVerifier:
    """The callback token in the query, and the source address in the allow-list."""

    # No header: the ingress skips its "missing signature" check and asks verify_delivery.
    signature_header = ""
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        return secret  # the "signature" is the token M-Pesa echoes back in the URL

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {}  # M-Pesa sends no header: the token is in the URL

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        return False  # body and headers alone can never prove an M-Pesa callback

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        token = delivery.query.get("token", "")
        if not token or not secret:
            return False
        if not hmac.compare_digest(token.encode(), secret.encode()):
            return False
        return source_allowed(delivery.remote_addr, getattr(account, "allowed_ips", ""))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks_of(allowed: str) -> list[Network]:
    """'196.201.214.200/32, 127.0.0.1' as networks (ValueError for one that is not)."""
    return [ipaddress.ip_network(n.strip(), strict=False) for n in allowed.split(",") if n.strip()]


def source_allowed(remote_addr: str | None, allowed: Any) -> bool:
    """Is the peer in one of the account's networks?"""
    if not remote_addr or not isinstance(allowed, str):
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
        networks = networks_of(allowed)
    except ValueError:
        return False  # an unusable allow-list admits nobody
    return any(address in network for network in networks)


# --- what the ingress records about a delivery ------------------------------------


def event_type(fields: Mapping[str, Any]) -> str | None:
    """stk_callback, c2b_confirmation, c2b_validation, reversal (from the URL's `kind`)."""
    if "Body" in fields:
        return STK
    kind = fields.get("kind")
    if kind in ("confirmation", "validation"):
        return f"c2b_{kind}"
    return kind if kind == "reversal" else None


def event_id(fields: Mapping[str, Any]) -> str | None:
    """One id per outcome of one payment: a resent callback is a duplicate, a C2B
    validation is not mistaken for the confirmation that follows it."""
    if "Body" in fields:
        callback = _stk_callback(fields)
        if callback is None:
            return None
        return f"{callback.get('CheckoutRequestID')}:{callback.get('ResultCode')}"
    trans_id = fields.get("TransID")
    if isinstance(trans_id, str) and trans_id:
        return f"{trans_id}:{fields.get('kind', '')}"
    return None


def acknowledge(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    return ACKNOWLEDGEMENT


# --- the normalizer -----------------------------------------------------------------


def _stk_callback(body: Mapping[str, Any]) -> dict[str, Any] | None:
    outer = body.get("Body")
    callback = outer.get("stkCallback") if isinstance(outer, dict) else None
    return callback if isinstance(callback, dict) else None


def _text(entity: Mapping[str, Any], field: str) -> str:
    value = entity.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # TransactionDate and PhoneNumber arrive as numbers
    if not isinstance(value, str) or not value.strip():
        raise NormalizationError(f"mpesa callback has no valid {field!r}")
    return value.strip()


def _result_code(callback: Mapping[str, Any]) -> int:
    value = callback.get("ResultCode")  # a number in callbacks, a string in queries
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise NormalizationError("mpesa STK callback has no valid 'ResultCode'")


def minor_units(value: Any, field: str) -> int:
    """Shillings (1.0, "10.00") to cents; more than 2 decimals is not money."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NormalizationError(f"mpesa callback has no valid {field!r}")
    try:
        minor = Decimal(str(value)) * 100
    except InvalidOperation:
        raise NormalizationError(f"{field} {value!r} is not a number") from None
    if not minor.is_finite() or minor != minor.to_integral_value() or minor < 0:
        raise NormalizationError(f"{field} {value!r} is not an amount in shillings")
    return int(minor)


def nairobi_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    except ValueError:
        return None


def _metadata(callback: Mapping[str, Any]) -> dict[str, Any]:
    meta = callback.get("CallbackMetadata")
    items = meta.get("Item") if isinstance(meta, dict) else None
    if not isinstance(items, list):
        raise NormalizationError("a successful mpesa STK callback has no CallbackMetadata")
    # A name -> value list; Balance may come without a Value.
    return {i["Name"]: i.get("Value") for i in items if isinstance(i, dict) and "Name" in i}


def _stk_event(raw: RawWebhook, callback: Mapping[str, Any]) -> PaymentEvent:
    checkout_id = _text(callback, "CheckoutRequestID")
    code = _result_code(callback)
    kind = PaymentEventKind.CAPTURED if code == 0 else PaymentEventKind.FAILED
    common: dict[str, Any] = {
        "header": raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        "provider": raw.provider,
        "provider_event_id": raw.provider_event_id,
        "kind": kind,
        "payment_id": checkout_id,
        "order_id": checkout_id,
        "currency": CURRENCY,
    }
    if kind is PaymentEventKind.FAILED:
        description = callback.get("ResultDesc")
        return PaymentEvent(
            **common,
            amount_minor=0,  # a failed push names no amount
            error_code=str(code),
            error_description=description if isinstance(description, str) else None,
        )
    meta = _metadata(callback)
    return PaymentEvent(
        **common,
        amount_minor=minor_units(meta.get("Amount"), "Amount"),
        method=f"mpesa:{_text(meta, 'MpesaReceiptNumber')}",
        gateway_reference=_text(meta, "MpesaReceiptNumber"),
        provider_created_at=nairobi_time(str(meta.get("TransactionDate", ""))),
    )


def _c2b_event(raw: RawWebhook, body: Mapping[str, Any]) -> PaymentEvent:
    trans_id = _text(body, "TransID")
    kind = PaymentEventKind.CAPTURED
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=trans_id,
        # The reconciler matches "c2b:<admission no>" to that student's open invoice.
        order_id=C2B_PREFIX + _text(body, "BillRefNumber"),
        amount_minor=minor_units(body.get("TransAmount"), "TransAmount"),
        currency=CURRENCY,
        method=f"mpesa:{trans_id}",
        gateway_reference=trans_id,
        provider_created_at=nairobi_time(str(body.get("TransTime", ""))),
    )


def normalize_mpesa(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | None:
    if "Body" in body:
        callback = _stk_callback(body)
        if callback is None:
            raise NormalizationError("mpesa callback has no Body.stkCallback object")
        return _stk_event(raw, callback)
    kind = raw.provider_event_type
    if kind == "c2b_confirmation":
        return _c2b_event(raw, body)
    if kind in ("c2b_validation", "reversal"):
        return None  # acknowledged; the confirmation (or nothing) follows
    raise NormalizationError(f"mpesa delivery of unknown kind {kind!r}")
