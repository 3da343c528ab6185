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
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from connectors import ledger
from connectors.ledger_store import LedgerStore
from connectors.progress import PartitionProgress
from core.kafka import Record
from core.transactions import TransactionAbortedError, Transactor


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


@dataclass
class Batch:
    """One transaction's worth: prepared on the loop, run anywhere, settled on the loop."""

    intents: list[Intent]
    finished: list[Finished]
    offsets: list[TopicPartition]
    records: list[Record]
    metadata: Any
    ledger_offsets: dict[int, int] = field(default_factory=dict)


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
        # One transaction at a time on the producer: the loop's (in a thread) and a
        # rebalance callback's (on the loop thread) take turns.
        self._tx_lock = threading.Lock()

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
        """Commit what is pending, here and now (a rebalance callback, the drain)."""
        batch = self.prepare()
        if batch is not None:
            self.settle(batch, self.execute(batch))

    async def commit(self) -> None:
        """Commit what is pending without blocking the event loop: the transaction runs
        in a thread, so the worker keeps polling (and its group membership alive) even
        while the broker is away and a commit takes its whole timeout."""
        batch = self.prepare()
        if batch is not None:
            self.settle(batch, await asyncio.to_thread(self.execute, batch))

    def prepare(self) -> Batch | None:
        owned = set(self.progress)
        intents = [i for i in self.intents if i.write.partition in owned]
        finished = [f for f in self.finished if f.partition in owned]
        self.intents, self.finished = [], []
        if not intents and not finished:
            return None
        offsets = self._offsets_with(finished)
        records = [ledger.ledger_record(self.ledger_topic, i.write) for i in intents]
        for item in finished:
            records += item.records
            records += [ledger.ledger_record(self.ledger_topic, w) for w in item.writes]
        metadata = self.consumer.consumer_group_metadata() if offsets else None
        return Batch(intents, finished, offsets, records, metadata)

    def execute(self, batch: Batch) -> bool:
        """The transaction; True when committed. Safe from any thread: one at a time."""

        def delivered(err: KafkaError | None, msg: Message) -> None:
            # The offsets of our own ledger records: the local store's checkpoint.
            if err is None and msg.topic() == self.ledger_topic:
                partition = msg.partition() or 0
                batch.ledger_offsets[partition] = max(
                    batch.ledger_offsets.get(partition, 0), (msg.offset() or 0) + 1
                )

        def produce() -> None:
            for record in batch.records:
                self.tx.produce(record, on_delivery=delivered)

        with self._tx_lock:
            try:
                self.tx.run(produce, batch.offsets, batch.metadata)
            except TransactionAbortedError:
                return False
        return True

    def settle(self, batch: Batch, committed: bool) -> None:
        if not committed:
            # Nothing of it is visible: the same outcomes and intents go again.
            self.intents = batch.intents + self.intents
            self.finished = batch.finished + self.finished
            self.wake.set()
            return
        self._committed(batch)

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

    def _committed(self, batch: Batch) -> None:
        for intent in batch.intents:
            if not intent.committed.done():
                intent.committed.set_result(None)
        for item in batch.finished:
            # A partition revoked while this batch was in flight is no longer tracked.
            if item.partition in self.progress:
                self.progress[item.partition].finish(item.offset)
        for tp in batch.offsets:
            if tp.partition in self.progress:
                self.committed[tp.partition] = max(self.committed.get(tp.partition, -1), tp.offset)
        writes = [i.write for i in batch.intents] + [w for f in batch.finished for w in f.writes]
        self.store.apply(writes, batch.ledger_offsets)
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
