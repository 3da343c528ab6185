"""Which provider, and which of the tenant's accounts, sends a notification. Pure.

A tenant's routing names its accounts per channel, most preferred first
(`sms = ["twilio-primary", "twilio-backup"]`); the first enabled one wins.
Without routing for the channel, the channel's providers are tried in order
and the provider's primary account is used. The notification's idempotency
key becomes the command's, so however often a request is redelivered, the
connector sends it once.
"""

from __future__ import annotations

from core.tenants import Tenant, TenantDirectory
from core.topics import commands_topic
from processors.emit import Emit
from schemas.events import Channel, ConnectorCommand, NotificationRequest, SendEmail, SendSms

SOURCE = "router"

CHANNEL_PROVIDERS: dict[Channel, tuple[str, ...]] = {
    Channel.SMS: ("twilio",),
    Channel.EMAIL: ("sendgrid",),
}


class RoutingError(ValueError):
    pass


def choose_account(channel: Channel, tenant: Tenant | None) -> tuple[str, str | None]:
    """(provider, account label); None: the provider's primary account."""
    if tenant is None:
        raise RoutingError("unknown tenant")
    providers = CHANNEL_PROVIDERS.get(channel, ())
    for label in tenant.routing.get(channel.value.lower(), ()):
        account = tenant.by_label(label)
        if account is not None and account.enabled and account.provider in providers:
            return account.provider, account.label
    for provider in providers:
        if tenant.has(provider):
            return provider, None
    raise RoutingError(f"tenant {tenant.id!r} has no {channel} provider configured")


def choose_provider(channel: Channel, tenant: Tenant | None) -> str:
    return choose_account(channel, tenant)[0]


def route(request: NotificationRequest, tenants: TenantDirectory) -> Emit:
    provider, account = choose_account(request.channel, tenants.get(request.header.tenant))
    payload: SendSms | SendEmail
    if request.channel is Channel.SMS:
        payload = SendSms(to=request.to, text=request.text)
    else:
        payload = SendEmail(
            to=request.to,
            to_name=request.to_name,
            subject=request.subject or "(no subject)",
            text=request.text,
            html=request.html,
        )
    command = ConnectorCommand(
        header=request.header.caused(f"connector.{payload.OPERATION}", source=SOURCE),
        idempotency_key=request.idempotency_key,
        provider=provider,
        account=account,
        payload=payload,
        context={"notification_id": request.notification_id},
    )
    return Emit(commands_topic(provider), command)
