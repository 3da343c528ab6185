"""What a provider declares, once: the one value everything else is derived from.

A provider module (providers/<name>.py) ends with `PROVIDER = Provider(...)`:
its name and category, its account model (a pydantic model whose `SecretStr`
fields are the secrets), its base URLs in production and on the local
simulator, the adapter that speaks its API and, where it calls the hub, its
webhook verifier and normalizer. Topics, settings, the tenant account schema,
the simulator wiring, `hub providers` and the README table come from this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, SecretStr

from providers.base import Category, ProviderAdapter
from schemas.events import DeliveryReceipt, PaymentEvent, RawWebhook

if TYPE_CHECKING:
    from providers.payments import FollowUp

# The base URL every adapter call starts from; others (an OAuth token endpoint) are named.
API = "api"


class NormalizationError(ValueError):
    """A webhook the hub should understand but cannot: it becomes a dead letter."""


class WebhookVerifier(Protocol):
    # The header carrying the signature (or, Flutterwave's, the shared secret itself):
    # checked, then never written to Kafka (webhook_ingress.decision.secret_header).
    signature_header: str
    # A header naming the delivery, for information only: it is never the dedup key,
    # because a header outside the signature (Razorpay's X-Razorpay-Event-Id) lets a
    # replayed body pass as new. The key comes from the signed body (`Webhooks.event_id`)
    # or is the body's hash.
    event_id_header: str | None

    def sign(self, body: bytes, secret: str) -> str:
        """The signature the provider would send for `body` (tests and simulators)."""
        ...

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        """Every header the provider would sign `body` with, now (a timestamp too, if any)."""
        ...

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool: ...


@dataclass(frozen=True)
class Delivery:
    """One webhook request as the ingress received it, for verifiers that need more
    than body and headers: Twilio signs the URL, M-Pesa's token is in the query
    string and its source address is allow-listed, Pesapal calls with GET."""

    method: str
    url: str  # as the provider called it, query string included
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    remote_addr: str | None


class DeliveryVerifier(Protocol):
    """A verifier that looks at the whole delivery; the ingress prefers this when present.

    `account` is the tenant's account (its provider's account model), for checks
    that need more than the secret (an allow-list of source addresses)."""

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool: ...


# A payment event, a follow-up command (ask the gateway), the delivery receipts of
# messages (a provider may batch several in one delivery: SendGrid), or None (ignored).
Normalizer = Callable[
    [RawWebhook, dict[str, Any]],
    "PaymentEvent | FollowUp | DeliveryReceipt | list[DeliveryReceipt] | None",
]
# How the delivery's payload is read: a JSON body, a form body, or (GET) the query string.
BodyFormat = Literal["json", "form", "query"]


def default_event_type(body: Mapping[str, Any]) -> str | None:
    # Razorpay names the event "event", Cashfree and Stripe "type".
    found = body.get("event", body.get("type"))
    return found if isinstance(found, str) else None


def no_event_id(body: Mapping[str, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class Webhooks:
    """How the provider calls the hub: the ingress verifies, the normalizer translates."""

    verifier: WebhookVerifier
    normalize: Normalizer
    # The account field holding the secret the verifier checks against.
    secret_field: str = "webhook_secret"  # noqa: S105 - a field name
    body_format: BodyFormat = "json"
    # The JSON body is an array of events (SendGrid batches them): read as {"items": [...]}.
    json_arrays: bool = False
    methods: tuple[str, ...] = ("POST",)
    # The delivery's event type (for logs, audit and the raw record) ...
    event_type: Callable[[Mapping[str, Any]], str | None] = default_event_type
    # ... and its id from the signed body, when the provider puts one there (Stripe's
    # evt_...); None falls back to the body's hash. Only signed material: never a header.
    event_id: Callable[[Mapping[str, Any]], str | None] = no_event_id
    # The JSON body the provider expects once the hub has the delivery (M-Pesa wants
    # {"ResultCode": 0, ...}, Pesapal an echo of the ids); None: the hub's own answer.
    acknowledge: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    # Query parameters `event_type` and `event_id` see besides the body's fields
    # (M-Pesa's `kind`: its C2B validation and confirmation share one body shape).
    query_fields: tuple[str, ...] = ()
    # A subscription check the ingress answers itself, before any verification (Meta's
    # GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..): the query parameters
    # and the tenant's candidate tokens -> the plain-text body to answer 200 with, or None
    # for a 403. Only a GET is one; nothing reaches Kafka.
    challenge: Callable[[Mapping[str, str], Sequence[str]], str | None] | None = None
    # The account field (a SecretStr) holding the token the challenge is checked against.
    challenge_field: str = ""
    # The largest body the provider sends, when it documents or implies one (SendGrid's
    # batches, up to 768 KB); None: HUB_INGRESS_MAX_BODY_BYTES. Set, it is the limit.
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class Messaging:
    """What the messenger (processors.messaging) knows of an SMS, email or WhatsApp provider."""

    # The provider's documented send rate per account, messages per second (None: none
    # documented). A tenant's policy may set a lower one; the messenger never exceeds it.
    rate_per_second: float | None = None
    # Whether it reports delivery: a message without a final receipt by the deadline is
    # sent once more through the backup. False (SMTP, SES without SNS): accepted is final.
    receipts: bool = True
    # Error codes (ConnectorResult.error_code) of permanent failures that belong to the
    # account, not the message (suspended, out of balance): the backup provider is tried.
    account_errors: frozenset[str] = frozenset()
    # Sends registered templates only, never free text (MSG91's DLT flows, WhatsApp
    # outside its 24 h window): a message without a template of this provider's skips it.
    templates_only: bool = False


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    category: Category
    account_model: type[BaseModel]
    adapter: ProviderAdapter[Any]
    # Production base URLs by name; API is the one adapter requests start from.
    base_urls: Mapping[str, str]
    # Where each base URL lives on the simulator server (a path under its URL).
    simulator_paths: Mapping[str, str]
    summary: str
    webhooks: Webhooks | None = None
    docs_url: str = ""
    operations: tuple[str, ...] = field(default=())
    # Payment gateways: an approved order must be captured by the hub (PayPal).
    manual_capture: bool = False
    # SMS, email and WhatsApp providers: rates, receipts, account-level errors.
    messaging: Messaging | None = None

    def __post_init__(self) -> None:
        if API not in self.base_urls:
            raise ValueError(f"provider {self.name!r} declares no {API!r} base URL")
        if set(self.simulator_paths) != set(self.base_urls):
            raise ValueError(f"provider {self.name!r}: every base URL needs a simulator path")
        if self.adapter.name != self.name:
            raise ValueError(f"adapter {self.adapter.name!r} declared as {self.name!r}")
        if not self.operations:
            declared = self.adapter.payload_type
            types = declared if isinstance(declared, tuple) else (declared,)
            found = tuple(op for t in types if (op := getattr(t, "OPERATION", None)))
            object.__setattr__(self, "operations", found)

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(
            name
            for name, info in self.account_model.model_fields.items()
            if info.annotation is SecretStr
        )

    @property
    def public_fields(self) -> tuple[str, ...]:
        return tuple(n for n in self.account_model.model_fields if n not in self.secret_fields)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(n for n, info in self.account_model.model_fields.items() if info.is_required())
