"""Accept or reject one webhook delivery: the ingress's whole policy, without I/O.

The checks run cheapest first, and the signature is checked over the exact
bytes received before anything looks inside them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

import orjson
from pydantic import BaseModel, SecretStr

import providers
from core.tenants import TenantDirectory
from providers.spec import BodyFormat, Delivery, Webhooks, WebhookVerifier
from schemas.events import EventHeader, RawWebhook, utcnow

SOURCE = "webhook-ingress"
# Never copied into the raw record: they may carry credentials of their own.
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Nor is any header whose name says it proves or authenticates something, whichever
# provider sent it: a signature on Kafka is replayable material, and Flutterwave's
# verif-hash is the account's secret itself. No normalizer reads a signature header.
SECRET_HEADER_WORDS = ("signature", "secret", "token", "password", "api-key", "apikey")
SECRET_HEADER_SUFFIXES = ("-sig", "-hash")
# What every 404 answers, whichever of provider, tenant or account was missing: the
# precise reason is logged, never told (it would list which tenants exist).
NOT_FOUND = "not found"


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str  # the precise reason: logged and audited
    security: bool = False  # a failed signature: logged as a possible attack

    @property
    def public(self) -> str:
        """What the sender is told."""
        return NOT_FOUND if self.status == 404 else self.reason


def secret_header(name: str, verifier: WebhookVerifier) -> bool:
    """Whether a (lower-case) header must not reach the raw record."""
    return (
        name in DROPPED_HEADERS
        or name == verifier.signature_header
        or any(word in name for word in SECRET_HEADER_WORDS)
        or name.endswith(SECRET_HEADER_SUFFIXES)
    )


def recorded_headers(headers: Mapping[str, str], verifier: WebhookVerifier) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not secret_header(k, verifier)}


FORM = "application/x-www-form-urlencoded"


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def is_json_content_type(value: str | None) -> bool:
    media_type = _media_type(value)
    return media_type == "application/json" or media_type.endswith("+json")


def webhooks_of(provider: str) -> Webhooks | None:
    declared = providers.registry().get(provider)
    return declared.webhooks if declared else None


class WebhookKey(NamedTuple):
    account: str  # the account's label
    secret: str
    config: BaseModel | None = None  # the account itself, for verifiers that need more


def check_route(
    provider: str, tenant: str, tenants: TenantDirectory, method: str = "POST"
) -> Rejection | list[WebhookKey]:
    """The webhook secrets of the tenant's accounts with this provider (primary
    first: a delivery signed by any of them is theirs), or why there are none."""
    webhooks = webhooks_of(provider)
    if webhooks is None:
        return Rejection(404, f"unknown provider {provider!r}")
    if method not in webhooks.methods:
        return Rejection(405, f"{provider} webhooks are {' or '.join(webhooks.methods)}")
    known = tenants.get(tenant)
    keys = []
    for account in known.accounts_for(provider) if known else []:
        secret = getattr(account.config, webhooks.secret_field, None)
        if isinstance(secret, SecretStr) and secret.get_secret_value():
            keys.append(WebhookKey(account.label, secret.get_secret_value(), account.config))
    if not keys:
        return Rejection(404, f"unknown tenant {tenant!r} for {provider}")
    return keys


FORBIDDEN = "Forbidden"


@dataclass(frozen=True)
class ChallengeAnswer:
    """The answer to a provider's subscription check: plain text, never produced to Kafka."""

    status: int
    body: str
    # Why a 403, for the log only: every 403 answers the same body.
    reason: str = field(default="", compare=False)


def answer_challenge(
    provider: str, tenant: str, tenants: TenantDirectory, method: str, query: Mapping[str, str]
) -> ChallengeAnswer | None:
    """A GET to a provider that declares a subscription check (Meta's hub.challenge) is
    one: 200 with the body the provider's check returns when the token is one of the
    tenant's enabled accounts' `challenge_field`, else 403. None: not a challenge."""
    webhooks = webhooks_of(provider)
    if webhooks is None or webhooks.challenge is None or method != "GET":
        return None
    known = tenants.get(tenant)
    tokens: list[str] = []
    for account in known.accounts_for(provider) if known else []:
        token = getattr(account.config, webhooks.challenge_field, None)
        if isinstance(token, SecretStr) and token.get_secret_value():
            tokens.append(token.get_secret_value())
    if not tokens:
        return ChallengeAnswer(403, FORBIDDEN, f"no {provider} verify token for {tenant!r}")
    body = webhooks.challenge(query, tokens)
    if body is None:
        return ChallengeAnswer(403, FORBIDDEN, "not a subscription check with a known token")
    return ChallengeAnswer(200, body)


def body_limit(webhooks: Webhooks, default: int) -> int:
    """The provider's own limit when it declares one, else the deployment's."""
    return webhooks.max_body_bytes if webhooks.max_body_bytes is not None else default


def check_headers(
    headers: Mapping[str, str], max_body: int, body_format: BodyFormat = "json"
) -> Rejection | None:
    media_type = headers.get("content-type")
    if body_format == "json" and not is_json_content_type(media_type):
        return Rejection(415, "content type must be application/json")
    if body_format == "form" and _media_type(media_type) != FORM:
        return Rejection(415, f"content type must be {FORM}")
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            return Rejection(400, "invalid Content-Length")
        if int(length) > max_body:
            return Rejection(413, f"body over {max_body} bytes")
    return None


def parse_payload(
    body: bytes, body_format: BodyFormat, *, arrays: bool = False
) -> dict[str, Any] | Rejection:
    """The delivery's fields: a JSON object, or a form's (or a GET's query) pairs."""
    if body_format != "json":
        try:
            return dict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            )
        except UnicodeDecodeError:
            return Rejection(400, "body is not valid UTF-8")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Rejection(400, "body is not valid JSON")
    if isinstance(parsed, list) and arrays:
        return {"items": parsed}  # a batch of events (SendGrid's event webhook)
    if not isinstance(parsed, dict):
        return Rejection(
            400, "body must be a JSON array" if arrays else "body must be a JSON object"
        )
    return parsed


def _verified(webhooks: Webhooks, delivery: Delivery, keys: Sequence[WebhookKey]) -> str | None:
    """The label of the first account whose secret verifies the delivery."""
    verifier = webhooks.verifier
    whole = getattr(verifier, "verify_delivery", None)
    for key in keys:
        if whole is not None and key.config is not None:
            if whole(delivery, key.secret, key.config):
                return key.account
        elif verifier.verify(delivery.body, delivery.headers, key.secret):
            return key.account
    return None


def accept(
    provider: str,
    tenant: str,
    keys: Sequence[WebhookKey],
    delivery: Delivery,
    *,
    received_at: datetime | None = None,
) -> RawWebhook | Rejection:
    webhooks = webhooks_of(provider)
    assert webhooks is not None, "check_route admitted the provider"
    verifier, headers = webhooks.verifier, delivery.headers
    if verifier.signature_header and not headers.get(verifier.signature_header):
        return Rejection(401, "missing signature", security=True)
    account = _verified(webhooks, delivery, keys)
    if account is None:
        return Rejection(401, "signature does not match the body", security=True)
    # A GET (Pesapal's IPN) carries its fields in the query string: that is its body.
    body = delivery.body if webhooks.body_format != "query" else query_body(delivery)
    parsed = parse_payload(body, webhooks.body_format, arrays=webhooks.json_arrays)
    if isinstance(parsed, Rejection):
        return parsed
    described = described_fields(webhooks, delivery, parsed)
    # Signed material only (the body, or its hash): an unsigned header as the key would
    # let a captured body, replayed under a new id, pass as a new payment.
    event_id = webhooks.event_id(described) or hashlib.sha256(body).hexdigest()
    event_type = webhooks.event_type(described)
    content_type = FORM if webhooks.body_format == "query" else headers.get("content-type", "")
    return RawWebhook(
        header=EventHeader.new("webhook.received", tenant, source=SOURCE),
        provider=provider,
        provider_event_id=event_id,
        provider_event_type=event_type,
        content_type=content_type,
        http_headers=recorded_headers(headers, verifier),
        body=body,
        received_at=received_at or utcnow(),
        account=account,
    )


def described_fields(
    webhooks: Webhooks, delivery: Delivery, parsed: dict[str, Any]
) -> dict[str, Any]:
    """The body's fields plus the declared query parameters (the body wins a clash)."""
    query = delivery.query
    extra = {k: query[k] for k in webhooks.query_fields if k in query and k not in parsed}
    return {**parsed, **extra} if extra else parsed


# Query parameters that authenticate a delivery (M-Pesa's and Pesapal's secret URL
# token): checked by the verifier, never written to Kafka with the rest.
SECRET_QUERY_PARAMS = frozenset({"token"})


def query_body(delivery: Delivery) -> bytes:
    pairs = parse_qsl(delivery.url.partition("?")[2], keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k not in SECRET_QUERY_PARAMS]).encode()


def acknowledgement(webhooks: Webhooks, raw: RawWebhook) -> Mapping[str, Any] | None:
    """The provider's own success answer for an accepted delivery (None: the hub's)."""
    if webhooks.acknowledge is None:
        return None
    parsed = parse_payload(
        raw.body,
        "json" if webhooks.body_format == "json" else "form",
        arrays=webhooks.json_arrays,
    )
    return webhooks.acknowledge(parsed) if isinstance(parsed, dict) else None
