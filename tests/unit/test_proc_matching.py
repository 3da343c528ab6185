"""processors.matching: order links, re-keying payments to invoices, parked records."""

from __future__ import annotations

import json

import pytest
from proc_support import (
    INVOICE_ID,
    ORDER_ID,
    TENANT,
    connector_result,
    fee_context,
    invoice,
    payment_event,
    payment_requested,
)

from core.dead_letters import SourceRecord
from core.kafka import event_headers
from core.topics import ORDER_LINKS, PAYMENT_EVENTS
from processors.fees import apply, order_results
from processors.matching import OrderLink, ParkedRecord, link_of, matched, overdue
from schemas.events import ConnectorCommand, PaymentEventKind, PaymentMatched, PaymentOrderResult

REQUEST_ID = "9f1c2b7e4d5a4e0f8a6b3c2d1e0f9a8b"
T0 = 1_767_225_600.0
GRACE = 24 * 3600.0


def created_order() -> PaymentOrderResult:
    ctx = fee_context()
    inv = invoice()
    t = apply(apply(None, inv, ctx).state, payment_requested(inv, request_id=REQUEST_ID), ctx)
    command = t.emits[0].event
    assert isinstance(command, ConnectorCommand)
    link = next(e for e in order_results(connector_result(command), ctx) if e.topic == ORDER_LINKS)
    assert isinstance(link.event, PaymentOrderResult)
    return link.event


def record(
    *,
    key: bytes | None = b"greenwood:order_Q1w2E3r4T5y6U7",
    value: bytes | None = b"\x00\x01\xff\xfe binary avro \x80",
    headers: list[tuple[str, bytes | None]] | None = None,
    timestamp_ms: int | None = 1_767_225_600_123,
) -> SourceRecord:
    return SourceRecord(
        topic=PAYMENT_EVENTS,
        partition=3,
        offset=41_273,
        timestamp_ms=timestamp_ms,
        key=key,
        value=value,
        headers=headers if headers is not None else [("hub.tenant", b"greenwood")],
    )


# --- links and matches -------------------------------------------------------


def test_link_of_carries_the_invoice_request_and_flow_of_the_order() -> None:
    order = created_order()

    link = link_of(order)

    assert link == OrderLink(
        invoice_id=INVOICE_ID,
        request_id=REQUEST_ID,
        correlation_id=order.header.correlation_id,
    )


def test_an_order_link_survives_the_table_round_trip() -> None:
    link = link_of(created_order())

    assert OrderLink.model_validate(json.loads(json.dumps(link.model_dump()))) == link


def test_matched_rekeys_the_payment_to_its_invoice_in_the_invoice_flow() -> None:
    order = created_order()
    link = link_of(order)
    payment = payment_event(PaymentEventKind.CAPTURED)
    assert payment.header.correlation_id != link.correlation_id

    match = matched(link, payment)

    assert isinstance(match, PaymentMatched)
    assert match.invoice_id == INVOICE_ID
    assert match.request_id == REQUEST_ID
    assert match.payment == payment
    assert match.header.correlation_id == link.correlation_id
    assert match.header.causation_id == payment.header.event_id
    assert match.header.tenant == TENANT
    assert match.header.event_type == PaymentMatched.EVENT_TYPE
    assert match.header.source == "reconciler"
    assert match.key() == f"{TENANT}:{INVOICE_ID}"
    assert payment.key() == f"{TENANT}:{ORDER_ID}"


def test_matched_uses_the_payment_tenant() -> None:
    link = OrderLink(invoice_id="INV-7", request_id="r7", correlation_id="flow-7")
    payment = payment_event(tenant="riverside")

    match = matched(link, payment)

    assert match.header.tenant == "riverside"
    assert match.key() == "riverside:INV-7"


def test_each_match_is_a_new_event() -> None:
    link = link_of(created_order())
    payment = payment_event()

    first, second = matched(link, payment), matched(link, payment)

    assert first.header.event_id != second.header.event_id
    assert first.header.correlation_id == second.header.correlation_id


# --- parked records ------------------------------------------------------------


def test_a_parked_record_gives_back_the_exact_record() -> None:
    original = record(
        headers=[
            ("hub.event_id", b"0123456789abcdef"),
            ("hub.tenant", b"greenwood"),
            ("hub.empty", b""),
            ("hub.none", None),
            ("binary", bytes(range(256))),
            ("hub.tenant", b"duplicate keys are kept too"),
        ]
    )

    parked = ParkedRecord.of(original, T0)

    assert parked.parked_at == T0
    assert parked.source() == original
    back = parked.source()
    assert back.key == original.key
    assert back.value == original.value
    assert list(back.headers) == list(original.headers)


@pytest.mark.parametrize(
    ("key", "value"),
    [(None, None), (b"", b""), (None, b"\x00"), (b"\xff\xfe\x00", None)],
    ids=repr,
)
def test_none_and_empty_keys_and_values_stay_as_they_were(
    key: bytes | None, value: bytes | None
) -> None:
    original = record(key=key, value=value, headers=[], timestamp_ms=None)

    back = ParkedRecord.of(original, T0).source()

    assert back.key == key
    assert back.value == value
    assert back.timestamp_ms is None
    assert list(back.headers) == []


def test_a_parked_record_survives_the_table_json_round_trip() -> None:
    payment = payment_event()
    original = record(
        value=b"\x00" + payment.model_dump_json().encode() + b"\xff",
        headers=[(k, v if isinstance(v, bytes) else None) for k, v in event_headers(payment)]
        + [("hub.null", None)],
    )
    parked = ParkedRecord.of(original, T0)

    stored = json.loads(json.dumps(parked.model_dump()))
    loaded = ParkedRecord.model_validate(stored)

    assert loaded == parked
    assert loaded.source() == original


def test_a_parked_record_keeps_where_it_came_from() -> None:
    original = record()

    parked = ParkedRecord.of(original, T0)

    assert (parked.topic, parked.partition, parked.offset) == (PAYMENT_EVENTS, 3, 41_273)
    assert parked.timestamp_ms == 1_767_225_600_123
    # Stored as text: the state table is JSON.
    assert isinstance(parked.key, str)
    assert isinstance(parked.value, str)


# --- grace period --------------------------------------------------------------


def parked_at(*times: float) -> list[ParkedRecord]:
    return [ParkedRecord.of(record(), t) for t in times]


def test_nothing_parked_is_never_overdue() -> None:
    assert overdue([], T0 + 10 * GRACE, GRACE) is False


@pytest.mark.parametrize(
    ("age", "is_overdue"),
    [(0.0, False), (GRACE - 0.001, False), (GRACE, True), (GRACE + 1, True)],
)
def test_overdue_at_the_grace_boundary(age: float, is_overdue: bool) -> None:
    assert overdue(parked_at(T0), T0 + age, GRACE) is is_overdue


def test_overdue_counts_from_the_oldest_parked_record() -> None:
    held = parked_at(T0 + 3600, T0, T0 + 7200)

    assert overdue(held, T0 + GRACE, GRACE) is True
    assert overdue(held, T0 + GRACE - 1, GRACE) is False
