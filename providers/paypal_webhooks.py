"""PayPal's webhooks: the certificate signature scheme, and events to PaymentEvents.

PayPal signs each transmission with an RSA key whose certificate it publishes at
`paypal-cert-url`. The signed message is

    f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(raw body)}"

(the CRC as an unsigned decimal; `webhook_id` is the id of the subscription, a
public field of the account), and `paypal-transmission-sig` is its base64 RSA
PKCS#1 v1.5 SHA-256 signature (`paypal-auth-algo: SHA256withRSA`).

The certificate URL comes from the request, so it is the one thing an attacker
chooses: it is fetched only when it is an https URL under PayPal's certificate
path on PayPal's own API hosts, or under the `paypal.certs` base URL the
operator configured (HUB_PROVIDER_BASE_URLS, which `hub run` points at the local
simulator). A tenant cannot widen that list: it is not an account field. Trust
in the certificate comes from where it was fetched (PayPal's host, over TLS); its
chain is not walked, its validity dates are checked.

Certificates are fetched once (short timeout: the ingress verifies inside the
request) and kept in a small bounded cache; a failed fetch is remembered for a
minute so a flood of forged deliveries cannot turn into a flood of fetches.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel

import providers
from core.settings import get_settings
from providers.payments import FollowUp
from providers.spec import Delivery, NormalizationError
from schemas.events import PaymentEvent, PaymentEventKind, RawWebhook

AUTH_ALGO = "SHA256withRSA"
CERTS = "certs"  # the name of the certificate base URL in PayPal's declaration
CERT_PATH = "/v1/notifications/certs/"
PAYPAL_API_HOSTS = (
    "api.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.paypal.com",
    "api-m.sandbox.paypal.com",
)
PAYPAL_CERT_PREFIXES = tuple(f"https://{host}{CERT_PATH}" for host in PAYPAL_API_HOSTS)
# PayPal documents no replay window; each (re)transmission is signed anew.
TRANSMISSION_TOLERANCE_SECONDS = 10 * 60
CERT_FETCH_TIMEOUT = 3.0
CERT_MAX_BYTES = 64 * 1024
CERT_CACHE_SIZE = 32
FAILED_FETCH_TTL = 60.0

# ISO 4217 has no minor unit for JPY; HUF and TWD have one, but PayPal takes
# whole units only for them, so their minor amounts must be whole hundreds.
ZERO_DECIMAL = frozenset({"JPY"})
WHOLE_UNITS_ONLY = frozenset({"HUF", "TWD"})


# --- money: PayPal's "1234.50" strings and the hub's minor units ------------------


def paypal_value(amount_minor: int, currency: str) -> str:
    """Minor units as PayPal's amount value; ValueError when PayPal cannot take it."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return str(amount_minor)
    if code in WHOLE_UNITS_ONLY:
        if amount_minor % 100:
            raise ValueError(f"PayPal takes whole {code} amounts only, not {amount_minor / 100}")
        return str(amount_minor // 100)
    return str((Decimal(amount_minor) / 100).quantize(Decimal("0.01")))


def minor_units(value: Any, currency: str) -> int:
    """PayPal's amount value (a string) in minor units; ValueError when it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"amount value {value!r} is not a string")  # noqa: TRY004 - one error type for callers
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"amount value {value!r} is not a number") from None
    minor = amount if currency.upper() in ZERO_DECIMAL else amount * 100
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise ValueError(f"amount value {value!r} has more decimals than {currency} has")
    return int(minor)


# --- the pure part of the signature scheme ---------------------------------------


def signed_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


def load_certificate(pem: bytes) -> x509.Certificate | None:
    """The leaf (first) certificate of a PEM chain; None when there is none."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return None
    return chain[0] if chain else None


def signature_valid(
    message: bytes, signature_b64: str, certificate: x509.Certificate, now: datetime
) -> bool:
    """The RSA PKCS#1 v1.5 SHA-256 signature of `message` by a certificate valid `now`."""
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return False
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def transmitted_at(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def cert_url_allowed(url: str, prefixes: Sequence[str]) -> bool:
    """Is `url` one certificate directly under one of the trusted prefixes?

    Compared as parsed parts, not as text: no userinfo, query or fragment, the
    same scheme and host:port, and one plain path segment after the prefix (no
    dots or slashes, so no way out of the certificate directory)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[": the sender chooses this header freely
        return False
    if parts.query or parts.fragment or "@" in parts.netloc:
        return False
    for prefix in prefixes:
        trusted = urlsplit(prefix.rstrip("/") + "/")
        if (parts.scheme, parts.netloc.lower()) != (trusted.scheme, trusted.netloc.lower()):
            continue
        name = parts.path.removeprefix(trusted.path)
        if parts.path.startswith(trusted.path) and name and _plain_segment(name):
            return True
    return False


def _plain_segment(name: str) -> bool:
    return len(name) <= 128 and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)


def trusted_cert_prefixes() -> tuple[str, ...]:
    """PayPal's own certificate locations plus the operator's configured one."""
    configured = providers.base_url(get_settings(), "paypal", CERTS)
    return (*PAYPAL_CERT_PREFIXES, configured)


# --- fetching certificates ------------------------------------------------------


def fetch_certificate(url: str) -> bytes | None:
    try:
        with httpx.Client(timeout=CERT_FETCH_TIMEOUT, follow_redirects=False) as client:
            response = client.get(url)
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or len(response.content) > CERT_MAX_BYTES:
        return None
    return response.content


class CertificateStore:
    """Certificates by URL: fetched once, the most recently used few kept."""

    def __init__(
        self,
        fetch: Callable[[str], bytes | None] = fetch_certificate,
        size: int = CERT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._size = size
        self._clock = clock
        # url -> (certificate or None for a failed fetch, when it was fetched)
        self._cache: OrderedDict[str, tuple[x509.Certificate | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate | None:
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and (
                cached[0] is not None or self._clock() - cached[1] < FAILED_FETCH_TTL
            ):
                self._cache.move_to_end(url)
                return cached[0]
        pem = self._fetch(url)
        certificate = load_certificate(pem) if pem is not None else None
        with self._lock:
            self._cache[url] = (certificate, self._clock())
            self._cache.move_to_end(url)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return certificate


# --- the verifier -----------------------------------------------------------------


class PayPalVerifier:
    """PAYPAL-TRANSMISSION-SIG over id|time|webhook_id|crc32(body), by PayPal's certificate.

    The account's `webhook_id` is part of the message (the ingress's secret, the
    client secret, plays no part). A transmission time more than ten minutes from
    now is refused as a replay; the ingress de-duplicates on the event's `id`.
    """

    signature_header = "paypal-transmission-sig"
    event_id_header: str | None = None  # the event id is in the signed body ("id")
    certificate_signed = True  # no shared secret: sign() and signed_headers() cannot exist

    def __init__(
        self,
        certificates: CertificateStore | None = None,
        trusted_prefixes: Callable[[], Sequence[str]] = trusted_cert_prefixes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.certificates = certificates or CertificateStore()
        self.trusted_prefixes = trusted_prefixes
        self.clock = clock

    def sign(self, body: bytes, secret: str) -> str:
        raise NotImplementedError("PayPal signs with its private key (simulators/paypal_keys.py)")

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        raise NotImplementedError("PayPal signs with its private key (simulators/paypal_keys.py)")

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        return False  # the webhook id is the account's: only verify_delivery can check

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        webhook_id = getattr(account, "webhook_id", "")
        return bool(webhook_id) and self.verify_headers(delivery.body, delivery.headers, webhook_id)

    def verify_headers(self, body: bytes, headers: Mapping[str, str], webhook_id: str) -> bool:
        transmission_id = headers.get("paypal-transmission-id", "")
        transmission_time = headers.get("paypal-transmission-time", "")
        signature = headers.get(self.signature_header, "")
        cert_url = headers.get("paypal-cert-url", "")
        if headers.get("paypal-auth-algo", "") != AUTH_ALGO:
            return False
        if not (transmission_id and signature and cert_url):
            return False
        sent = transmitted_at(transmission_time)
        now = self.clock()
        if sent is None or abs(sent.timestamp() - now) > TRANSMISSION_TOLERANCE_SECONDS:
            return False
        if not cert_url_allowed(cert_url, self.trusted_prefixes()):
            return False
        certificate = self.certificates.get(cert_url)
        if certificate is None:
            return False
        message = signed_message(transmission_id, transmission_time, webhook_id, body)
        return signature_valid(message, signature, certificate, datetime.fromtimestamp(now, UTC))


# --- the normalizer ---------------------------------------------------------------

CAPTURE_KINDS = {
    "PAYMENT.CAPTURE.COMPLETED": PaymentEventKind.CAPTURED,
    "PAYMENT.CAPTURE.DENIED": PaymentEventKind.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentEventKind.FAILED,
}
ORDER_APPROVED = "CHECKOUT.ORDER.APPROVED"


def event_type(body: Mapping[str, Any]) -> str | None:
    found = body.get("event_type")
    return found if isinstance(found, str) else None


def event_id(body: Mapping[str, Any]) -> str | None:
    found = body.get("id")
    return found if isinstance(found, str) and found else None


def _object(parent: Any, field: str) -> dict[str, Any]:
    value = parent.get(field) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise NormalizationError(f"paypal webhook has no {field!r} object")
    return value


def _text(entity: dict[str, Any], field: str) -> str:
    value = entity.get(field)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"paypal webhook has no valid {field!r}")
    return value


def _created_at(resource: dict[str, Any]) -> datetime | None:
    value = resource.get("create_time")
    return transmitted_at(value) if isinstance(value, str) else None


def normalize_paypal(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | FollowUp | None:
    kind_name = event_type(body)
    if kind_name == ORDER_APPROVED:
        # Approved is not paid: the hub captures, and the capture's answer settles it.
        return FollowUp("capture", _text(_object(body, "resource"), "id"), reason="approved")
    kind = CAPTURE_KINDS.get(kind_name or "")
    if kind is None:
        return None  # PENDING, REFUNDED, CHECKOUT.ORDER.COMPLETED...: nothing to record
    capture = _object(body, "resource")
    related = _object(_object(capture, "supplementary_data"), "related_ids")
    amount = _object(capture, "amount")
    currency = _text(amount, "currency_code")
    try:
        amount_minor = minor_units(amount.get("value"), currency)
    except ValueError as exc:
        raise NormalizationError(f"paypal webhook: {exc}") from None
    details = capture.get("status_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    failed = kind is PaymentEventKind.FAILED
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=_text(capture, "id"),  # the capture id, as the capture call answers it
        order_id=_text(related, "order_id"),
        amount_minor=amount_minor,
        currency=currency,
        method="paypal",
        error_code=(reason if isinstance(reason, str) else str(capture.get("status")))
        if failed
        else None,
        error_description=str(body.get("summary") or "") or None if failed else None,
        provider_created_at=_created_at(capture),
    )
