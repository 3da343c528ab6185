"""The hub's producer library: typed, Avro-encoded, keyed, idempotent publishing, and the
transactional outbox for modules that must publish exactly what their database commits."""

from producers.bulk import bulk_parts
from producers.outbox import OutboxError, install_outbox, outbox, outbox_row, write_event
from producers.producer import EventProducer, PublishError

__all__ = [
    "EventProducer",
    "OutboxError",
    "PublishError",
    "bulk_parts",
    "install_outbox",
    "outbox",
    "outbox_row",
    "write_event",
]
