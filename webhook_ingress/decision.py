"""Accept or reject one webhook delivery: the ingress's whole policy, without I/O.

The checks run cheapest first, and the signature is checked over the exact
bytes received before anything looks inside them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import orjson

from core.tenants import TenantDirectory
from schemas.events import EventHeader, RawWebhook, utcnow
from webhook_ingress.signatures import verifier_for

SOURCE = "webhook-ingress"
# Never copied into the raw record: they may carry credentials of their own.
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str
    security: bool = False  # a failed signature: logged as a possible attack


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class WebhookKey(NamedTuple):
    account: str  # the account's label
    secret: str


def check_route(
    provider: str, tenant: str, tenants: TenantDirectory
) -> Rejection | list[WebhookKey]:
    """The webhook secrets of the tenant's accounts with this provider (primary
    first: a delivery signed by any of them is theirs), or why there are none."""
    if verifier_for(provider) is None:
        return Rejection(404, f"unknown provider {provider!r}")
    known = tenants.get(tenant)
    secrets = [
        WebhookKey(label, secret.get_secret_value())
        for label, secret in (known.labelled_webhook_secrets(provider) if known else [])
    ]
    if not secrets:
        return Rejection(404, f"unknown tenant {tenant!r} for {provider}")
    return secrets


def check_headers(headers: Mapping[str, str], max_body: int) -> Rejection | None:
    if not is_json_content_type(headers.get("content-type")):
        return Rejection(415, "content type must be application/json")
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            return Rejection(400, "invalid Content-Length")
        if int(length) > max_body:
            return Rejection(413, f"body over {max_body} bytes")
    return None


def accept(
    provider: str,
    tenant: str,
    secrets: Sequence[WebhookKey],
    headers: Mapping[str, str],
    body: bytes,
    *,
    received_at: datetime | None = None,
) -> RawWebhook | Rejection:
    verifier = verifier_for(provider)
    assert verifier is not None, "check_route admitted the provider"
    if not headers.get(verifier.signature_header):
        return Rejection(401, "missing signature", security=True)
    account = next((k.account for k in secrets if verifier.verify(body, headers, k.secret)), None)
    if account is None:
        return Rejection(401, "signature does not match the body", security=True)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Rejection(400, "body is not valid JSON")
    if not isinstance(parsed, dict):
        return Rejection(400, "body must be a JSON object")
    event_id = headers.get(verifier.event_id_header or "") or hashlib.sha256(body).hexdigest()
    # Razorpay names the event "event", Cashfree "type".
    event_type = parsed.get("event", parsed.get("type"))
    return RawWebhook(
        header=EventHeader.new("webhook.received", tenant, source=SOURCE),
        provider=provider,
        provider_event_id=event_id,
        provider_event_type=event_type if isinstance(event_type, str) else None,
        content_type=headers.get("content-type", ""),
        http_headers={k: v for k, v in headers.items() if k not in DROPPED_HEADERS},
        body=body,
        received_at=received_at or utcnow(),
        account=account,
    )
