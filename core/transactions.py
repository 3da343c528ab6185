"""Kafka transactions: what every exactly-once loop of the hub shares.

A transaction holds a batch's outputs, its state changes and (for a consumer)
its input offsets; it commits all of them or none. What can go wrong falls in
three kinds, and each has one answer:

- retriable (a commit that timed out, a coordinator moving): ask again;
- abortable (a produce failed inside the transaction): abort, and the caller
  re-reads the batch from its last committed offsets (`TransactionAbortedError`);
- fatal (this producer was fenced by a newer one with the same transactional
  id, or its epoch is gone): nothing this process does can be committed any
  more, so it stops and its supervisor starts a fresh one
  (`FatalTransactionError`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from core.kafka import Record

log = structlog.get_logger("core.transactions")

COMMIT_ATTEMPTS = 3
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class TransactionAbortedError(Exception):
    """The transaction was aborted: nothing of it is visible; redo the batch."""


class FatalTransactionError(RuntimeError):
    """The producer can no longer commit (fenced, or its state is lost): restart."""


class TransactionHungError(FatalTransactionError):
    """A transactional call blocked far past its own timeout."""


EXIT_FATAL = 70  # EX_SOFTWARE: the supervisor restarts the process


def die(error: BaseException) -> NoReturn:
    """Crash-only: a Kafka client that can no longer work ends its process at once.

    Its supervisor starts a fresh one, which aborts whatever transaction this one
    left open and takes its place in the group — exactly what a SIGKILL leads to,
    a path the fault suite proves safe. Closing a fenced consumer gracefully instead
    can block forever (it tries to leave a group it is no longer in).
    """
    log.error("process.fatal_kafka_error", error=str(error), error_class=type(error).__name__)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_FATAL)


def kafka_error(exc: BaseException) -> KafkaError | None:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else None


def is_fatal(exc: BaseException) -> bool:
    error = kafka_error(exc)
    return error is not None and (
        error.fatal()
        or error.code()
        in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
    )


class Transactor:
    """One transactional producer and the rules above.

    `transactional.id` must be stable across restarts of the same instance:
    `init()` then aborts whatever the previous incarnation left open at once,
    instead of every read_committed consumer waiting for it to time out.
    """

    def __init__(self, config: dict[str, Any], *, timeout: float = 10.0) -> None:
        if "transactional.id" not in config:
            raise ValueError("a Transactor needs a transactional.id")
        self.transactional_id = str(config["transactional.id"])
        self.producer = Producer(config)
        self.timeout = timeout
        # librdkafka's send_offsets_to_transaction can block forever when the group
        # coordinator went away (a broker restart), whatever its timeout
        # (confluentinc/librdkafka#5456, #5511). Past every legitimate wait of a
        # call, the process ends and its supervisor starts one that fences this
        # producer's transaction.
        self.hang_after = timeout + 5

    def init(self) -> None:
        # A coordinator that is still loading its transaction log (a fresh cluster, a
        # restarted broker) answers NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS, which
        # librdkafka hands back as retriable: ask again until the deadline, as its docs say.
        deadline = time.monotonic() + self.timeout * 3
        while True:
            try:
                self.producer.init_transactions(self.timeout)
            except KafkaException as exc:
                if not (exc.args[0].retriable() and time.monotonic() < deadline):
                    raise FatalTransactionError(
                        f"cannot start transactions as {self.transactional_id!r}: {exc}"
                    ) from exc
                log.info("transactions.init_retry", transactional_id=self.transactional_id)
                time.sleep(0.2)
            else:
                return

    def produce(self, record: Record, on_delivery: DeliveryCallback | None = None) -> None:
        """Delivery callbacks run inside the commit (it flushes), with the offsets."""
        kwargs: dict[str, Any] = {"key": record.key, "value": record.value}
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        if record.headers:
            kwargs["headers"] = record.headers
        if record.partition is not None:
            kwargs["partition"] = record.partition
        self.producer.produce(record.topic, **kwargs)

    def run(
        self,
        produce: Callable[[], None],
        offsets: Sequence[TopicPartition] = (),
        group_metadata: Any = None,
    ) -> None:
        """begin → produce() → offsets → commit; raises one of the two errors above."""
        try:
            self.producer.begin_transaction()
            produce()
            if offsets:
                with self._watchdog("send_offsets_to_transaction", self.hang_after):
                    self.producer.send_offsets_to_transaction(
                        list(offsets), group_metadata, self.timeout
                    )
            with self._watchdog("commit_transaction", self.hang_after * COMMIT_ATTEMPTS):
                self._commit()
        except (KafkaException, BufferError) as exc:
            self._give_up_or_abort(exc)
        except BaseException:
            # Not Kafka's doing (a step's bug, Ctrl-C): leave nothing open behind.
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(self.timeout)
            raise

    @contextlib.contextmanager
    def _watchdog(self, call: str, seconds: float) -> Iterator[None]:
        hung = TransactionHungError(
            f"{call} of {self.transactional_id!r} hung for {seconds:g}s (timeout {self.timeout:g}s)"
        )
        timer = threading.Timer(seconds, die, args=(hung,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _commit(self) -> None:
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self.producer.commit_transaction(self.timeout)
            except KafkaException as exc:
                error = kafka_error(exc)
                if error is None or not error.retriable() or attempt == COMMIT_ATTEMPTS:
                    raise
                log.warning("transaction.commit_retry", attempt=attempt, error=str(error))
                time.sleep(min(2.0, 0.1 * 2**attempt))
            else:
                return

    def _give_up_or_abort(self, exc: BaseException) -> None:
        if is_fatal(exc):
            raise FatalTransactionError(
                f"transactional id {self.transactional_id!r} can no longer commit ({exc}); "
                "another instance with the same HUB_INSTANCE_ID may be running"
            ) from exc
        log.warning("transaction.aborting", error=str(exc))
        try:
            with self._watchdog("abort_transaction", self.hang_after):
                self.producer.abort_transaction(self.timeout)
        except KafkaException as abort_exc:
            raise FatalTransactionError(f"abort failed after {exc}: {abort_exc}") from abort_exc
        raise TransactionAbortedError(str(exc)) from exc

    def flush(self, timeout: float = 10.0) -> int:
        return int(self.producer.flush(timeout))
