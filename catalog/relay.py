"""The catalog outbox's relay: publish each changed tenant's current snapshot, then forget it.

One relay at a time, across processes: the transaction starts by updating the
single relay_lock row, a write lock in SQLite and a row lock in PostgreSQL
that a second relay waits on. Snapshots are built from the rows as they are
now, inside that transaction, so relays can never publish an older state of a
tenant after a newer one. A crash after producing and before deleting the
outbox rows republishes the same versions next time: harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from catalog.errors import PublishError
from catalog.snapshot import VERSION_HEADER, build_entry
from catalog.store import CatalogStore
from catalog.tables import OutboxRow, RelayLockRow, TenantRow, utcnow
from core.kafka import Headers, Record, event_headers
from core.topics import CATALOG_TENANTS
from schemas.codec import Codec
from schemas.events import encode_event

log = structlog.get_logger(__name__)
_DELETE_CHUNK = 500


def _record(session: Session, codec: Codec, topic: str, tenant_id: str) -> Record:
    """The tenant's current snapshot, or a tombstone (value None) when it is gone."""
    row = session.get(TenantRow, tenant_id)
    key = tenant_id.encode()
    if row is None or row.deleted_at is not None:
        version = row.version if row else 0
        return Record(topic, key, None, [(VERSION_HEADER, str(version).encode())])
    entry = build_entry(session, row)
    headers: Headers = [*event_headers(entry), (VERSION_HEADER, str(row.version).encode())]
    return Record(topic, key, encode_event(codec, entry), headers)


def _produce(producer: Producer, record: Record, failures: list[KafkaError]) -> None:
    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    while True:
        try:
            producer.produce(
                record.topic,
                key=record.key,
                value=record.value,
                headers=record.headers,
                on_delivery=on_delivery,
            )
        except BufferError:
            producer.poll(0.1)  # the local queue is full: let deliveries drain it
        else:
            return


def _forget(session: Session, ids: Sequence[int]) -> None:
    # By id, never "up to the highest id": a PostgreSQL writer may commit a lower
    # id after this relay read the outbox, and that change is still unpublished.
    for start in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[start : start + _DELETE_CHUNK]
        session.execute(delete(OutboxRow).where(OutboxRow.id.in_(chunk)))


def publish_pending(
    store: CatalogStore,
    producer: Producer,
    codec: Codec,
    *,
    timeout: float = 10.0,
    topic: str = CATALOG_TENANTS,
) -> int:
    """Publish every tenant the outbox names; returns how many records were produced.
    Raises PublishError (the outbox keeps its rows) when Kafka does not acknowledge in time."""
    with store.write() as session:
        session.execute(update(RelayLockRow).where(RelayLockRow.id == 1).values(held_at=utcnow()))
        pending = session.execute(select(OutboxRow.id, OutboxRow.tenant_id).order_by(OutboxRow.id))
        ids: list[int] = []
        tenants: dict[str, int] = {}
        for outbox_id, tenant_id in pending:
            ids.append(outbox_id)
            tenants.setdefault(tenant_id, outbox_id)
        if not ids:
            return 0
        failures: list[KafkaError] = []
        for tenant_id in tenants:
            _produce(producer, _record(session, codec, topic, tenant_id), failures)
        unsent = producer.flush(timeout)
        if unsent or failures:
            # Nothing of this attempt may land after a later relay's newer snapshot.
            producer.purge(in_queue=True, in_flight=True)
            producer.poll(0)
            reason = f"{unsent} of {len(tenants)} unacknowledged" if unsent else str(failures[0])
            raise PublishError(f"Kafka did not take the catalog snapshots ({reason})")
        _forget(session, ids)
    log.info("catalog published", tenants=len(tenants), outbox_rows=len(ids), topic=topic)
    return len(tenants)
