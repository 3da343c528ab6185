"""Tenants as every component sees them: schools, each with any number of
provider accounts, held in memory.

A tenant's accounts are labelled (`msg91-primary`, `twilio-backup`); each holds
its provider's own account model (declared with the provider, in providers/),
whose `SecretStr` fields are the secrets: masked in every `repr`, decrypted
only in memory. Where tenants come from (the SQL catalog, published to
`hub.catalog.tenants.v1`) is above this module; here they are plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

M = TypeVar("M", bound=BaseModel)

# Account labels and tenant ids appear in URLs, topic keys and log lines.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class MissingCredentialsError(LookupError):
    """The tenant has no (enabled) account with this provider: permanent until configured."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProviderAccount(_Model):
    """One of a tenant's accounts with one provider."""

    label: str = Field(pattern=ID_PATTERN)
    provider: str
    # Lower first: the primary account has the lowest priority of its provider's.
    priority: int = 0
    enabled: bool = True
    config: BaseModel  # the provider's account model: its fields, SecretStr ones secret

    def secret_values(self) -> list[str]:
        return [
            value.get_secret_value()
            for value in vars(self.config).values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]


class Tenant(_Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    enabled: bool = True
    accounts: tuple[ProviderAccount, ...] = ()
    # Channel or category ("sms", "email", "payment") -> account labels, most preferred first.
    routing: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)

    def accounts_for(self, provider: str) -> list[ProviderAccount]:
        """This provider's enabled accounts, primary first."""
        return sorted(
            (a for a in self.accounts if a.provider == provider and a.enabled),
            key=lambda a: (a.priority, a.label),
        )

    def has(self, provider: str) -> bool:
        return bool(self.accounts_for(provider))

    def by_label(self, label: str) -> ProviderAccount | None:
        return next((a for a in self.accounts if a.label == label), None)

    def account(self, provider: str, model: type[M], label: str | None = None) -> M:
        """The account's config: the labelled one, or the provider's primary."""
        chosen = self.by_label(label) if label else next(iter(self.accounts_for(provider)), None)
        if chosen is not None and chosen.provider != provider:
            raise MissingCredentialsError(
                f"tenant {self.id!r}: account {label!r} is a {chosen.provider} account, "
                f"not {provider}"
            )
        if chosen is None or not chosen.enabled:
            which = f"account {label!r}" if label else f"{provider} account"
            raise MissingCredentialsError(f"tenant {self.id!r} has no enabled {which}")
        if not isinstance(chosen.config, model):
            raise TypeError(f"account {chosen.label!r} is not a {model.__name__}")
        return chosen.config

    def labelled_webhook_secrets(self, provider: str) -> list[tuple[str, SecretStr]]:
        """(label, secret) of every enabled account's inbound webhook secret, primary first."""
        found = []
        for account in self.accounts_for(provider):
            secret = getattr(account.config, "webhook_secret", None)
            if isinstance(secret, SecretStr) and secret.get_secret_value():
                found.append((account.label, secret))
        return found

    def webhook_secrets(self, provider: str) -> list[SecretStr]:
        """Every enabled account's inbound webhook secret for this provider, primary first."""
        return [secret for _label, secret in self.labelled_webhook_secrets(provider)]

    def webhook_secret(self, provider: str) -> SecretStr | None:
        secrets = self.webhook_secrets(provider)
        return secrets[0] if secrets else None

    def secret_values(self) -> list[str]:
        return [value for account in self.accounts for value in account.secret_values()]


class TenantDirectory:
    """Tenants by id. A catalog view swaps in a new mapping whole, never mutates one."""

    def __init__(self, tenants: Mapping[str, Tenant] | None = None) -> None:
        self._tenants: Mapping[str, Tenant] = dict(tenants or {})

    def get(self, tenant_id: str) -> Tenant | None:
        tenant = self._tenants.get(tenant_id)
        return tenant if tenant is not None and tenant.enabled else None

    def __contains__(self, tenant_id: object) -> bool:
        return isinstance(tenant_id, str) and self.get(tenant_id) is not None

    def __len__(self) -> int:
        return len(self._tenants)

    def __iter__(self) -> Iterator[Tenant]:
        return iter(list(self._tenants.values()))

    def ids(self) -> list[str]:
        return sorted(self._tenants)

    def find_account(self, provider: str, **fields: str) -> tuple[Tenant, ProviderAccount] | None:
        """The enabled account of `provider` whose config has these field values
        (the Razorpay key id a request authenticates with)."""
        for tenant in self:
            for account in tenant.accounts_for(provider):
                if tenant.enabled and all(
                    getattr(account.config, k, None) == v for k, v in fields.items()
                ):
                    return tenant, account
        return None

    def secret_values(self) -> set[str]:
        return {value for tenant in self for value in tenant.secret_values()}

    def replace(self, tenants: Iterable[Tenant]) -> None:
        self._tenants = {t.id: t for t in tenants}
