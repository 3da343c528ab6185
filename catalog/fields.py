"""An account's fields: which are secret (the provider says), sealed how, and back.

Fields travel as strings (the CLI's `--set field=value`, the admin API's JSON,
a tenant file's values); the provider's pydantic account model validates them
and its `SecretStr` fields are the secrets. "" means "not set" throughout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

import providers
from catalog.errors import CatalogValidationError
from core.crypto import Keyring, Sealed
from core.tenants import ID_PATTERN, ProviderAccount

_ID = re.compile(ID_PATTERN)


def check_id(field: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise CatalogValidationError(
            field, f"{value!r} must be lowercase letters, digits, '-' or '_' (at most 63)"
        )
    return value


def secret_aad(tenant_id: str, label: str) -> bytes:
    """Binds an account's sealed secrets to that account: moved elsewhere, they do not open."""
    return f"{tenant_id}/{label}".encode()


def provider_of(name: str) -> providers.Provider:
    try:
        return providers.get(name)
    except providers.UnknownProviderError as exc:
        raise CatalogValidationError("provider", str(exc)) from None


def validate(
    provider: str, label: str, fields: Mapping[str, str], *, priority: int = 0, enabled: bool = True
) -> ProviderAccount:
    try:
        return providers.parse_account(
            provider, label, dict(fields), priority=priority, enabled=enabled
        )
    except providers.AccountError as exc:
        raise CatalogValidationError(exc.field, exc.message) from None


@dataclass(frozen=True)
class SplitFields:
    public: dict[str, str]
    secret: dict[str, str]

    @property
    def merged(self) -> dict[str, str]:
        return {**self.public, **self.secret}


def split(provider: str, fields: Mapping[str, str]) -> SplitFields:
    """Public and secret fields of a set (unset ones dropped), as the provider declares them."""
    secret_names = set(provider_of(provider).secret_fields)
    present = {k: v for k, v in fields.items() if v != ""}
    return SplitFields(
        public={k: v for k, v in sorted(present.items()) if k not in secret_names},
        secret={k: v for k, v in sorted(present.items()) if k in secret_names},
    )


def seal_secrets(
    keyring: Keyring, tenant_id: str, label: str, secret: Mapping[str, str]
) -> Sealed | None:
    if not secret:
        return None
    plaintext = json.dumps(dict(secret), sort_keys=True).encode()
    return keyring.seal(plaintext, secret_aad(tenant_id, label))


def open_secrets(
    keyring: Keyring, tenant_id: str, label: str, sealed: Sealed | None
) -> dict[str, str]:
    if sealed is None:
        return {}
    document = json.loads(keyring.open(sealed, secret_aad(tenant_id, label)))
    if not isinstance(document, dict):
        raise CatalogValidationError("secrets", "sealed secrets are not a JSON object")
    return {str(k): str(v) for k, v in document.items()}


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def fields_of(config: BaseModel) -> dict[str, str]:
    """A typed account config as the strings it was given as, secrets revealed (import)."""
    # model_dump keeps SecretStr values as SecretStr (python mode): _as_text reveals them.
    texts = {name: _as_text(value) for name, value in config.model_dump().items()}
    return {k: v for k, v in texts.items() if v is not None and v != ""}
