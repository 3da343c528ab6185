"""Subscribe to the hub's sync streams: the latest state of every student, and each change.

    python examples/subscribe_sync_streams.py            # from the beginning, until Ctrl-C
    python examples/subscribe_sync_streams.py --entity guardians

Records are Avro (single-object encoding: C3 01 + the writer schema's
fingerprint); the schemas are schemas/avro/com.integrationhub.EntityState.avsc
and .EntityChange.avsc. A null value on a state topic is a tombstone: the
row was deleted.
"""

from __future__ import annotations

import argparse
import json
import uuid

from confluent_kafka import Consumer

from core.kafka import client_config
from core.settings import Settings
from core.topics import changes_topic, state_topic
from schemas.codec import make_codec
from schemas.events import EntityChange, EntityState, decode_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", default="students", help="table: students, guardians, invoices")
    args = parser.parse_args()
    settings = Settings()
    codec = make_codec(settings.schema_registry_url)
    source = settings.cdc_source_name
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"example-data-team-{uuid.uuid4().hex[:6]}",  # use a stable id in real life
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # the CDC consumer writes in transactions
        }
    )
    consumer.subscribe([state_topic(source, args.entity), changes_topic(source, args.entity)])
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            key = (msg.key() or b"").decode()
            if msg.value() is None:
                print(f"DELETED  {key}")
                continue
            event = decode_event(codec, msg.value())
            if isinstance(event, EntityState):
                print(f"STATE    {key} {json.dumps(event.attributes, default=str)}")
            elif isinstance(event, EntityChange):
                fields = ", ".join(f"{c.field}: {c.old!r} -> {c.new!r}" for c in event.changes)
                print(f"{event.op:<8} {key} lsn={event.source.lsn} {fields}")
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
