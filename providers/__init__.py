"""Every provider the hub speaks, found by its declaration.

Each module here that defines `PROVIDER` (a `providers.spec.Provider`) is a
provider; modules without one (base, spec, lookup, token_auth, google_auth, probe) are
the parts providers share. Adding a provider is adding one module (and its
simulator, under simulators/): nothing else lists providers by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

from core.settings import Settings
from core.tenants import ProviderAccount
from core.topics import TopicSpec, all_stages, catalog_for
from providers.probe import ProbeResult, probe
from providers.spec import API, Provider


class UnknownProviderError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class AccountError(ValueError):
    """An account's fields do not fit its provider's account model."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@cache
def registry() -> Mapping[str, Provider]:
    found: dict[str, Provider] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        declared = getattr(importlib.import_module(f"{__name__}.{module.name}"), "PROVIDER", None)
        if isinstance(declared, Provider):
            if declared.name in found:
                raise ValueError(f"provider {declared.name!r} is declared twice")
            found[declared.name] = declared
    return found


def names() -> tuple[str, ...]:
    return tuple(registry())


def get(name: str) -> Provider:
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(names())
        raise UnknownProviderError(f"no provider {name!r} (known: {known})") from None


def topics(settings: Settings | None = None) -> list[TopicSpec]:
    """The topic catalog with every declared provider's topics, as configured."""
    return catalog_for(settings or Settings(), names())


def stages() -> list[str]:
    """Every stage that can dead-letter: the processors' and one per provider's connector."""
    return all_stages(names())


def topic_spec(name: str) -> TopicSpec:
    for candidate in topics():
        if candidate.name == name:
            return candidate
    raise KeyError(f"{name!r} is not in the topic catalog (hub topics list shows them)")


def with_webhooks() -> tuple[str, ...]:
    return tuple(p.name for p in registry().values() if p.webhooks is not None)


def base_url(settings: Settings, provider: str, which: str = API) -> str:
    """HUB_PROVIDER_BASE_URLS["<provider>"] (or "<provider>.<which>"), else the declared default."""
    declared = get(provider)
    key = provider if which == API else f"{provider}.{which}"
    configured = settings.provider_base_urls.get(key)
    if configured:
        return configured
    try:
        return declared.base_urls[which]
    except KeyError:
        raise UnknownProviderError(f"provider {provider!r} has no {which!r} base URL") from None


def simulator_base_urls(simulator_url: str) -> dict[str, str]:
    """HUB_PROVIDER_BASE_URLS pointing every provider at the local simulators."""
    urls: dict[str, str] = {}
    for provider in registry().values():
        for which, path in provider.simulator_paths.items():
            key = provider.name if which == API else f"{provider.name}.{which}"
            urls[key] = f"{simulator_url.rstrip('/')}/{path.lstrip('/')}"
    return urls


def parse_account(
    provider: str,
    label: str,
    fields: Mapping[str, Any],
    *,
    priority: int = 0,
    enabled: bool = True,
) -> ProviderAccount:
    """Validate an account's fields against its provider's model (AccountError names the field)."""
    declared = get(provider)
    try:
        config = declared.account_model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "fields"
        raise AccountError(field, first["msg"]) from None
    try:
        return ProviderAccount(
            label=label, provider=provider, priority=priority, enabled=enabled, config=config
        )
    except ValidationError as exc:
        raise AccountError("label", exc.errors()[0]["msg"]) from None


__all__ = [
    "AccountError",
    "ProbeResult",
    "Provider",
    "UnknownProviderError",
    "base_url",
    "get",
    "names",
    "parse_account",
    "probe",
    "registry",
    "simulator_base_urls",
    "stages",
    "topic_spec",
    "topics",
    "with_webhooks",
]
