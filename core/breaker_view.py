"""Every worker's view of the fleet's circuit breakers, followed from hub.breakers.v1.

A daemon thread reads the compacted topic whole at start, then follows it
(like the catalog view): within a second of the keeper writing a breaker's new
state, every process that holds this view sees it. `FleetBreakers` is what a
connector worker asks before a call, and what it tells after one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import orjson
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from core.breaker import (
    Admission,
    BreakerConfig,
    BreakerState,
    CallOutcome,
    Probe,
    ProbeRequest,
    admit,
)
from core.kafka import Record, client_config, consume_batch
from core.settings import Settings
from core.topics import BREAKER_EVENTS, BREAKERS

log = structlog.get_logger("breakers")

LOAD_TIMEOUT = 60.0


class BreakerView:
    """Account -> its breaker's newest state, as the keeper wrote it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._states: dict[str, BreakerState] = {}
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings, timeout: float = LOAD_TIMEOUT) -> BreakerView:
        view = cls(settings)
        view._thread = threading.Thread(target=view._run, name="breaker-view", daemon=True)
        view._thread.start()
        if not view._loaded.wait(timeout):
            log.warning("breakers.view_not_loaded", timeout=timeout)  # closed until it is
        return view

    def get(self, account: str) -> BreakerState | None:
        return self._states.get(account)

    def states(self) -> list[BreakerState]:
        return sorted(self._states.values(), key=lambda s: s.account)

    def put(self, state: BreakerState) -> None:
        """Apply one state record (the follower does; tests may too)."""
        self._states[state.account] = state

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._follow()
        except Exception:  # the view keeps its last states; breakers stay as they were
            log.exception("breakers.view_failed")
            self._loaded.set()

    def _follow(self) -> None:
        consumer = Consumer(
            {
                **client_config(self.settings),
                "group.id": f"hub-breaker-view-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            metadata = consumer.list_topics(BREAKERS, timeout=LOAD_TIMEOUT).topics[BREAKERS]
            partitions = sorted(metadata.partitions)
            ends = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(BREAKERS, p), timeout=LOAD_TIMEOUT
                )
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(BREAKERS, p, OFFSET_BEGINNING) for p in partitions])
            if not ends:
                self._loaded.set()
            while not self._stop.is_set():
                for msg in consume_batch(consumer, 500, 0.1):
                    self._handle(msg, ends)
        finally:
            consumer.close()

    def _handle(self, msg: Message, ends: dict[int, int]) -> None:
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                partition = msg.partition() or 0
                if (msg.offset() or 0) >= ends.get(partition, 0):
                    ends.pop(partition, None)
                    if not ends:
                        self._loaded.set()
                return
            log.warning("breakers.consume_error", error=error.str())
            time.sleep(0.2)
            return
        value = msg.value()
        if value is None:
            self._states.pop((msg.key() or b"").decode(), None)
            return
        try:
            state = BreakerState.model_validate(orjson.loads(value))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            log.error("breakers.undecodable", offset=msg.offset(), error=str(exc))
            return
        previous = self._states.get(state.account)
        self._states[state.account] = state
        if previous is None or previous.phase is not state.phase:
            log.info(
                "breaker.changed", account=state.account, phase=state.phase, reason=state.reason
            )


def event_record(event: CallOutcome | ProbeRequest) -> Record:
    return Record(BREAKER_EVENTS, event.account.encode(), orjson.dumps(event.model_dump()), [])


class FleetBreakers:
    """One worker's use of the shared breakers: ask before a call, tell after it."""

    def __init__(
        self,
        view: BreakerView,
        worker: str,
        config: BreakerConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.view = view
        self.worker = worker
        self.config = config
        self.clock = clock
        self._probes: dict[tuple[str, int], int] = {}  # (account, epoch) -> probes made

    def admit(self, account: str) -> Admission:
        state = self.view.get(account)
        epoch = state.epoch if state is not None else 0
        used = self._probes.get((account, epoch), 0)
        decision = admit(
            state, worker=self.worker, now=self.clock(), probes_used=used, config=self.config
        )
        if isinstance(decision, Probe):
            self._probes[(account, epoch)] = used + 1
        return decision

    def outcome(self, account: str, ok: bool, admission: Admission, error: str = "") -> Record:
        probe = admission.epoch if isinstance(admission, Probe) else None
        event = CallOutcome(
            account=account,
            ok=ok,
            at=self.clock(),
            worker=self.worker,
            probe_epoch=probe,
            error=error[:200],
        )
        return event_record(event)
