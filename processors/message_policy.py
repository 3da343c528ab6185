"""Which of a tenant's accounts sends a message, best first. Pure.

The order starts from the tenant's routing for the channel (`sms = ["twilio-primary",
"msg91-primary"]`, most preferred first; without routing, every account of the
channel's providers, primary first). The tenant's messaging policy
(processors.messaging_config) then adds, per account, a cost per message and a
weight: `prefer = "cost"` puts the cheapest first; weights split traffic
between accounts deterministically by message (the same message always picks
the same account). Accounts whose circuit breaker is open go last: a message
goes to an open account only when every account is open, and then waits in a
retry tier instead of calling it (connectors.guard).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from pydantic import BaseModel, SecretStr

import providers
from core.tenants import Tenant
from processors.messaging_config import ChannelPolicy
from providers.spec import Provider
from schemas.events import Channel

CHANNEL_CATEGORY: dict[Channel, str] = {
    Channel.SMS: "sms",
    Channel.EMAIL: "email",
    Channel.WHATSAPP: "whatsapp",
}


@dataclass(frozen=True)
class Candidate:
    label: str
    provider: str
    cost_minor: int = 0
    weight: int = 0
    # The tenant's contracted rate for the account, else the provider's documented
    # default (None: neither is known, unlimited).
    rate_per_second: float | None = None
    receipts: bool = True
    open: bool = False  # its circuit breaker is open


def _rate(provider_rate: float | None, own: float | None) -> float | None:
    # A school that bought more throughput (a short code, a raised SES quota) says so.
    return own if own is not None else provider_rate


def _reports_delivery(declared: Provider, config: BaseModel) -> bool:
    """Receipts come only to an account whose webhook secret is set: a SendGrid account
    without its Event Webhook key never reports delivery, so it must not wait for it."""
    if declared.messaging is None or not declared.messaging.receipts:
        return False
    if declared.webhooks is None:
        return False
    secret = getattr(config, declared.webhooks.secret_field, None)
    return isinstance(secret, SecretStr) and bool(secret.get_secret_value())


def _listed(tenant: Tenant, channel: Channel) -> list[str]:
    category = CHANNEL_CATEGORY[channel]
    routed = tenant.routing.get(channel.value.lower())
    if routed:
        return list(routed)
    channel_providers = sorted(
        name for name, p in providers.registry().items() if p.category == category
    )
    return [a.label for name in channel_providers for a in tenant.accounts_for(name)]


def candidates(
    tenant: Tenant,
    channel: Channel,
    policy: ChannelPolicy | None,
    *,
    exclude: Collection[str] = (),
    is_open: Callable[[str, str], bool] = lambda _provider, _label: False,
    message_key: str = "",
    templates: Collection[str] = (),
) -> list[Candidate]:
    """The accounts that may send this message, best first. `is_open(provider, label)`;
    `templates`: the providers the message has a provider template for."""
    category = CHANNEL_CATEGORY[channel]
    found: list[Candidate] = []
    for label in _listed(tenant, channel):
        account = tenant.by_label(label)
        if account is None or not account.enabled or label in exclude:
            continue
        declared = providers.registry().get(account.provider)
        if declared is None or declared.category != category:
            continue
        own = policy.accounts.get(label) if policy is not None else None
        messaging = declared.messaging
        if messaging is not None and messaging.templates_only and account.provider not in templates:
            continue
        found.append(
            Candidate(
                label=label,
                provider=account.provider,
                cost_minor=own.cost_minor if own else 0,
                weight=own.weight if own else 0,
                rate_per_second=_rate(
                    messaging.rate_per_second if messaging else None,
                    own.rate_per_second if own else None,
                ),
                receipts=_reports_delivery(declared, account.config),
                open=is_open(account.provider, label),
            )
        )
    if policy is not None and policy.prefer == "cost":
        found.sort(key=lambda c: c.cost_minor)  # stable: routing order breaks ties
    healthy = _weighted_first([c for c in found if not c.open], message_key)
    return healthy + [c for c in found if c.open]


def _weighted_first(ordered: list[Candidate], message_key: str) -> list[Candidate]:
    weighted = [c for c in ordered if c.weight > 0]
    if len(weighted) < 2:
        return ordered
    total = sum(c.weight for c in weighted)
    point = int.from_bytes(hashlib.sha256(message_key.encode()).digest()[:8], "big") % total
    for chosen in weighted:
        if point < chosen.weight:
            break
        point -= chosen.weight
    return [chosen, *(c for c in ordered if c is not chosen)]
