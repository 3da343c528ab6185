"""The connector worker: one per provider, consuming its command topic.

For each command record — one key's records in order, different keys at once
(up to HUB_CONNECTOR_CONCURRENCY calls) — in this order:
1. the ledger decides (connectors.ledger): skip a record already carried out,
   answer a duplicate, supersede an outdated command, ask the provider about
   an attempt in doubt, or send;
2. before a send, its intent is committed to the ledger;
3. the call, with in-process retries (connectors.executor);
4. its outcome — the result, or the command to a retry tier, or a dead
   letter, plus its ledger entry — commits in one transaction together with
   the partition's offset, as far as every earlier record is finished.
A worker killed anywhere leaves either no trace of a command (it is sent
when it comes back) or an intent (the provider is asked first, where it can
be) or its outcome (skipped when it comes back): never a second send the
hub could have prevented, never a lost command.

The worker never stops polling: a partition with too many records in flight
is paused instead, so a slow provider holds up only its own keys and never
gets the worker evicted from its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

import providers
from connectors import ledger
from connectors.commits import Commits
from connectors.executor import (
    CommandExecutor,
    duplicate_of,
    found,
    in_doubt_failure,
    superseded,
)
from connectors.guard import BreakerGuard
from connectors.ledger_store import LedgerStore
from connectors.outcomes import OutcomeContext, records_for
from connectors.registry import adapter
from connectors.restore import catch_up
from connectors.retry import RetryPolicy
from core.audit import KafkaAuditSink
from core.dead_letters import Failure, build_dead_letter, source_of, worker_id
from core.guarded_http import DestinationGuard
from core.kafka import (
    FatalConsumerError,
    Record,
    consume_error,
    consumer_config,
    event_record,
    transactional_config,
)
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import (
    LEDGER_RETENTION_DAYS,
    commands_topic,
    connector_group,
    connector_stage,
    dlq_topic,
    ledger_topic,
)
from core.transactions import FatalTransactionError, Transactor, die
from providers.base import RetryLater
from providers.lookup import Found
from providers.smtp_transport import smtp_mounts
from schemas.codec import Codec, DecodeError
from schemas.events import ConnectorCommand, ConnectorResult, decode_as

log = structlog.get_logger("connectors")

IDLE_POLL_SECONDS = 0.01
COMMIT_LINGER_SECONDS = 0.002  # gather what finishes together into one transaction
DRAIN_SECONDS = 10.0
EXPIRE_EVERY_SECONDS = 3600.0
TRANSACTION_TIMEOUT_MS = 15_000


@dataclass
class Lane:
    """One key's records of one partition, carried out one after the other."""

    queue: deque[Message] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class ConnectorWorker:
    def __init__(
        self, provider: str, settings: Settings, tenants: TenantDirectory, codec: Codec
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.tenants = tenants
        self.codec = codec
        self.stage = connector_stage(provider)
        self.group = connector_group(provider)
        self.topic = commands_topic(provider)
        self.ledger_topic = ledger_topic(provider)
        self.worker = worker_id()
        self.outcomes = OutcomeContext(codec, provider, self.worker, settings.tiers_for(provider))
        self.consumer = Consumer(
            consumer_config(
                settings,
                self.group,
                static=True,
                # Only moved partitions pause on a rebalance, not all of them.
                **{"partition.assignment.strategy": "cooperative-sticky"},
            )
        )
        self.tx = Transactor(
            transactional_config(
                settings,
                self.stage,
                f"{self.group}-{settings.instance_id}",
                timeout_ms=TRANSACTION_TIMEOUT_MS,
                **{"linger.ms": 1},
            )
        )
        self.commits: Commits | None = None
        self.executor: CommandExecutor | None = None
        self.guard = BreakerGuard(provider, settings, tenants, self.worker)
        self.paused: set[int] = set()
        self.restoring: set[int] = set()  # assigned, paused until their ledger is current
        self.restores: set[asyncio.Task[None]] = set()
        self.lanes: dict[tuple[int, bytes | None], Lane] = {}
        # Calls in flight per tenant: one school's slow provider account takes up
        # its own share, never every connection of the worker.
        self.gates: dict[str, asyncio.Semaphore] = {}

    # --- lifecycle ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.tx.init()
        cluster = self.consumer.list_topics(timeout=30).cluster_id or "unknown"
        path = self.settings.home / "state" / f"{self.group}-{self.settings.instance_id}.sqlite"
        store = LedgerStore(path, cluster)
        self.commits = Commits(self.tx, self.consumer, store, self.topic, self.ledger_topic)
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        timeout = httpx.Timeout(
            self.settings.http_read_timeout, connect=self.settings.http_connect_timeout
        )
        limits = httpx.Limits(max_connections=self.settings.connector_concurrency * 4)
        self.guard.start()
        log.info("connector.started", provider=self.provider, ledger=str(path))
        audit = KafkaAuditSink(self.settings, self.codec, client_id=f"{self.stage}-audit")
        # Email over SMTP travels as smtp:// requests (providers.smtp_transport).
        mounts = smtp_mounts(guard=DestinationGuard.from_settings(self.settings))
        async with httpx.AsyncClient(timeout=timeout, limits=limits, mounts=mounts) as http:
            self.executor = CommandExecutor(
                adapter(self.provider),
                settings=self.settings,
                base_url=providers.base_url(self.settings, self.provider),
                tenants=self.tenants,
                http=http,
                policy=RetryPolicy.from_settings(self.settings),
                audit=audit,
            )
            committer = asyncio.create_task(self._commit_loop(), name=f"commit-{self.provider}")
            try:
                await self._serve(stop, committer)
                await self._drain(committer)
            except (FatalConsumerError, FatalTransactionError) as exc:
                die(exc)  # crash-only: closing a fenced client can block the whole loop
            finally:
                committer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await committer
            self.consumer.close()  # revokes: what finished is committed first
            store.close()
            audit.close()
            self.guard.close()
            log.info("connector.stopped", provider=self.provider)

    async def _serve(self, stop: asyncio.Event, committer: asyncio.Task[None]) -> None:
        while not stop.is_set():
            if committer.done():
                committer.result()  # a fatal transaction error ends the worker
            taken = self._poll()
            await asyncio.sleep(0 if taken else IDLE_POLL_SECONDS)

    async def _drain(self, committer: asyncio.Task[None]) -> None:
        """Stopping: let the commands in hand finish (bounded), then commit them."""
        running = [lane.task for lane in self.lanes.values() if lane.task is not None]
        if running and not committer.done():
            await asyncio.wait(running, timeout=DRAIN_SECONDS)
        self._commits.commit_now()

    # --- polling and lanes ------------------------------------------------------

    def _poll(self) -> int:
        messages = self.consumer.consume(self.settings.connector_batch_size, 0)
        taken = 0
        for msg in messages:
            error = consume_error(msg)
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka.consume_error", error=str(error))
                continue
            self._dispatch(msg)
            taken += 1
        self._apply_backpressure()
        return taken

    @property
    def _commits(self) -> Commits:
        assert self.commits is not None, "the worker is not running"
        return self.commits

    def _dispatch(self, msg: Message) -> None:
        partition = msg.partition() or 0
        self._commits.take(partition, msg.offset() or 0)
        key = (partition, msg.key())
        lane = self.lanes.setdefault(key, Lane())
        lane.queue.append(msg)
        if lane.task is None:
            lane.task = asyncio.create_task(self._run_lane(key, lane))

    async def _run_lane(self, key: tuple[int, bytes | None], lane: Lane) -> None:
        while lane.queue:
            msg = lane.queue[0]
            try:
                await self._handle(msg)
            except Exception as exc:  # a command the worker cannot carry out must not stop its key
                log.exception("command.failed_unexpectedly", offset=msg.offset())
                self._commits.finish(
                    msg.partition() or 0, msg.offset() or 0, [self._undecodable(msg, exc)], []
                )
            lane.queue.popleft()
        if self.lanes.get(key) is lane:
            del self.lanes[key]

    def _apply_backpressure(self) -> None:
        limit = self.settings.connector_batch_size
        for partition, in_flight in self._commits.in_flight().items():
            tp = [TopicPartition(self.topic, partition)]
            if partition not in self.paused and in_flight >= limit:
                self.consumer.pause(tp)
                self.paused.add(partition)
            elif partition in self.paused and in_flight <= limit // 2:
                self.consumer.resume(tp)
                self.paused.discard(partition)

    # --- one command ----------------------------------------------------------

    async def _handle(self, msg: Message) -> None:
        partition, offset = msg.partition() or 0, msg.offset() or 0
        try:
            command = decode_as(self.codec, msg.value(), ConnectorCommand)
        except DecodeError as exc:
            self._commits.finish(partition, offset, [self._undecodable(msg, exc)], [])
            return
        structlog.contextvars.bind_contextvars(
            tenant=command.header.tenant,
            correlation_id=command.header.correlation_id,
            provider=self.provider,
            idempotency_key=command.idempotency_key,
        )
        assert self.executor is not None
        mark = self._mark(partition, command)
        decision = ledger.decide(
            self._entry(partition, ledger.entry_key(command)),
            mark,
            command,
            partition,
            offset,
            can_look_up=self.executor.can_look_up,
        )
        now = int(time.time() * 1000)
        extra: list[Record] = []
        if isinstance(decision, ledger.Skip):
            log.info("command.already_carried_out", offset=offset)
            self._commits.finish(partition, offset, [], [])
            return
        if isinstance(decision, ledger.AnswerDuplicate):
            result = duplicate_of(command, decision.earlier)
            log.info("command.duplicate_skipped", provider_ref=result.provider_ref)
            writes = ledger.outcome(
                command, decision.earlier, partition, offset, now_ms=now, mark=None
            )
        elif isinstance(decision, ledger.Supersede):
            result = superseded(command, decision.newer_version)
            log.info("command.superseded", newer=decision.newer_version)
            writes = ledger.outcome(command, result, partition, offset, now_ms=now, mark=mark)
        else:
            result, extra = await self._guarded(command, partition, offset, decision)
            done = int(time.time() * 1000)
            writes = ledger.outcome(command, result, partition, offset, now_ms=done, mark=mark)
        records = records_for(command, result, source_of(msg), self.outcomes, now)
        self._commits.finish(partition, offset, [*records, *extra], writes)

    async def _guarded(
        self,
        command: ConnectorCommand,
        partition: int,
        offset: int,
        decision: ledger.LookUp | ledger.Send,
    ) -> tuple[ConnectorResult, list[Record]]:
        in_doubt = isinstance(decision, ledger.LookUp) or decision.in_doubt
        return await self.guard.call(
            command, in_doubt, lambda: self._carry_out(command, partition, offset, decision)
        )

    async def _carry_out(
        self,
        command: ConnectorCommand,
        partition: int,
        offset: int,
        decision: ledger.LookUp | ledger.Send,
    ) -> ConnectorResult:
        assert self.executor is not None
        tenant = command.header.tenant
        gate = self.gates.setdefault(tenant, asyncio.Semaphore(self.settings.connector_concurrency))
        async with gate:
            if isinstance(decision, ledger.LookUp):
                checked = await self.executor.look_up(command, decision.since_ms)
                if isinstance(checked, Found):
                    log.info("command.found_at_provider", provider_ref=checked.provider_ref)
                    return found(command, checked)
                if isinstance(checked, RetryLater):
                    # Cannot tell whether it happened: sending could send twice.
                    reason = f"in doubt: {checked.reason}"
                    return in_doubt_failure(command, reason, decision.since_ms)
                log.info("command.not_found_at_provider")
            elif decision.in_doubt:
                # The provider dedupes it (a key), or doing it twice is doing it once.
                log.warning("command.resent_in_doubt")
            await self._commits.intent(
                ledger.intent(command, partition, offset, int(time.time() * 1000))
            )
            return await self.executor.attempt(command)

    def _entry(self, partition: int, key: str) -> ledger.LedgerEntry | None:
        value = self._commits.read(partition, key)
        return None if value is None else ledger.LedgerEntry.model_validate(value)

    def _mark(self, partition: int, command: ConnectorCommand) -> ledger.OrderMark | None:
        key = ledger.mark_key(command)
        value = None if key is None else self._commits.read(partition, key)
        return None if value is None else ledger.OrderMark.model_validate(value)

    def _undecodable(self, msg: Message, exc: Exception) -> Record:
        """The dead letter of a record that cannot be carried out at all."""
        letter = build_dead_letter(
            source_of(msg),
            Failure(exc, retryable=False),
            stage=self.stage,
            worker=self.worker,
            provider=self.provider,
        )
        log.warning("record.dead_lettered", stage=self.stage, error=str(exc), offset=msg.offset())
        return event_record(self.codec, dlq_topic(self.stage), letter, key=msg.key())

    # --- transactions ---------------------------------------------------------

    async def _commit_loop(self) -> None:
        commits = self._commits
        next_expiry = time.monotonic() + EXPIRE_EVERY_SECONDS
        while True:
            await commits.wake.wait()
            commits.wake.clear()
            await asyncio.sleep(COMMIT_LINGER_SECONDS)
            await commits.commit()
            if time.monotonic() >= next_expiry:
                next_expiry = time.monotonic() + EXPIRE_EVERY_SECONDS
                horizon = int(time.time() * 1000) - LEDGER_RETENTION_DAYS * 86_400_000
                log.info("ledger.expired", entries=commits.store.expire(horizon))

    # --- rebalances -------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Catching a partition's ledger up can take a while (a new machine reads it
        # all): not inside the rebalance, which it would stall and could outlast
        # max.poll.interval.ms. The partitions start paused and resume once their
        # ledger is current; polling goes on meanwhile.
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)
        self.restoring |= {tp.partition for tp in partitions}
        task = asyncio.get_running_loop().create_task(self._restore(partitions))
        self.restores.add(task)
        task.add_done_callback(self.restores.discard)

    async def _restore(self, partitions: list[TopicPartition]) -> None:
        commits = self._commits
        started = time.monotonic()
        for tp in partitions:
            if tp.partition not in self.restoring:
                continue  # revoked while it waited
            read = await asyncio.to_thread(
                catch_up, self.settings, commits.store, self.ledger_topic, tp.partition
            )
            if tp.partition not in self.restoring:
                continue
            self.restoring.discard(tp.partition)
            commits.assigned(tp.partition)
            self.consumer.resume([tp])
            log.info(
                "ledger.caught_up",
                partition=tp.partition,
                records_read=read,
                entries=commits.store.count(tp.partition),
            )
        log.info(
            "partitions.assigned",
            partitions=[tp.partition for tp in partitions],
            ms=round((time.monotonic() - started) * 1000),
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self._stop_lanes(revoked)
        self._commits.commit_now()  # what finished, while the partitions are still ours
        self._forget(revoked)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # No longer ours: nothing of them may be committed any more.
        lost = {tp.partition for tp in partitions}
        self._stop_lanes(lost)
        self._commits.drop_finished(lost)
        self._forget(lost)

    def _stop_lanes(self, partitions: set[int]) -> None:
        for key, lane in list(self.lanes.items()):
            if key[0] in partitions:
                if lane.task is not None:
                    lane.task.cancel()
                del self.lanes[key]
        self._commits.drop_intents(partitions)

    def _forget(self, partitions: set[int]) -> None:
        self._commits.forget(partitions)
        self.paused -= partitions
        self.restoring -= partitions
        log.info("partitions.revoked", partitions=sorted(partitions))
