"""The adapters connector workers run: one per declared provider (providers/)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import providers
from providers.base import ProviderAdapter


def adapters() -> Mapping[str, ProviderAdapter[Any]]:
    return {name: declared.adapter for name, declared in providers.registry().items()}


def adapter(name: str) -> ProviderAdapter[Any]:
    try:
        return providers.get(name).adapter
    except providers.UnknownProviderError:
        known = ", ".join(providers.names())
        raise KeyError(f"no connector for {name!r} (known: {known})") from None
