"""Builders for the messenger's unit tests: a school with two SMS accounts and email,
a messaging policy, the partition's table, and the results and receipts a
connector and a provider would send."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from catalog.tenant_file import parse_tenants
from core.topics import MESSAGE_EVENTS, MESSAGE_STATES
from processors.emit import Emit
from processors.messaging import MessengerContext
from processors.messaging_config import parse_messaging
from processors.state import StateStore, Table
from schemas.events import (
    Channel,
    ConnectorCommand,
    ConnectorResult,
    DeliveryReceipt,
    EventHeader,
    MessageEvent,
    NotificationRequest,
    ReceiptStatus,
    ResultStatus,
)

TENANT = "oakridge"
TENANTS = f"""
[tenants.{TENANT}]
name = "Oakridge School"
[tenants.{TENANT}.accounts.twilio-primary]
provider = "twilio"
account_sid = "AC{"1" * 32}"
auth_token = "token-one"
from_number = "+15005550006"
[tenants.{TENANT}.accounts.twilio-backup]
provider = "twilio"
priority = 10
account_sid = "AC{"2" * 32}"
auth_token = "token-two"
from_number = "+15005550007"
[tenants.{TENANT}.accounts.sendgrid-primary]
provider = "sendgrid"
api_key = "SG.a.b"
from_email = "office@oakridge.example"
[tenants.{TENANT}.routing]
sms = ["twilio-primary", "twilio-backup"]
email = ["sendgrid-primary"]
"""
POLICY = f"""
[defaults.limits]
per_recipient_per_hour = 3
[tenants.{TENANT}.policy.sms.accounts.twilio-primary]
cost_minor = 20
rate_per_second = 100
[tenants.{TENANT}.policy.sms.accounts.twilio-backup]
cost_minor = 15
rate_per_second = 100
[templates."*".attendance_alert.sms.en]
text = "Dear parent, {{{{ student_name }}}} was absent today."
dlt_template_id = "1107161234567890123"
dlt_entity_id = "1101161234567890123"
[templates."*".attendance_alert.sms.hi]
text = "प्रिय अभिभावक, {{{{ student_name }}}} आज अनुपस्थित था।"
dlt_template_id = "1107161234567890999"
dlt_entity_id = "1101161234567890123"
"""
WEBHOOKS = "https://hub.example/webhooks/{provider}/{tenant}"


@dataclass
class Opened:
    """Breakers the test opened: (tenant, provider, label)."""

    accounts: set[tuple[str, str, str]] = field(default_factory=set)

    def __call__(self, tenant: str, provider: str, label: str) -> bool:
        return (tenant, provider, label) in self.accounts


def context(
    policy: str = POLICY, opened: Opened | None = None, deadline: float = 600.0
) -> MessengerContext:
    return MessengerContext(
        tenants=parse_tenants(tomllib.loads(TENANTS)),
        config=parse_messaging(tomllib.loads(policy)),
        is_open=opened or Opened(),
        webhook_url_template=WEBHOOKS,
        receipt_deadline_seconds=deadline,
    )


def table() -> Table:
    store = StateStore((MESSAGE_STATES,))
    store.load(MESSAGE_STATES, 0, {})
    return store.table(MESSAGE_STATES, 0)


def sms(
    key: str = "fee-paid:INV-1", to: str = "+919876543210", **fields: Any
) -> NotificationRequest:
    return NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, TENANT, source="test"),
        idempotency_key=key,
        channel=Channel.SMS,
        to=to,
        text=fields.pop("text", "Payment received"),
        **fields,
    )


def commands(emits: list[Emit]) -> list[ConnectorCommand]:
    return [e.event for e in emits if isinstance(e.event, ConnectorCommand)]


def steps(emits: list[Emit]) -> list[tuple[str, str]]:
    """(step, detail) of every story event, in order."""
    return [
        (e.event.step.value, e.event.detail)
        for e in emits
        if e.topic == MESSAGE_EVENTS and isinstance(e.event, MessageEvent)
    ]


def result_of(
    command: ConnectorCommand,
    *,
    ok: bool = True,
    ref: str | None = None,
    retryable: bool = False,
    code: str | None = None,
    message: str | None = None,
) -> ConnectorResult:
    return ConnectorResult(
        header=command.header.caused(ConnectorResult.EVENT_TYPE, source="connector-twilio"),
        command_id=command.command_id,
        idempotency_key=command.idempotency_key,
        provider=command.provider,
        operation=command.operation,
        status=ResultStatus.DELIVERED if ok else ResultStatus.FAILED,
        retryable=retryable,
        provider_ref=ref if ok else None,
        error_code=code,
        error_message=message,
        attempts=1,
        context=command.context,
    )


def receipt(
    ref: str, status: ReceiptStatus, provider: str = "twilio", code: str | None = None
) -> DeliveryReceipt:
    return DeliveryReceipt(
        header=EventHeader.new(DeliveryReceipt.EVENT_TYPE, TENANT, source="normalizer"),
        provider=provider,
        provider_event_id=f"{ref}:{status}",
        provider_ref=ref,
        status=status,
        provider_status=status.value.lower(),
        error_code=code,
    )
