"""The messenger's decisions: one message from request to its final state. No I/O.

A message (keyed by its idempotency key, in its tenant's partition) goes:

    WAITING (a rate limit holds it)  ->  IN_FLIGHT (a command to one account)
      -> SENT (the provider accepted it) -> DELIVERED (its receipt says so)
      -> FAILED (no provider could deliver it) | ACCEPTED (final for providers
         that report no delivery: SMTP, SES) | REJECTED (never sendable)

Each attempt is one command to one account, with its own idempotency key
(`<message key>#<n>`), so a redelivered request or result never sends twice.
It fails over to the next account (processors.message_policy) when:
- the send failed with a retryable error after the connector's tries, or the
  account's breaker was open (`circuit_open`);
- the provider refused it for a reason of the account's, not the message's
  (suspended, out of balance: `Messaging.account_errors`);
- the provider accepted it but its receipt says undelivered, or no final
  receipt came within the deadline: once per message.
An invalid number is not failed over: every provider would refuse it.

Every step is also an event of the message's story (schemas MessageEvent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import providers
from core.tenants import TenantDirectory
from core.topics import MESSAGE_EVENTS, commands_topic
from processors.emit import Emit
from processors.message_policy import Candidate, candidates
from processors.messaging_config import MessagingConfig
from processors.state import Table
from schemas.events import (
    Channel,
    CommandPayload,
    ConnectorCommand,
    EventHeader,
    MessageEvent,
    MessageStep,
    SendEmail,
    SendSms,
    SendWhatsApp,
)

SOURCE = "messenger"


class MessageStatus(StrEnum):
    QUEUED = "QUEUED"  # one of a bulk send, its batch not released yet
    WAITING = "WAITING"
    IN_FLIGHT = "IN_FLIGHT"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    ACCEPTED = "ACCEPTED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


FINAL = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.ACCEPTED, MessageStatus.FAILED, MessageStatus.REJECTED}
)


class _Value(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Attempt(_Value):
    n: int
    label: str
    provider: str
    idempotency_key: str
    status: str = "routed"  # routed, sent, failed, delivered, undelivered
    provider_ref: str | None = None
    error: str = ""
    cost_minor: int = 0
    receipts: bool = True
    routed_at: float = 0.0
    sent_at: float | None = None


class MessageState(_Value):
    key: str  # the request's idempotency key
    message_id: str
    tenant: str
    channel: Channel
    to: str
    to_name: str | None = None
    subject: str | None = None
    text: str = ""
    html: str | None = None
    template: str | None = None
    locale: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    provider_templates: dict[str, str] = Field(default_factory=dict)
    parameters: list[str] = Field(default_factory=list)
    dlt_template_id: str | None = None
    dlt_entity_id: str | None = None
    segments: int = 1
    bulk_id: str | None = None
    bulk_index: int | None = None
    reference: str | None = None
    status: MessageStatus = MessageStatus.WAITING
    attempts: list[Attempt] = Field(default_factory=list)
    receipt_failover_used: bool = False
    requested_at: float = 0.0
    wait_until: float | None = None
    wait_reason: str = ""
    finished_at: float | None = None
    header: dict[str, Any] = Field(default_factory=dict)

    @property
    def tried(self) -> set[str]:
        return {a.label for a in self.attempts}

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def message_key(tenant: str, key: str) -> str:
    return f"m:{tenant}:{key}"


def link_key(tenant: str, provider: str, ref: str) -> str:
    return f"r:{tenant}:{provider}:{ref}"


def load(table: Table, tenant: str, key: str) -> MessageState | None:
    stored = table.get(message_key(tenant, key))
    return MessageState.model_validate(stored) if stored else None


def save(table: Table, state: MessageState) -> None:
    table.set(message_key(state.tenant, state.key), state.model_dump(mode="json"))


@dataclass(frozen=True)
class MessengerContext:
    tenants: TenantDirectory
    config: MessagingConfig
    # (tenant, provider, label) -> is its circuit breaker open?
    is_open: Callable[[str, str, str], bool]
    # Where a provider posts per-message receipts: "{provider}" and "{tenant}" filled in.
    webhook_url_template: str
    receipt_deadline_seconds: float


def story(
    state: MessageState, step: MessageStep, detail: str = "", attempt: Attempt | None = None
) -> Emit:
    header = EventHeader.model_validate(state.header) if state.header else None
    event_header = (
        header.caused(MessageEvent.EVENT_TYPE, source=SOURCE)
        if header is not None
        else EventHeader.new(MessageEvent.EVENT_TYPE, state.tenant, source=SOURCE)
    )
    return Emit(
        MESSAGE_EVENTS,
        MessageEvent(
            header=event_header,
            message_id=state.message_id,
            step=step,
            channel=state.channel,
            to=state.to,
            provider=attempt.provider if attempt else None,
            account=attempt.label if attempt else None,
            provider_ref=attempt.provider_ref if attempt else None,
            attempt=attempt.n if attempt else 0,
            detail=detail,
            cost_minor=attempt.cost_minor if attempt else None,
            bulk_id=state.bulk_id,
        ),
    )


def finish(state: MessageState, status: MessageStatus, now: float) -> None:
    state.status = status
    state.finished_at = now
    state.wait_until = None


def next_candidates(state: MessageState, ctx: MessengerContext) -> list[Candidate]:
    tenant = ctx.tenants.get(state.tenant)
    if tenant is None:
        return []
    policy = ctx.config.for_tenant(state.tenant).policies.get(state.channel)
    return candidates(
        tenant,
        state.channel,
        policy,
        exclude=state.tried,
        is_open=lambda provider, label: ctx.is_open(state.tenant, provider, label),
        message_key=state.key,
        templates=set(state.provider_templates),
    )


def payload_for(state: MessageState, provider: str, callback_url: str) -> CommandPayload:
    if state.channel is Channel.SMS:
        return SendSms(
            to=state.to,
            text=state.text,
            callback_url=callback_url,
            template_id=state.provider_templates.get(provider),
            variables=state.variables if provider in state.provider_templates else {},
            dlt_template_id=state.dlt_template_id,
            dlt_entity_id=state.dlt_entity_id,
        )
    if state.channel is Channel.EMAIL:
        return SendEmail(
            to=state.to,
            to_name=state.to_name,
            subject=state.subject or "(no subject)",
            text=state.text,
            html=state.html,
        )
    return SendWhatsApp(
        to=state.to,
        template=state.provider_templates.get(provider, state.template or ""),
        language=state.locale or "en",
        parameters=state.parameters,
        callback_data=state.key,
        text=state.text,
    )


def command_for(
    state: MessageState, chosen: Candidate, n: int, more: bool, ctx: MessengerContext
) -> ConnectorCommand:
    callback = ctx.webhook_url_template.format(provider=chosen.provider, tenant=state.tenant)
    payload = payload_for(state, chosen.provider, callback)
    context = {"message": state.key, "attempt": str(n), "account": chosen.label}
    if state.bulk_id:
        context["bulk"] = state.bulk_id
    if more:
        # Another account can take it: few tries here, no retry tiers (connectors).
        context["failover"] = "next"
    header = EventHeader.model_validate(state.header) if state.header else None
    command_header = (
        header.caused(f"connector.{payload.OPERATION}", source=SOURCE)
        if header is not None
        else EventHeader.new(f"connector.{payload.OPERATION}", state.tenant, source=SOURCE)
    )
    return ConnectorCommand(
        header=command_header,
        idempotency_key=f"{state.key}#{n}",
        provider=chosen.provider,
        account=chosen.label,
        payload=payload,
        context=context,
    )


def route(
    state: MessageState, chosen: Candidate, more: bool, ctx: MessengerContext, now: float
) -> list[Emit]:
    """Hand the message to `chosen`: a new attempt and its command."""
    n = len(state.attempts) + 1
    command = command_for(state, chosen, n, more, ctx)
    cost = chosen.cost_minor * (state.segments if state.channel is Channel.SMS else 1)
    attempt = Attempt(
        n=n,
        label=chosen.label,
        provider=chosen.provider,
        idempotency_key=command.idempotency_key,
        cost_minor=cost,
        receipts=chosen.receipts,
        routed_at=now,
    )
    state.attempts.append(attempt)
    state.status = MessageStatus.IN_FLIGHT
    state.wait_until, state.wait_reason = None, ""
    detail = "breaker open: sent to wait in a retry tier" if chosen.open else ""
    return [
        Emit(commands_topic(chosen.provider), command),
        story(state, MessageStep.ROUTED, detail, attempt),
    ]


def account_error(provider: str, error_code: str | None) -> bool:
    declared = providers.registry().get(provider)
    messaging = declared.messaging if declared is not None else None
    return (
        messaging is not None and error_code is not None and error_code in messaging.account_errors
    )
