"""Webhook verifiers, by provider: each is declared with its provider (providers/<name>.py).

Every verifier runs over the raw body bytes before any JSON parsing, and
compares in constant time (`hmac.compare_digest`): an unsigned body is never
interpreted.
"""

from __future__ import annotations

import providers
from providers.spec import WebhookVerifier


def verifier_for(provider: str) -> WebhookVerifier | None:
    declared = providers.registry().get(provider)
    return declared.webhooks.verifier if declared and declared.webhooks else None


__all__ = ["WebhookVerifier", "verifier_for"]
