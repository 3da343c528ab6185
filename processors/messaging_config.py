"""The messaging policy file: per-tenant account policies, sending limits and templates.

Read from `Settings().messaging_config` (HUB_MESSAGING_CONFIG; default: the demo file
deploy/messaging.toml). The format, TOML:

    [defaults.limits]                      # every tenant's, unless it sets its own
    per_recipient_per_hour = 10
    per_minute = 1200
    per_day = 50000

    [tenants.greenwood]
    currency = "INR"                       # of cost_minor; default: the defaults' ("INR")
    [tenants.greenwood.limits]             # merged field by field over [defaults.limits]
    per_minute = 600
    per_day = 20000
    [tenants.greenwood.policy.sms]         # channels: sms, email, whatsapp
    prefer = "order"                       # "order": as written; "cost": cheapest healthy first
    [tenants.greenwood.policy.sms.accounts.twilio-primary]   # the tenant's account label
    cost_minor = 20                        # per message, in minor units (paise)
    weight = 0                             # >0 on several accounts: split traffic by weight
    rate_per_second = 1.0                  # optional: this account's own sending limit
    [tenants.greenwood.policy.sms.accounts.msg91-primary]
    cost_minor = 15

    [templates."*".attendance_alert.sms.en]        # "*": every tenant; or a tenant id
    text = "Dear parent, {{ student_name }} was absent today ({{ date }}). {{ school }}"
    dlt_template_id = "1107161234567890123"        # India's DLT content template id
    dlt_entity_id = "1101161234567890123"          # the principal entity (sender) id
    provider_templates = { msg91 = "64f1a2b3c4d5e6f7a8b9c0d1" }
    parameters = ["student_name", "date"]          # WhatsApp {{1}}, {{2}}... in order
    [templates."*".payment_receipt.email.en]
    subject = "Payment receipt {{ receipt_no }}"
    text = "..."
    html = "..."

A tenant without a `[tenants.<id>]` table gets the defaults; a tenant's policy for a
channel replaces the defaults' policy for that channel (the others still apply). A
limit left out is the default's; a tenant cannot lift a default limit, only set its own.
Every mistake is a MessagingConfigError naming the TOML key, e.g.
`tenants.greenwood.policy.sms.accounts.twilio-primary.cost_minor: must be a whole
number >= 0 (got -5)`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

from processors.templates import EVERY_TENANT, Template, TemplateBook, TemplateError, template
from schemas.events import Channel


class MessagingConfigError(ValueError):
    """A messaging policy file that cannot be used; the message names the bad key."""


@dataclass(frozen=True)
class AccountPolicy:
    label: str
    weight: int = 0
    cost_minor: int = 0
    rate_per_second: float | None = None


@dataclass(frozen=True)
class ChannelPolicy:
    accounts: Mapping[str, AccountPolicy]  # by label, in the order written
    prefer: Literal["order", "cost"] = "order"


@dataclass(frozen=True)
class Limits:
    per_minute: int | None = None
    per_day: int | None = None
    per_recipient_per_hour: int | None = None

    def over(self, defaults: Limits) -> Limits:
        """These limits, each one left out taken from `defaults`."""
        return Limits(
            **{
                f.name: getattr(self, f.name)
                if getattr(self, f.name) is not None
                else getattr(defaults, f.name)
                for f in fields(Limits)
            }
        )


@dataclass(frozen=True)
class TenantMessaging:
    policies: Mapping[Channel, ChannelPolicy] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    currency: str = "INR"


@dataclass(frozen=True)
class MessagingConfig:
    tenants: Mapping[str, TenantMessaging]
    defaults: TenantMessaging
    templates: TemplateBook

    # Merged once per tenant: the messenger asks for every message (the config is frozen).
    _merged: dict[str, TenantMessaging] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def for_tenant(self, tenant: str) -> TenantMessaging:
        """The tenant's own (its limits merged over the defaults', its channel policies over
        the defaults' ones), else the defaults."""
        merged = self._merged.get(tenant)
        if merged is not None:
            return merged
        own = self.tenants.get(tenant)
        merged = (
            self.defaults
            if own is None
            else replace(
                own,
                policies={**self.defaults.policies, **own.policies},
                limits=own.limits.over(self.defaults.limits),
            )
        )
        self._merged[tenant] = merged
        return merged


# --- parsing -------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
CHANNELS = {c.value.lower(): c for c in Channel}


def _path(*keys: str) -> str:
    """A TOML dotted key: bare where it can be, quoted where it must."""
    return ".".join(k if _BARE_KEY.fullmatch(k) else f'"{k}"' for k in keys)


def _bad(keys: tuple[str, ...], message: str) -> MessagingConfigError:
    return MessagingConfigError(f"{_path(*keys)}: {message}")


def _table(value: Any, keys: tuple[str, ...], allowed: frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(keys, f"must be a table (got {type(value).__name__})")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise _bad(
                (*keys, unknown[0]), f"unknown key; expected one of {', '.join(sorted(allowed))}"
            )
    return cast("dict[str, Any]", value)


def _count(value: Any, keys: tuple[str, ...], minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(keys, f"must be a whole number >= {minimum} (got {value!r})")
    return value


def _text(value: Any, keys: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise _bad(keys, f"must be a string (got {value!r})")
    return value


def _channel(key: str, keys: tuple[str, ...]) -> Channel:
    if key not in CHANNELS:
        raise _bad(keys, f"unknown channel; use one of {', '.join(CHANNELS)}")
    return CHANNELS[key]


_ACCOUNT_KEYS = frozenset({"weight", "cost_minor", "rate_per_second"})
_POLICY_KEYS = frozenset({"prefer", "accounts"})
_LIMIT_KEYS = frozenset(f.name for f in fields(Limits))
_TENANT_KEYS = frozenset({"limits", "policy", "currency"})
_TEMPLATE_KEYS = frozenset(
    {
        "subject",
        "text",
        "html",
        "provider_templates",
        "dlt_template_id",
        "dlt_entity_id",
        "parameters",
    }
)


def _account(label: str, value: Any, keys: tuple[str, ...]) -> AccountPolicy:
    body = _table(value, keys, _ACCOUNT_KEYS)
    rate = body.get("rate_per_second")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
    ):
        raise _bad((*keys, "rate_per_second"), f"must be a number > 0 (got {rate!r})")
    return AccountPolicy(
        label=label,
        weight=_count(body.get("weight", 0), (*keys, "weight"), 0),
        cost_minor=_count(body.get("cost_minor", 0), (*keys, "cost_minor"), 0),
        rate_per_second=None if rate is None else float(rate),
    )


def _policy(value: Any, keys: tuple[str, ...]) -> ChannelPolicy:
    body = _table(value, keys, _POLICY_KEYS)
    prefer = body.get("prefer", "order")
    if prefer not in ("order", "cost"):
        raise _bad((*keys, "prefer"), f'must be "order" or "cost" (got {prefer!r})')
    raw_accounts = _table(body.get("accounts", {}), (*keys, "accounts"), None)
    if not raw_accounts:
        raise _bad((*keys, "accounts"), "names no account; add [<this>.accounts.<label>]")
    accounts = {
        label: _account(label, raw, (*keys, "accounts", label))
        for label, raw in raw_accounts.items()
    }
    return ChannelPolicy(accounts=accounts, prefer=cast("Literal['order', 'cost']", prefer))


def _limits(value: Any, keys: tuple[str, ...]) -> Limits:
    body = _table(value, keys, _LIMIT_KEYS)
    return Limits(**{name: _count(raw, (*keys, name), 1) for name, raw in body.items()})


def _tenant(value: Any, keys: tuple[str, ...], currency: str) -> TenantMessaging:
    body = _table(value, keys, _TENANT_KEYS)
    raw_currency = body.get("currency", currency)
    if not isinstance(raw_currency, str) or not _CURRENCY.fullmatch(raw_currency):
        raise _bad((*keys, "currency"), f"must be an ISO 4217 code like INR (got {raw_currency!r})")
    policy = _table(body.get("policy", {}), (*keys, "policy"), None)
    return TenantMessaging(
        policies={
            _channel(name, (*keys, "policy", name)): _policy(raw, (*keys, "policy", name))
            for name, raw in policy.items()
        },
        limits=_limits(body.get("limits", {}), (*keys, "limits")),
        currency=raw_currency,
    )


def _template(
    name: str, channel: Channel, locale: str, value: Any, keys: tuple[str, ...]
) -> Template:
    body = _table(value, keys, _TEMPLATE_KEYS)
    if "text" not in body:
        raise _bad(keys, "has no text")
    optional: dict[str, str | None] = {
        k: None if body.get(k) is None else _text(body[k], (*keys, k))
        for k in ("subject", "html", "dlt_template_id", "dlt_entity_id")
    }
    provider_templates = _table(
        body.get("provider_templates", {}), (*keys, "provider_templates"), None
    )
    parameters = body.get("parameters", [])
    if not isinstance(parameters, list):
        raise _bad((*keys, "parameters"), "must be a list of variable names")
    try:
        return template(
            name,
            channel,
            locale,
            text=_text(body["text"], (*keys, "text")),
            subject=optional["subject"],
            html=optional["html"],
            dlt_template_id=optional["dlt_template_id"],
            dlt_entity_id=optional["dlt_entity_id"],
            provider_templates={
                p: _text(v, (*keys, "provider_templates", p)) for p, v in provider_templates.items()
            },
            parameters=[_text(p, (*keys, "parameters")) for p in parameters],
        )
    except TemplateError as exc:
        raise _bad(keys, str(exc)) from None


def _templates(value: Any) -> TemplateBook:
    found: list[tuple[str, Template]] = []
    for scope, names in _table(value, ("templates",), None).items():
        for name, channels in _table(names, ("templates", scope), None).items():
            for ch, locales in _table(channels, ("templates", scope, name), None).items():
                channel = _channel(ch, ("templates", scope, name, ch))
                for locale, body in _table(locales, ("templates", scope, name, ch), None).items():
                    keys = ("templates", scope, name, ch, locale)
                    found.append((scope, _template(name, channel, locale, body, keys)))
    try:
        return TemplateBook(found)
    except TemplateError as exc:  # the same locale twice, as "en" and "EN"
        raise MessagingConfigError(f"templates: {exc}") from None


def parse_messaging(data: Mapping[str, Any]) -> MessagingConfig:
    root = _table(dict(data), (), frozenset({"defaults", "tenants", "templates"}))
    defaults = _tenant(root.get("defaults", {}), ("defaults",), "INR")
    tenants = {
        tenant: _tenant(body, ("tenants", tenant), defaults.currency)
        for tenant, body in _table(root.get("tenants", {}), ("tenants",), None).items()
    }
    if EVERY_TENANT in tenants:
        raise _bad(("tenants", EVERY_TENANT), "is not a tenant id; use [defaults] for everyone")
    return MessagingConfig(
        tenants=tenants, defaults=defaults, templates=_templates(root.get("templates", {}))
    )


def load_messaging(path: Path) -> MessagingConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MessagingConfigError(f"cannot read the messaging config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MessagingConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_messaging(data)
    except MessagingConfigError as exc:
        raise MessagingConfigError(f"{path}: {exc}") from None
