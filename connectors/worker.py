"""The connector worker's Kafka loop: one per provider, consuming its command topic.

Per batch, in this order (the order is the at-least-once guarantee):
1. execute every command: one key's commands in order, different keys concurrently;
2. produce one result per command (and a dead letter per undecodable record);
3. flush until every one of those is acknowledged;
4. only then commit the batch's offsets.
A crash anywhere before 4 redelivers the batch; the idempotency ledger (and
the provider's own key, where it has one) keeps redelivered commands from
being sent twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import httpx
import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from connectors.executor import CommandExecutor
from connectors.ledger import Ledger
from connectors.outcomes import OutcomeContext, records_for
from connectors.registry import adapter
from connectors.restore import restore_results
from connectors.retry import RetryPolicy
from hub.dead_letters import Failure, build_dead_letter, source_of, worker_id
from hub.kafka import (
    Record,
    consume_batch,
    consumer_config,
    event_record,
    next_offsets,
    producer_config,
)
from hub.settings import Settings
from hub.tenants import TenantDirectory
from hub.topics import (
    commands_topic,
    connector_group,
    connector_stage,
    dlq_topic,
    results_topic,
)
from schemas.codec import Codec, DecodeError
from schemas.events import ConnectorCommand, decode_as

log = structlog.get_logger("connectors")


class ConnectorWorker:
    def __init__(
        self, provider: str, settings: Settings, tenants: TenantDirectory, codec: Codec
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.tenants = tenants
        self.codec = codec
        self.stage = connector_stage(provider)
        self.ledger = Ledger()
        self.worker = worker_id()
        self.outcomes = OutcomeContext(codec, provider, self.worker, settings.tiers_for(provider))

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        restored = self.ledger.remember_all(
            restore_results(self.settings, results_topic(self.provider), numbers, self.codec)
        )
        log.info(
            "ledger.restored",
            provider=self.provider,
            partitions=numbers,
            results=restored,
            delivered_keys=len(self.ledger),
        )

    async def run(self, stop: asyncio.Event) -> None:
        consumer = Consumer(
            consumer_config(
                self.settings, connector_group(self.provider), **{"max.poll.interval.ms": 600_000}
            )
        )
        producer = Producer(producer_config(self.settings, self.stage))
        consumer.subscribe([commands_topic(self.provider)], on_assign=self._on_assign)
        timeout = httpx.Timeout(
            self.settings.http_read_timeout, connect=self.settings.http_connect_timeout
        )
        limits = httpx.Limits(max_connections=self.settings.connector_concurrency)
        log.info("connector.started", provider=self.provider)
        try:
            async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
                executor = CommandExecutor(
                    adapter(self.provider),
                    settings=self.settings,
                    base_url=getattr(self.settings, f"{self.provider}_base_url"),
                    tenants=self.tenants,
                    http=http,
                    policy=RetryPolicy.from_settings(self.settings),
                    ledger=self.ledger,
                    sleep=asyncio.sleep,
                )
                while not stop.is_set():
                    await self._cycle(consumer, producer, executor)
        finally:
            consumer.close()
            producer.flush(10)
            log.info("connector.stopped", provider=self.provider)

    async def _cycle(
        self, consumer: Consumer, producer: Producer, executor: CommandExecutor
    ) -> None:
        batch = await asyncio.to_thread(
            consume_batch, consumer, self.settings.connector_batch_size, 0.5
        )
        messages = [m for m in batch if not _log_error(m)]
        if not messages:
            return
        records = await self._process(messages, executor)
        await _publish(producer, records)
        consumer.commit(offsets=next_offsets(messages), asynchronous=False)

    async def _process(self, messages: list[Message], executor: CommandExecutor) -> list[Record]:
        by_key: dict[bytes | None, list[Message]] = defaultdict(list)
        for msg in messages:
            by_key[msg.key()].append(msg)
        gate = asyncio.Semaphore(self.settings.connector_concurrency)

        async def one_key(group: list[Message]) -> list[Record]:
            async with gate:
                return [r for msg in group for r in await self._handle(msg, executor)]

        groups = await asyncio.gather(*(one_key(g) for g in by_key.values()))
        return [record for group in groups for record in group]

    async def _handle(self, msg: Message, executor: CommandExecutor) -> list[Record]:
        source = source_of(msg)
        try:
            command = decode_as(self.codec, msg.value(), ConnectorCommand)
        except DecodeError as exc:
            letter = build_dead_letter(
                source,
                Failure(exc, retryable=False),
                stage=self.stage,
                worker=self.worker,
                provider=self.provider,
            )
            log.warning(
                "record.dead_lettered",
                stage=self.stage,
                error=str(exc),
                offset=msg.offset(),
                partition=msg.partition(),
            )
            return [event_record(self.codec, dlq_topic(self.stage), letter, key=msg.key())]
        structlog.contextvars.bind_contextvars(
            tenant=command.header.tenant,
            correlation_id=command.header.correlation_id,
            provider=self.provider,
            idempotency_key=command.idempotency_key,
        )
        result = await executor.execute(command)
        records = records_for(command, result, source, self.outcomes, int(time.time() * 1000))
        if records[0].topic != results_topic(self.provider):
            log.info("command.retry_scheduled", topic=records[0].topic)
        elif len(records) > 1:
            log.warning(
                "command.dead_lettered", retryable=result.retryable, error=result.error_message
            )
        return records


def _log_error(msg: Message) -> bool:
    error = msg.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("kafka.consume_error", error=str(error))
    return True


async def _publish(producer: Producer, records: list[Record]) -> None:
    """Produce every record and wait until all are acknowledged, retrying failures."""
    pending = records
    while pending:
        failed: list[Record] = []
        for record in pending:

            def on_delivery(
                err: KafkaError | None,
                _msg: Message,
                record: Record = record,
                failed: list[Record] = failed,
            ) -> None:
                if err is not None:
                    failed.append(record)

            producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                on_delivery=on_delivery,
            )
        await asyncio.to_thread(producer.flush)
        if failed:
            log.error("kafka.results_not_acknowledged", count=len(failed))
            await asyncio.sleep(1.0)
        pending = failed
