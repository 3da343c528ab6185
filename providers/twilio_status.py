"""Twilio's status callbacks (a message's delivery receipts): how one is trusted, what it says.

Twilio posts to the `StatusCallback` URL a message was created with, form-encoded,
once per status change after the initial one (twilio.com/docs/messaging/guides/
outbound-message-status-in-status-callbacks): `MessageSid` (and its older twin
`SmsSid`), `MessageStatus` (`SmsStatus`), `AccountSid`, `From`, `To`, `ApiVersion`,
`ErrorCode` for a failed or undelivered message, `RawDlrDoneDate` (the carrier's
YYMMDDhhmm, no time zone) on some delivered/undelivered ones.

Signature (twilio.com/docs/usage/security, twilio-python's `RequestValidator`):
`X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + name+value of each POST
parameter, sorted by name)), where the URL is the one Twilio called, query string
included. No timestamp: the ingress de-duplicates on `MessageSid:MessageStatus`.
Like the SDK, the URL is tried with and without its port (443/80), because Twilio
is inconsistent about it. A URL rewritten on the way in (a TLS-terminating proxy
that changes scheme or host) no longer matches: the ingress must see the public URL.
Not supported: Twilio's SharedKey signing (`X-Twilio-Webhooks-Signature-Settings`
naming another algorithm, a secret other than the auth token) and JSON bodies
(`bodySHA256`); both are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel

from providers.spec import Delivery, NormalizationError
from schemas.events import DeliveryReceipt, RawWebhook, ReceiptStatus

SIGNATURE_HEADER = "x-twilio-signature"
SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
HMAC_SHA1 = "HMAC_SHA1"

# Twilio's MessageStatus values (the Message resource's status) in the hub's words;
# the others (queued, accepted, scheduled, sending, sent, ...) are SENT: not final.
FINAL_FAILURES = frozenset({"undelivered", "failed", "canceled"})
STATUSES = {
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.READ,
    **dict.fromkeys(FINAL_FAILURES, ReceiptStatus.UNDELIVERED),
}
# Inbound messages' statuses: a message to the school, never a receipt of one it sent.
INBOUND = frozenset({"receiving", "received"})

# The commonest delivery failures, as Twilio's error dictionary names them
# (twilio.com/docs/api/errors/<code>).
ERROR_DESCRIPTIONS = {
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "30008": "Unknown error",
    "30009": "Missing segment",
    "30010": "Message price exceeds max price",
}


def signature(
    url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str
) -> str:
    """The X-Twilio-Signature Twilio sends for a POST of `params` to `url`.

    Each name once, in code-point order, followed by each of its distinct values in
    order (a repeated parameter, as twilio-python's RequestValidator reads it)."""
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + v for name in sorted(values) for v in sorted(values[name]))
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> tuple[str, str]:
    """The URL without its port and with the scheme's default one (twilio-python does both)."""
    try:
        parts = urlsplit(url)  # rebuilt from the Host header, which the sender chooses
        port = parts.port
    except ValueError:
        return url, url  # unparseable, or an unusable port: as it is, which will not match
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host.rsplit(":", 1)[0] if port is not None else host
    default = 443 if parts.scheme == "https" else 80
    without_port = urlunsplit(parts._replace(netloc=userinfo + bare))
    with_port = urlunsplit(parts._replace(netloc=f"{userinfo}{bare}:{port or default}"))
    return without_port, with_port


def _algorithm(settings: str) -> str:
    for part in settings.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return HMAC_SHA1


class TwilioVerifier:
    """X-Twilio-Signature over the URL Twilio called and the form it posted."""

    signature_header = SIGNATURE_HEADER
    # Twilio sends no delivery id header the hub relies on: see `event_id`.
    event_id_header: str | None = None
    # The URL is signed too: body and headers alone never verify (the declaration test).
    signs_url = True

    def sign(self, body: bytes, secret: str) -> str:
        raise NotImplementedError("Twilio signs the URL too: use twilio_status.signature")

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        raise NotImplementedError("Twilio signs the URL too: use twilio_status.signature")

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        return False  # without the URL a Twilio signature cannot be checked

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        received = delivery.headers.get(SIGNATURE_HEADER, "").strip()
        if not received or not secret or delivery.method != "POST":
            return False
        if _algorithm(delivery.headers.get(SETTINGS_HEADER, "")) != HMAC_SHA1:
            return False  # a SharedKey signature: not keyed with the auth token
        try:
            params = parse_qsl(delivery.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return False
        expected = [signature(u, params, secret) for u in url_variants(delivery.url)]
        # Both candidates compared, each in constant time.
        matches = [hmac.compare_digest(e.encode(), received.encode()) for e in expected]
        return any(matches)


# --- what the ingress records about a delivery --------------------------------------


def _field(fields: Mapping[str, Any], *names: str) -> str:
    """The first non-empty of these fields (MessageSid, or the older SmsSid)."""
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def event_type(fields: Mapping[str, Any]) -> str | None:
    """The message's new status ("sent", "delivered", ...), as Twilio spells it (lower case)."""
    return _field(fields, "MessageStatus", "SmsStatus").lower() or None


def event_id(fields: Mapping[str, Any]) -> str | None:
    """One id per status of one message: a resent callback is a duplicate."""
    sid, status = _field(fields, "MessageSid", "SmsSid"), event_type(fields)
    return f"{sid}:{status}" if sid and status else None


# --- the normalizer -----------------------------------------------------------------


def normalize_twilio(raw: RawWebhook, fields: dict[str, Any]) -> DeliveryReceipt | None:
    sid = _field(fields, "MessageSid", "SmsSid")
    status = event_type(fields) or ""
    if not sid or not status:
        raise NormalizationError("twilio status callback has no MessageSid or MessageStatus")
    if status in INBOUND:
        return None  # an incoming message posted to the receipt URL: not a receipt
    receipt_status = STATUSES.get(status, ReceiptStatus.SENT)
    code = _field(fields, "ErrorCode") or None
    failed = receipt_status is ReceiptStatus.UNDELIVERED
    return DeliveryReceipt(
        header=raw.header.caused(DeliveryReceipt.EVENT_TYPE, source="normalizer"),
        provider=raw.provider,
        provider_event_id=f"{sid}:{status}",
        provider_ref=sid,  # the sid the create answered with (classify's provider_ref)
        status=receipt_status,
        provider_status=status,
        recipient=_field(fields, "To") or None,
        error_code=code if failed else None,
        error_description=ERROR_DESCRIPTIONS.get(code or "") if failed else None,
    )
