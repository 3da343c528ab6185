"""Provider webhook signature schemes. Pure functions over the raw body bytes.

Each verifier compares in constant time (`hmac.compare_digest`) and runs
before any JSON parsing: an unsigned body is never interpreted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Protocol


class WebhookVerifier(Protocol):
    provider: str
    signature_header: str
    event_id_header: str | None

    def sign(self, body: bytes, secret: str) -> str:
        """The signature the provider would send for `body` (used by tests and simulators)."""
        ...

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool: ...


class RazorpayVerifier:
    """X-Razorpay-Signature: hex HMAC-SHA256 of the raw body, keyed with the webhook secret.

    Razorpay sends no timestamp; replays are defeated by de-duplicating on
    X-Razorpay-Event-Id downstream (Razorpay retries one event for 24 h).
    """

    provider = "razorpay"
    signature_header = "x-razorpay-signature"
    event_id_header: str | None = "x-razorpay-event-id"

    def sign(self, body: bytes, secret: str) -> str:
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = headers.get(self.signature_header, "")
        if not received:
            return False
        return hmac.compare_digest(self.sign(body, secret), received.strip().lower())


VERIFIERS: dict[str, WebhookVerifier] = {v.provider: v for v in (RazorpayVerifier(),)}
