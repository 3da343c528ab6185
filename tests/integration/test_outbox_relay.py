"""The transactional outbox end to end: ERP transaction -> WAL -> Debezium's router -> topic.

The fee module writes the invoice row and its events in one transaction; the
relay (the outbox connector of `hub cdc source`) publishes exactly what was
committed, keyed and partitioned as EventProducer would have, and nothing of a
transaction that rolled back. A relay killed mid-stream loses no event; what it
sends again carries the same event id, and the ledger downstream acts once.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable

import pytest
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from core.kafka import admin_config, as_header_list, event_headers, producer_config, read_to_end
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import INVOICES, PAYMENT_ORDERS, PAYMENT_REQUESTS
from hub import erp
from hub.local_postgres import LocalPostgres
from hub.stack import HubStack
from producers import OutboxError, write_event
from schemas.codec import SingleObjectCodec
from schemas.events import (
    Contact,
    EventHeader,
    Invoice,
    PaymentOrderResult,
    PaymentRequested,
    decode_event,
)

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

TENANT = "greenwood"
STUDENT = erp.SEED_STUDENTS[0]  # invoices reference students; the seed is always there
CODEC = SingleObjectCodec()


def fee_events() -> tuple[Invoice, PaymentRequested]:
    tag = secrets.token_hex(4).upper()
    invoice = Invoice(
        header=EventHeader.new(Invoice.EVENT_TYPE, TENANT, source="fee-module-test"),
        invoice_id=f"INV-OBX-{tag}",
        student_id=STUDENT["id"],
        student_name=STUDENT["name"],
        description="Term 1 fees",
        amount_minor=50_000_00,
        parent=Contact(name="Mrs. Sharma", phone=f"+9198{secrets.randbelow(10**8):08d}"),
    )
    request = PaymentRequested(
        header=invoice.header.caused(PaymentRequested.EVENT_TYPE, source="fee-module-test"),
        invoice_id=invoice.invoice_id,
        student_id=invoice.student_id,
        student_name=invoice.student_name,
        description=invoice.description,
        amount_minor=invoice.amount_minor,
        parent=invoice.parent,
    )
    return invoice, request


def invoice_row(invoice: Invoice, student_id: str) -> dict[str, object]:
    return {
        "id": invoice.invoice_id,
        "student_id": student_id,
        "description": invoice.description,
        "amount_minor": invoice.amount_minor,
    }


def event_id_of(msg: Message) -> str | None:
    value = dict(as_header_list(msg.headers())).get("hub.event_id")
    return value.decode() if value is not None else None


def wait_relayed(
    settings: Settings, topic: str, event_ids: Iterable[str], timeout: float = 30
) -> list[Message]:
    """Every record of `topic` that carries one of `event_ids`, once all of them arrived."""
    wanted = set(event_ids)
    deadline = time.monotonic() + timeout
    while True:
        found = [
            m
            for m in read_to_end(settings, topic)
            if event_id_of(m) in wanted  # the topic has other tests' records too
        ]
        missing = wanted - {event_id_of(m) for m in found}
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} event(s) never reached {topic}")
        time.sleep(0.5)


def hub_partitions(settings: Settings, keys: list[str], partitions: int) -> dict[str, int]:
    """Where the hub's own producers (EventProducer's config) put each key."""
    topic = f"test.outbox-partitioning.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    chosen: dict[str, int] = {}
    producer = Producer(producer_config(settings, "test-outbox-partitioning"))
    try:
        for key in keys:

            def on_delivery(err: object, msg: Message, key: str = key) -> None:
                assert err is None, err
                chosen[key] = msg.partition() or 0

            producer.produce(topic, b"", key=key, on_delivery=on_delivery)
        producer.flush(30)
    finally:
        admin.delete_topics([topic])
    return chosen


def partitions_of(settings: Settings, topic: str) -> int:
    admin = AdminClient(admin_config(settings))
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def test_an_invoice_and_its_event_committed_together_reach_the_topic_as_a_hub_event(
    hub_settings: Settings, postgres: LocalPostgres, stack: HubStack
) -> None:
    engine = erp.engine_for(hub_settings.source_dsn)
    invoice, _ = fee_events()
    erp.issue_invoice(engine, invoice)  # the invoice row and the Invoice event, one transaction

    [record] = wait_relayed(hub_settings, INVOICES, [invoice.header.event_id])
    assert record.key() == invoice.key().encode()
    headers = as_header_list(record.headers())
    assert [h for h in headers if h[0].startswith("hub.")] == event_headers(invoice)
    # Debezium's own header: the row id, which is the event id as a UUID.
    assert dict(headers)["id"] == str(uuid.UUID(invoice.header.event_id)).encode()
    assert decode_event(CODEC, record.value()) == invoice
    # The same partition EventProducer would have chosen for this key.
    placed = hub_partitions(hub_settings, [invoice.key()], partitions_of(hub_settings, INVOICES))
    assert record.partition() == placed[invoice.key()]
    with engine.connect() as conn:
        saved = conn.execute(
            select(erp.invoices.c.amount_minor).where(erp.invoices.c.id == invoice.invoice_id)
        ).scalar_one()
    assert saved == invoice.amount_minor


def test_a_transaction_that_rolls_back_publishes_nothing(
    hub_settings: Settings, postgres: LocalPostgres, stack: HubStack
) -> None:
    engine = erp.engine_for(hub_settings.source_dsn)
    abandoned, _ = fee_events()
    refused, _ = fee_events()
    marker, _ = fee_events()
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(insert(erp.invoices), [invoice_row(abandoned, STUDENT["id"])])
        write_event(conn, abandoned)
        transaction.rollback()
    # The event is written first; the invoice then fails (no such student): all rolls back.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        write_event(conn, refused)
        conn.execute(insert(erp.invoices), [invoice_row(refused, "NO-SUCH-STUDENT")])
    # Without a transaction each statement would commit alone: refused.
    autocommitting = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    with autocommitting.connect() as conn, pytest.raises(OutboxError, match="AUTOCOMMIT"):
        write_event(conn, abandoned)
    # A later commit that arrives proves the relay has read past both transactions.
    erp.issue_invoice(engine, marker)
    wait_relayed(hub_settings, INVOICES, [marker.header.event_id])
    seen = {event_id_of(m) for m in read_to_end(hub_settings, INVOICES)}
    assert abandoned.header.event_id not in seen
    assert refused.header.event_id not in seen


def test_a_relay_killed_mid_stream_loses_no_event_and_the_ledger_acts_once(
    hub_settings: Settings, postgres: LocalPostgres, stack: HubStack
) -> None:
    engine = erp.engine_for(hub_settings.source_dsn)
    source = stack.supervisor.services["cdc-source"]
    restarts = source.restarts
    flows = [fee_events() for _ in range(50)]
    with TopicWatcher(hub_settings, [PAYMENT_ORDERS]) as watch:
        for n, (invoice, request) in enumerate(flows):
            erp.issue_invoice(engine, invoice, request)  # one transaction per invoice
            if n == 20:
                assert source.proc is not None
                source.proc.kill()  # SIGKILL: offsets of what it just sent are not flushed
            time.sleep(0.05)
        invoices = wait_relayed(
            hub_settings, INVOICES, [i.header.event_id for i, _ in flows], timeout=120
        )
        requests = wait_relayed(
            hub_settings, PAYMENT_REQUESTS, [r.header.event_id for _, r in flows], timeout=30
        )
        assert source.restarts == restarts + 1

        # None lost; a record sent again after the restart is the same event, byte for byte.
        expected = {i.header.event_id: i for i, _ in flows}
        for record in invoices:
            assert decode_event(CODEC, record.value()) == expected[event_id_of(record)]
        assert {event_id_of(m) for m in requests} == {r.header.event_id for _, r in flows}
        # Every key on the partition the hub's producers use (murmur2), crash or not.
        keys = [i.key() for i, _ in flows]
        placed = hub_partitions(hub_settings, keys, partitions_of(hub_settings, INVOICES))
        assert all(m.partition() == placed[(m.key() or b"").decode()] for m in invoices)

        # Downstream the invoice ledger acts once per request, repeats or not.
        ids = {r.request_id for _, r in flows}
        watch.wait_for(PaymentOrderResult, lambda o: o.request_id in ids, count=50, timeout=120)
        watch.settle(3.0)
        orders = watch.find(PaymentOrderResult, lambda o: o.request_id in ids)
    assert sorted(o.request_id for o in orders) == sorted(ids)
