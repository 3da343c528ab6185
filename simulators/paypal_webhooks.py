"""PayPal's side of its webhooks: the signing certificate and the signed event bodies.

The simulator signs with its own RSA key, whose self-signed certificate it serves
at `/paypal/v1/notifications/certs/{CERT_ID}` (PayPal's certificate path). The
hub fetches it from there only because that location is its configured
`paypal.certs` base URL; the signature is made exactly as PayPal's is:
base64 RSA PKCS#1 v1.5 SHA-256 over `id|time|webhook_id|crc32(body)`.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from providers.paypal_webhooks import AUTH_ALGO, CERT_PATH, signed_message
from simulators.state import random_id

CERT_ID = "CERT-360caa42-fca2a594-hubsim01"
CERT_LIFETIME = timedelta(days=365)


@dataclass(frozen=True)
class SigningIdentity:
    key: rsa.RSAPrivateKey
    certificate_pem: bytes

    def sign(self, message: bytes) -> str:
        signature = self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


def self_signed(key: rsa.RSAPrivateKey, common_name: str, now: datetime) -> bytes:
    """A PEM certificate for `key`, valid from a minute ago for a year."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + CERT_LIFETIME)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@cache
def identity() -> SigningIdentity:
    """One key per simulator process: generating RSA keys is slow."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = self_signed(key, "messageverificationcerts.simulator.local", datetime.now(UTC))
    return SigningIdentity(key, pem)


def cert_url(api_base: str) -> str:
    return f"{api_base.rstrip('/')}{CERT_PATH}{CERT_ID}"


def paypal_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_headers(body: bytes, webhook_id: str, api_base: str) -> dict[str, str]:
    """The headers PayPal sends with a webhook transmission of `body`, signed now."""
    transmission_id = str(uuid.uuid1())
    transmission_time = paypal_time(datetime.now(UTC))
    message = signed_message(transmission_id, transmission_time, webhook_id, body)
    return {
        "content-type": "application/json",
        "paypal-transmission-id": transmission_id,
        "paypal-transmission-time": transmission_time,
        "paypal-transmission-sig": identity().sign(message),
        "paypal-cert-url": cert_url(api_base),
        "paypal-auth-algo": AUTH_ALGO,
    }


# --- event bodies ------------------------------------------------------------------


def _event(event_type: str, resource_type: str, summary: str, resource: dict[str, Any]) -> bytes:
    event_id = "WH-" + random_id("", 17).upper() + "-" + random_id("", 17).upper()
    return json.dumps(
        {
            "id": event_id,
            "event_version": "1.0",
            "create_time": paypal_time(datetime.now(UTC)),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": resource,
            "links": [],
        },
        separators=(",", ":"),
    ).encode()


def order_approved(order: dict[str, Any]) -> bytes:
    return _event(
        "CHECKOUT.ORDER.APPROVED", "checkout-order", "An order has been approved by buyer", order
    )


def capture_event(capture: dict[str, Any], order_id: str) -> bytes:
    completed = capture["status"] == "COMPLETED"
    amount = capture["amount"]
    resource = {**capture, "supplementary_data": {"related_ids": {"order_id": order_id}}}
    if completed:
        summary = f"Payment completed for {amount['value']} {amount['currency_code']}"
        return _event("PAYMENT.CAPTURE.COMPLETED", "capture", summary, resource)
    summary = f"Payment denied for {amount['value']} {amount['currency_code']}"
    return _event("PAYMENT.CAPTURE.DENIED", "capture", summary, resource)
