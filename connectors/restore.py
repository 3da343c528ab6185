"""Rebuild the idempotency ledger: read a results topic's partitions to their end."""

from __future__ import annotations

from collections.abc import Iterator

from hub.kafka import read_to_end
from hub.settings import Settings
from schemas.codec import Codec, DecodeError
from schemas.events import ConnectorResult, decode_as


def restore_results(
    settings: Settings, topic: str, partitions: list[int], codec: Codec
) -> Iterator[ConnectorResult]:
    for msg in read_to_end(settings, topic, partitions):
        try:
            yield decode_as(codec, msg.value(), ConnectorResult)
        except DecodeError:
            continue
