"""A tenant's accounts, as the tests read them: `primary(t1, TwilioAccount).account_sid`.

Unit, simulator and integration tests all need a tenant's credentials (to sign
a webhook, to authenticate against a simulator, to find the Twilio account a
message went to); the provider follows from the account model, so the call is
typed and names the provider once.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

import providers
from core.tenants import Tenant

M = TypeVar("M", bound=BaseModel)


def provider_of(model: type[BaseModel]) -> str:
    """The provider whose account model this is."""
    found = [p.name for p in providers.registry().values() if p.account_model is model]
    assert len(found) == 1, f"{model.__name__} is the account model of {found or 'no provider'}"
    return found[0]


def primary(tenant: Tenant, model: type[M]) -> M:
    """The tenant's primary (lowest priority, enabled) account of the model's provider."""
    return tenant.account(provider_of(model), model)


def labelled(tenant: Tenant, model: type[M], label: str) -> M:
    """The tenant's account with this label (it must be one of the model's provider)."""
    return tenant.account(provider_of(model), model, label)
