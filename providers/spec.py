"""What a provider declares, once: the one value everything else is derived from.

A provider module (providers/<name>.py) ends with `PROVIDER = Provider(...)`:
its name and category, its account model (a pydantic model whose `SecretStr`
fields are the secrets), its base URLs in production and on the local
simulator, the adapter that speaks its API and, where it calls the hub, its
webhook verifier and normalizer. Topics, settings, the tenant account schema,
the simulator wiring, `hub providers` and the README table come from this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, SecretStr

from providers.base import Category, ProviderAdapter
from schemas.events import PaymentEvent, RawWebhook

# The base URL every adapter call starts from; others (an OAuth token endpoint) are named.
API = "api"


class NormalizationError(ValueError):
    """A webhook the hub should understand but cannot: it becomes a dead letter."""


class WebhookVerifier(Protocol):
    signature_header: str
    # A header naming the delivery (dedup key); None: the body's hash is used.
    event_id_header: str | None

    def sign(self, body: bytes, secret: str) -> str:
        """The signature the provider would send for `body` (tests and simulators)."""
        ...

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        """Every header the provider would sign `body` with, now (a timestamp too, if any)."""
        ...

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool: ...


Normalizer = Callable[[RawWebhook, dict[str, Any]], PaymentEvent | None]


@dataclass(frozen=True)
class Webhooks:
    """How the provider calls the hub: the ingress verifies, the normalizer translates."""

    verifier: WebhookVerifier
    normalize: Normalizer
    # The account field holding the secret the verifier checks against.
    secret_field: str = "webhook_secret"  # noqa: S105 - a field name


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

    def __post_init__(self) -> None:
        if API not in self.base_urls:
            raise ValueError(f"provider {self.name!r} declares no {API!r} base URL")
        if set(self.simulator_paths) != set(self.base_urls):
            raise ValueError(f"provider {self.name!r}: every base URL needs a simulator path")
        if self.adapter.name != self.name:
            raise ValueError(f"adapter {self.adapter.name!r} declared as {self.name!r}")
        if not self.operations:
            operation = getattr(self.adapter.payload_type, "OPERATION", None)
            object.__setattr__(self, "operations", (operation,) if operation else ())

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
