"""Which provider sends a notification. Pure.

Each channel lists its providers in order of preference; the first one the
tenant has credentials for wins. The notification's idempotency key becomes
the command's, so however often a request is redelivered, the connector
sends it once.
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


def choose_provider(channel: Channel, tenant: Tenant | None) -> str:
    if tenant is None:
        raise RoutingError("unknown tenant")
    for provider in CHANNEL_PROVIDERS.get(channel, ()):
        if getattr(tenant, provider, None) is not None:
            return provider
    raise RoutingError(f"tenant {tenant.id!r} has no {channel} provider configured")


def route(request: NotificationRequest, tenants: TenantDirectory) -> Emit:
    provider = choose_provider(request.channel, tenants.get(request.header.tenant))
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
        payload=payload,
        context={"notification_id": request.notification_id},
    )
    return Emit(commands_topic(provider), command)
