"""A connector's transactions: intents before calls, outcomes and offsets after them.

The worker hands over what it decided — an intent (about to call the
provider), or a finished record (its result, tier record or dead letter, and
its ledger entries) — and the committer puts everything pending into one
Kafka transaction, with each partition's offset as far as its records are
finished. What is not committed yet is kept in an overlay the ledger reads
first, so a key's next command already sees the outcome of the last.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from connectors import ledger
from connectors.ledger_store import LedgerStore
from connectors.progress import PartitionProgress
from hub.kafka import Record
from hub.transactions import TransactionAbortedError, Transactor


@dataclass
class Finished:
    partition: int
    offset: int
    records: list[Record]
    writes: list[ledger.LedgerWrite]


@dataclass
class Intent:
    write: ledger.LedgerWrite
    committed: asyncio.Future[None]


class Commits:
    def __init__(
        self, tx: Transactor, consumer: Consumer, store: LedgerStore, topic: str, ledger_topic: str
    ) -> None:
        self.tx = tx
        self.consumer = consumer
        self.store = store
        self.topic = topic
        self.ledger_topic = ledger_topic
        self.progress: dict[int, PartitionProgress] = {}
        self.committed: dict[int, int] = {}
        self.intents: list[Intent] = []
        self.finished: list[Finished] = []
        self.overlay: dict[tuple[int, str], dict[str, Any]] = {}
        self.wake = asyncio.Event()

    # --- what the worker hands over -------------------------------------------

    def take(self, partition: int, offset: int) -> None:
        self.progress.setdefault(partition, PartitionProgress()).take(offset)

    def read(self, partition: int, key: str) -> dict[str, Any] | None:
        value = self.overlay.get((partition, key))
        return value if value is not None else self.store.get(partition, key)

    async def intent(self, write: ledger.LedgerWrite) -> None:
        """Returns once the intent is committed: only then may the provider be called."""
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.overlay[(write.partition, write.key)] = write.value
        self.intents.append(Intent(write, committed))
        self.wake.set()
        await committed

    def finish(
        self, partition: int, offset: int, records: list[Record], writes: list[ledger.LedgerWrite]
    ) -> None:
        for write in writes:
            self.overlay[(write.partition, write.key)] = write.value
        self.finished.append(Finished(partition, offset, records, writes))
        self.wake.set()

    # --- the transaction --------------------------------------------------------

    def commit_now(self) -> None:
        owned = set(self.progress)
        intents = [i for i in self.intents if i.write.partition in owned]
        finished = [f for f in self.finished if f.partition in owned]
        self.intents, self.finished = [], []
        if not intents and not finished:
            return
        offsets = self._offsets_with(finished)
        records = [ledger.ledger_record(self.ledger_topic, i.write) for i in intents]
        for item in finished:
            records += item.records
            records += [ledger.ledger_record(self.ledger_topic, w) for w in item.writes]
        ledger_offsets: dict[int, int] = {}

        def delivered(err: KafkaError | None, msg: Message) -> None:
            # The offsets of our own ledger records: the local store's checkpoint.
            if err is None and msg.topic() == self.ledger_topic:
                partition = msg.partition() or 0
                ledger_offsets[partition] = max(
                    ledger_offsets.get(partition, 0), (msg.offset() or 0) + 1
                )

        def produce() -> None:
            for record in records:
                self.tx.produce(record, on_delivery=delivered)

        metadata = self.consumer.consumer_group_metadata() if offsets else None
        try:
            self.tx.run(produce, offsets, metadata)
        except TransactionAbortedError:
            # Nothing of it is visible: the same outcomes and intents go again.
            self.intents = intents + self.intents
            self.finished = finished + self.finished
            self.wake.set()
            return
        self._committed(intents, finished, offsets, ledger_offsets)

    def _offsets_with(self, finished: list[Finished]) -> list[TopicPartition]:
        finishing: dict[int, set[int]] = {}
        for item in finished:
            finishing.setdefault(item.partition, set()).add(item.offset)
        offsets = []
        for partition, progress in self.progress.items():
            offset = progress.committable_with(finishing.get(partition, set()))
            if offset is not None and offset > self.committed.get(partition, -1):
                offsets.append(TopicPartition(self.topic, partition, offset))
        return offsets

    def _committed(
        self,
        intents: list[Intent],
        finished: list[Finished],
        offsets: list[TopicPartition],
        ledger_offsets: dict[int, int],
    ) -> None:
        for intent in intents:
            if not intent.committed.done():
                intent.committed.set_result(None)
        for item in finished:
            self.progress[item.partition].finish(item.offset)
        for tp in offsets:
            self.committed[tp.partition] = tp.offset
        writes = [i.write for i in intents] + [w for f in finished for w in f.writes]
        self.store.apply(writes, ledger_offsets)
        for write in writes:
            slot = (write.partition, write.key)
            if self.overlay.get(slot) is write.value:
                del self.overlay[slot]

    # --- partitions coming and going --------------------------------------------

    def assigned(self, partition: int) -> None:
        self.progress[partition] = PartitionProgress()

    def drop_intents(self, partitions: set[int]) -> None:
        """Intents of partitions no longer ours: their calls will never be made here."""
        for intent in self.intents:
            if intent.write.partition in partitions:
                intent.committed.cancel()
        self.intents = [i for i in self.intents if i.write.partition not in partitions]

    def drop_finished(self, partitions: set[int]) -> None:
        self.finished = [f for f in self.finished if f.partition not in partitions]

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.progress.pop(partition, None)
            self.committed.pop(partition, None)
        self.overlay = {k: v for k, v in self.overlay.items() if k[0] not in partitions}

    def in_flight(self) -> dict[int, int]:
        return {p: progress.in_flight for p, progress in self.progress.items()}
