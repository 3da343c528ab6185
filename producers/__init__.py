"""The hub's producer library: typed, Avro-encoded, keyed, idempotent publishing."""

from producers.producer import EventProducer, PublishError

__all__ = ["EventProducer", "PublishError"]
