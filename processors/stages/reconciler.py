"""Reconciler stage: invoices, gateway orders and payments -> invoice PAID and notifications.

Three steps, each reading only topics keyed like its own table:

- order results (connector.<gateway>.results.v1, stateless): the gateway's
  answer becomes a PaymentOrderResult for the fee module, and an order link
  re-keyed by order id for the matcher.
- order matcher (order links + payment events, keyed <tenant>:<order id>):
  re-keys each payment to its invoice, parking payments whose order is not
  known yet.
- invoice ledger (invoices, payment requests, order results, matched payments,
  keyed <tenant>:<invoice id>): the invoice's state machine (processors.fees).

A state change and the events it causes are written in one transaction, so a
restored ledger never holds a PAID invoice whose notifications were lost.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from confluent_kafka import Message

import providers
from core.dead_letters import Failure, build_dead_letter, source_of, worker_id
from core.kafka import Record, event_record
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import (
    INVOICE_STATES,
    INVOICES,
    ORDER_LINK_STATES,
    ORDER_LINKS,
    PARKED_PAYMENTS,
    PAYMENT_EVENTS,
    PAYMENT_MATCHES,
    PAYMENT_ORDERS,
    PAYMENT_REQUESTS,
    dlq_topic,
    results_topic,
)
from processors import fees
from processors.emit import Emit, to_records
from processors.gateways import GatewayHealth
from processors.matching import (
    OrderLink,
    ParkedRecord,
    UnmatchedPaymentError,
    link_of,
    matched,
    overdue,
)
from processors.runner import Stage, StepContext
from providers.payments import snapshot_event
from schemas.codec import Codec
from schemas.events import (
    ConnectorResult,
    CreatePaymentOrder,
    PaymentEvent,
    PaymentOrderResult,
    ResultStatus,
    UnexpectedEventError,
    decode_as,
    decode_event,
)

log = structlog.get_logger("processors.stages.reconciler")

NAME = "reconciler"
GATEWAYS = tuple(name for name, p in providers.registry().items() if p.category == "payment")
RESULT_TOPICS = tuple(results_topic(g) for g in GATEWAYS)
ORDER_TOPICS = (ORDER_LINKS, PAYMENT_EVENTS)
INVOICE_TOPICS = (INVOICES, PAYMENT_REQUESTS, PAYMENT_ORDERS, PAYMENT_MATCHES)
SWEEP_SECONDS = 60.0


def _key(msg: Message) -> str:
    key = msg.key()
    if not key:
        raise ValueError("a record without a key cannot be matched to its entity")
    return key.decode()


class Reconciler:
    def __init__(self, settings: Settings, tenants: TenantDirectory, codec: Codec) -> None:
        self.codec = codec
        self.health = GatewayHealth(time.time)
        self.ctx = fees.FeeContext(
            tenants,
            settings.payment_url_template,
            settings.receipt_url_template,
            webhook_url_template=settings.webhook_url_template,
            return_url_template=settings.payment_return_url_template,
            health=self.health,
            poll_after_seconds=settings.payment_status_poll_seconds,
            max_polls=settings.payment_status_max_polls,
        )
        self.grace_seconds = settings.unmatched_payment_grace_hours * 3600
        self.worker = worker_id()

    def step(self, ctx: StepContext, msg: Message) -> list[Record]:
        topic = msg.topic()
        if topic in RESULT_TOPICS:
            result = decode_as(self.codec, msg.value(), ConnectorResult)
            self._observe(result)
            settled = snapshot_event(result)
            captures = fees.capture_if_approved(result)
            if captures:
                return to_records(self.codec, captures)
            if settled is not None:
                # A status query or capture answered what a webhook would have said.
                return to_records(self.codec, [Emit(PAYMENT_EVENTS, settled)])
            return to_records(self.codec, fees.order_results(result, self.ctx))
        if topic in ORDER_TOPICS:
            return to_records(self.codec, self._on_order_event(ctx, msg))
        return to_records(self.codec, self._on_invoice_event(ctx, msg))

    def _observe(self, result: ConnectorResult) -> None:
        """Order creations feed each gateway account's health (it steers new requests)."""
        if result.operation != CreatePaymentOrder.OPERATION or result.duplicate:
            return
        latency = result.details.get("latency_ms", "0")
        label = result.context.get("account") or result.provider
        ok = result.status is ResultStatus.DELIVERED or not result.retryable
        self.health.observe(
            label, ok, float(latency) if latency.replace(".", "", 1).isdigit() else 0.0
        )

    def _on_invoice_event(self, ctx: StepContext, msg: Message) -> list[Emit]:
        key = _key(msg)
        invoices = ctx.table(INVOICE_STATES)
        stored = invoices.get(key)
        state = fees.InvoiceState.model_validate(stored) if stored else None
        transition = fees.apply(state, decode_event(self.codec, msg.value()), self.ctx)
        invoices.set(key, transition.state.model_dump(mode="json"))
        return transition.emits

    def _on_order_event(self, ctx: StepContext, msg: Message) -> list[Emit]:
        key = _key(msg)
        links, parked = ctx.table(ORDER_LINK_STATES), ctx.table(PARKED_PAYMENTS)
        event = decode_event(self.codec, msg.value())
        if isinstance(event, PaymentOrderResult):
            link = link_of(event).model_dump()
            links.set(key, link)
            held = [ParkedRecord.model_validate(p) for p in parked.pop(key) or []]
            return [self._match(link, p.source().value) for p in held]
        if not isinstance(event, PaymentEvent):
            raise UnexpectedEventError(f"the order matcher does not take {event.SCHEMA}")
        link = links.get(key)
        if link is not None:
            return [Emit(PAYMENT_MATCHES, matched(OrderLink.model_validate(link), event))]
        held_now = [*(parked.get(key) or []), ParkedRecord.of(source_of(msg), ctx.now).model_dump()]
        parked.set(key, held_now)
        log.info("payment.parked", order_key=key, waiting=len(held_now))
        return []

    def _match(self, link: dict[str, Any], value: bytes | None) -> Emit:
        payment = decode_as(self.codec, value, PaymentEvent)
        return Emit(PAYMENT_MATCHES, matched(OrderLink.model_validate(link), payment))

    def sweep(self, ctx: StepContext) -> list[Record]:
        return self.poll_missed_payments(ctx) + self.dead_letter_unmatched(ctx)

    def poll_missed_payments(self, ctx: StepContext) -> list[Record]:
        """Ask gateways about orders whose webhook has not come (processors.fees.due_polls)."""
        invoices, emits = ctx.table(INVOICE_STATES), []
        for key, stored in invoices.items():
            # Cheap look at the stored dict first: most invoices have nothing to poll,
            # and validating every one each sweep would cost more than the sweep.
            if not stored or stored.get("status") == "PAID" or not stored.get("attempts"):
                continue
            state = fees.InvoiceState.model_validate(stored)
            transition = fees.due_polls(state, ctx.now, self.ctx)
            if transition.emits:
                invoices.set(key, transition.state.model_dump(mode="json"))
                emits += transition.emits
                log.info("payment.status_polled", invoice_key=key, polls=len(transition.emits))
        return to_records(self.codec, emits)

    def dead_letter_unmatched(self, ctx: StepContext) -> list[Record]:
        parked = ctx.table(PARKED_PAYMENTS)
        records = []
        for key, held in parked.items():
            waiting = [ParkedRecord.model_validate(p) for p in held or []]
            if not overdue(waiting, ctx.now, self.grace_seconds):
                continue
            error = UnmatchedPaymentError(
                f"no gateway order {key} was created by the hub within "
                f"{self.grace_seconds / 3600:g} h of this payment"
            )
            for record in waiting:
                source = record.source()
                letter = build_dead_letter(
                    source, Failure(error, retryable=False), stage=NAME, worker=self.worker
                )
                records.append(event_record(self.codec, dlq_topic(NAME), letter, key=source.key))
            parked.delete(key)
        return records


def stage(settings: Settings, tenants: TenantDirectory, codec: Codec) -> Stage:
    reconciler = Reconciler(settings, tenants, codec)
    return Stage(
        NAME,
        (*RESULT_TOPICS, *ORDER_TOPICS, *INVOICE_TOPICS),
        reconciler.step,
        tables=(INVOICE_STATES, ORDER_LINK_STATES, PARKED_PAYMENTS),
        tick=reconciler.sweep,
        # Often enough that a short poll interval (tests, demos) is honoured.
        tick_seconds=min(SWEEP_SECONDS, max(1.0, settings.payment_status_poll_seconds / 4)),
    )
