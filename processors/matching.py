"""Match payment events (keyed by gateway order) to invoices. Pure.

A payment event names only the gateway's order id; the order matcher keeps
order id -> invoice (learned from the order-created results) and re-keys each
payment to its invoice. A payment that arrives before its order is known is
parked, with the exact record it came in, and matched when the order link
arrives; if none arrives within the grace period it becomes a dead letter
("no invoice for this order"), so an operator can find and replay it.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel

from core.dead_letters import SourceRecord
from schemas.events import EventHeader, PaymentEvent, PaymentMatched, PaymentOrderResult

SOURCE = "reconciler"


class OrderLink(BaseModel):
    invoice_id: str
    request_id: str
    correlation_id: str


class ParkedRecord(BaseModel):
    """A record held back until it can be processed, kept byte for byte."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    value: str | None  # base64
    headers: list[tuple[str, str | None]]
    parked_at: float

    @classmethod
    def of(cls, record: SourceRecord, now: float) -> ParkedRecord:
        def b64(data: bytes | None) -> str | None:
            return None if data is None else base64.b64encode(data).decode()

        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            key=b64(record.key),
            value=b64(record.value),
            headers=[(k, b64(v)) for k, v in record.headers],
            parked_at=now,
        )

    def source(self) -> SourceRecord:
        def raw(data: str | None) -> bytes | None:
            return None if data is None else base64.b64decode(data)

        return SourceRecord(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            timestamp_ms=self.timestamp_ms,
            key=raw(self.key),
            value=raw(self.value),
            headers=[(k, raw(v)) for k, v in self.headers],
        )


class UnmatchedPaymentError(LookupError):
    """No gateway order known for this payment within the grace period."""


def link_of(order: PaymentOrderResult) -> OrderLink:
    return OrderLink(
        invoice_id=order.invoice_id,
        request_id=order.request_id,
        correlation_id=order.header.correlation_id,
    )


def matched(link: OrderLink, payment: PaymentEvent) -> PaymentMatched:
    header = EventHeader.new(
        PaymentMatched.EVENT_TYPE,
        payment.header.tenant,
        source=SOURCE,
        correlation_id=link.correlation_id,
        causation_id=payment.header.event_id,
    )
    return PaymentMatched(
        header=header, invoice_id=link.invoice_id, request_id=link.request_id, payment=payment
    )


def overdue(parked: list[ParkedRecord], now: float, grace_seconds: float) -> bool:
    return bool(parked) and now - min(p.parked_at for p in parked) >= grace_seconds
