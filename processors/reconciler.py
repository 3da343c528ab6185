"""Reconciler stage: invoices, gateway orders and payments -> invoice PAID and notifications.

Three agents, each reading only topics keyed like its own table:

- order results (connector.<gateway>.results.v1, stateless): the gateway's
  answer becomes a PaymentOrderResult for the fee module, and an order link
  re-keyed by order id for the matcher.
- order matcher (order links + payment events, keyed <tenant>:<order id>):
  re-keys each payment to its invoice, parking payments whose order is not
  known yet.
- invoice ledger (invoices, payment requests, order results, matched payments,
  keyed <tenant>:<invoice id>): the invoice's state machine (processors.fees).
"""

from __future__ import annotations

import time
from typing import Any

import faust
import structlog

from hub.settings import Settings
from hub.tenants import TenantDirectory
from hub.topics import (
    INVOICES,
    ORDER_LINKS,
    PAYMENT_EVENTS,
    PAYMENT_MATCHES,
    PAYMENT_ORDERS,
    PAYMENT_REQUESTS,
    PROCESSOR_TABLES,
    results_topic,
)
from processors import fees
from processors.emit import Emit
from processors.matching import (
    OrderLink,
    ParkedRecord,
    UnmatchedPaymentError,
    link_of,
    matched,
    overdue,
)
from processors.stage import Stage, source_record
from schemas.events import (
    ConnectorResult,
    PaymentEvent,
    PaymentOrderResult,
    UnexpectedEventError,
    decode_as,
    decode_event,
)

log = structlog.get_logger("processors.reconciler")

GATEWAYS = ("razorpay",)


def register(app: faust.App, stage: Stage, settings: Settings, tenants: TenantDirectory) -> None:
    parked_grace_seconds = settings.unmatched_payment_grace_hours * 3600
    ctx = fees.FeeContext(tenants, settings.payment_url_template, settings.receipt_url_template)
    partitions = settings.topic_partitions
    _, invoices_name, links_name, parked_name = PROCESSOR_TABLES
    invoices = app.Table(invoices_name, default=None, partitions=partitions, use_partitioner=True)
    links = app.Table(links_name, default=None, partitions=partitions, use_partitioner=True)
    parked = app.Table(parked_name, default=None, partitions=partitions, use_partitioner=True)

    async def on_result(value: bytes | None) -> list[Emit]:
        return fees.order_results(decode_as(stage.codec, value, ConnectorResult), ctx)

    async def on_invoice_event(key: str, value: bytes | None) -> list[Emit]:
        event = decode_event(stage.codec, value)
        stored = invoices.get(key)
        state = fees.InvoiceState.model_validate(stored) if stored else None
        transition = fees.apply(state, event, ctx)
        invoices[key] = transition.state.model_dump(mode="json")
        return transition.emits

    async def on_order_event(key: str, message: Any) -> list[Emit]:
        event = decode_event(stage.codec, message.value)
        if isinstance(event, PaymentOrderResult):
            links[key] = link_of(event).model_dump()
            held = [ParkedRecord.model_validate(p) for p in parked.pop(key, None) or []]
            return [
                _match(links[key], decode_as(stage.codec, p.source().value, PaymentEvent))
                for p in held
            ]
        if not isinstance(event, PaymentEvent):
            raise UnexpectedEventError(f"the order matcher does not take {event.SCHEMA}")
        payment = event
        link = links.get(key)
        if link is None:
            held_now = [
                *(parked.get(key) or []),
                ParkedRecord.of(source_record(message), time.time()).model_dump(),
            ]
            parked[key] = held_now
            log.info("payment.parked", order_key=key, waiting=len(held_now))
            return []
        return [_match(link, payment)]

    def _match(link: dict[str, Any], payment: PaymentEvent) -> Emit:
        return Emit(PAYMENT_MATCHES, matched(OrderLink.model_validate(link), payment))

    @app.agent(stage.topic(*(results_topic(g) for g in GATEWAYS)), name="order-results")
    async def order_results(stream: Any) -> None:
        async for event in stream.events():
            await stage.process(event.message, on_result(event.value))

    @app.agent(stage.topic(ORDER_LINKS, PAYMENT_EVENTS), name="order-matcher")
    async def order_matcher(stream: Any) -> None:
        async for event in stream.events():
            await stage.process(event.message, on_order_event(event.key.decode(), event.message))

    @app.agent(
        stage.topic(INVOICES, PAYMENT_REQUESTS, PAYMENT_ORDERS, PAYMENT_MATCHES),
        name="invoice-ledger",
    )
    async def invoice_ledger(stream: Any) -> None:
        async for event in stream.events():
            await stage.process(event.message, on_invoice_event(event.key.decode(), event.value))

    @app.timer(interval=60.0)
    async def dead_letter_unmatched() -> None:
        now = time.time()
        for key, held in list(parked.items()):
            records = [ParkedRecord.model_validate(p) for p in held or []]
            if not overdue(records, now, parked_grace_seconds):
                continue
            for record in records:
                await stage.dead_letter(
                    record.source(),
                    UnmatchedPaymentError(
                        f"no gateway order {key} was created by the hub within "
                        f"{parked_grace_seconds / 3600:g} h of this payment"
                    ),
                )
            del parked[key]
