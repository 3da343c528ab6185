"""The rules every exactly-once loop shares: retry, abort and redo, or stop."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from core import transactions
from core.kafka import FatalConsumerError, consume_error
from core.ports import free_port
from core.transactions import (
    FatalTransactionError,
    TransactionHungError,
    Transactor,
    is_fatal,
)


@pytest.mark.parametrize(
    "code", [KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH]
)
def test_a_fenced_producer_is_fatal(code: int) -> None:
    assert is_fatal(KafkaException(KafkaError(code)))


def test_an_error_librdkafka_calls_fatal_is_fatal() -> None:
    assert is_fatal(KafkaException(KafkaError(KafkaError._STATE, fatal=True)))


@pytest.mark.parametrize(
    "error",
    [
        KafkaError(KafkaError._TIMED_OUT, retriable=True),
        KafkaError(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True),
    ],
)
def test_retriable_and_abortable_errors_are_not_fatal(error: KafkaError) -> None:
    assert not is_fatal(KafkaException(error))


def test_an_exception_without_a_kafka_error_is_not_fatal() -> None:
    assert not is_fatal(KafkaException("no error object"))


def test_a_transactor_needs_a_transactional_id() -> None:
    with pytest.raises(ValueError, match=r"transactional\.id"):
        Transactor({"bootstrap.servers": "127.0.0.1:1"})


def test_no_broker_to_start_transactions_with_is_a_clear_fatal_error() -> None:
    config = {
        "bootstrap.servers": f"127.0.0.1:{free_port()}",
        "transactional.id": "hub-test",
        "log_level": 0,
    }
    tx = Transactor(config, timeout=1.0)
    with pytest.raises(FatalTransactionError, match="hub-test"):
        tx.init()


class FakeMessage:
    def __init__(self, error: KafkaError | None) -> None:
        self._error = error

    def error(self) -> KafkaError | None:
        return self._error


def test_a_fatal_consumer_error_ends_the_loop_instead_of_being_logged_forever() -> None:
    fenced = KafkaError(KafkaError.FENCED_INSTANCE_ID, fatal=True)
    with pytest.raises(FatalConsumerError):
        consume_error(FakeMessage(fenced))  # type: ignore[arg-type]


def test_librdkafkas_fatal_event_ends_the_loop_even_without_the_fatal_flag() -> None:
    event = KafkaError(KafkaError._FATAL, "Fatal error: static consumer fenced")
    assert not event.fatal()  # as it arrives on a consumed message
    with pytest.raises(FatalConsumerError, match="fenced"):
        consume_error(FakeMessage(event))  # type: ignore[arg-type]


def test_other_consumer_errors_and_records_pass_through() -> None:
    eof = KafkaError(KafkaError._PARTITION_EOF)
    error = consume_error(FakeMessage(eof))  # type: ignore[arg-type]
    assert error is not None
    assert error.code() == KafkaError._PARTITION_EOF
    assert consume_error(FakeMessage(None)) is None  # type: ignore[arg-type]


class HangingProducer:
    """send_offsets_to_transaction blocking past its timeout (librdkafka#5456)."""

    def __init__(self, hang: float) -> None:
        self.hang = hang
        self.calls: list[str] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, *_args: object) -> None:
        self.calls.append("offsets")
        time.sleep(self.hang)

    def commit_transaction(self, *_args: object) -> None:
        self.calls.append("commit")


def test_a_transaction_hung_past_every_timeout_ends_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended: list[BaseException] = []
    monkeypatch.setattr(transactions, "die", ended.append)
    tx = Transactor({"bootstrap.servers": "127.0.0.1:1", "transactional.id": "hub-hang"})
    tx.producer = HangingProducer(hang=1.0)  # type: ignore[assignment]
    tx.hang_after = 0.2
    tx.run(lambda: None, [TopicPartition("t", 0, 5)], object())
    assert len(ended) == 1 and isinstance(ended[0], TransactionHungError)
    assert "hub-hang" in str(ended[0])


def test_a_transaction_that_finishes_in_time_ends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[BaseException] = []
    monkeypatch.setattr(transactions, "die", ended.append)
    tx = Transactor({"bootstrap.servers": "127.0.0.1:1", "transactional.id": "hub-ok"})
    producer = HangingProducer(hang=0.0)
    tx.producer = producer  # type: ignore[assignment]
    tx.hang_after = 0.5
    tx.run(lambda: None, [TopicPartition("t", 0, 5)], object())
    time.sleep(0.7)  # past the watchdog's time: it was cancelled
    assert ended == []
    assert producer.calls == ["begin", "offsets", "commit"]
