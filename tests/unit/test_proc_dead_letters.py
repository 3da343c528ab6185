"""core.dead_letters: a record a stage could not process, kept byte for byte with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from proc_support import payment_event

from core.dead_letters import (
    STACK_LIMIT,
    UNKNOWN_TENANT,
    Failure,
    SourceRecord,
    build_dead_letter,
    short_stack,
)
from core.kafka import event_headers
from core.topics import RAW_WEBHOOKS
from processors.normalize import NormalizationError
from schemas.codec import SingleObjectCodec
from schemas.events import DeadLetter, KafkaHeader, decode_event, encode_event

KEY = b"razorpay:greenwood:evt_R4z0rPaY0001"
VALUE = b"\xc3\x01\x8f\x1a\x00\xff poison pill \x80\xfe"
TIMESTAMP_MS = 1_767_225_600_123


def raised(error: BaseException) -> BaseException:
    """The error with a traceback, as a stage catches it."""

    def normalize_the_webhook() -> None:
        raise error

    try:
        normalize_the_webhook()
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")


def source(
    headers: list[tuple[str, bytes | None]] | None = None,
    *,
    key: bytes | None = KEY,
    value: bytes | None = VALUE,
    timestamp_ms: int | None = TIMESTAMP_MS,
) -> SourceRecord:
    return SourceRecord(
        topic=RAW_WEBHOOKS,
        partition=5,
        offset=987_654,
        timestamp_ms=timestamp_ms,
        key=key,
        value=value,
        headers=headers
        if headers is not None
        else [
            ("hub.event_id", b"a1b2c3d4e5f6"),
            ("hub.event_type", b"webhook.received"),
            ("hub.tenant", b"greenwood"),
            ("hub.correlation_id", b"flow-0001"),
            ("x-binary", b"\x00\xff\x10"),
            ("x-none", None),
        ],
    )


def letter(record: SourceRecord | None = None, **kwargs: object) -> DeadLetter:
    failure = kwargs.pop("failure", None) or Failure(
        raised(NormalizationError("payment.captured without payload.payment.entity")),
        retryable=False,
    )
    return build_dead_letter(
        record or source(),
        failure,  # type: ignore[arg-type]
        stage=str(kwargs.pop("stage", "normalizer")),
        worker=str(kwargs.pop("worker", "host-1:4242")),
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_original_record_travels_byte_for_byte() -> None:
    record = source()

    dl = letter(record)

    assert dl.original_topic == RAW_WEBHOOKS
    assert dl.original_partition == 5
    assert dl.original_offset == 987_654
    assert dl.original_key == KEY
    assert dl.original_value == VALUE
    assert [(h.key, h.value) for h in dl.original_headers] == list(record.headers)
    assert dl.original_headers[-1] == KafkaHeader(key="x-none", value=None)
    assert dl.key() == KEY.decode()


def test_none_key_and_value_stay_none() -> None:
    dl = letter(source(key=None, value=None))

    assert dl.original_key is None
    assert dl.original_value is None
    assert dl.key() == ""


def test_tenant_correlation_and_causation_come_from_hub_headers() -> None:
    dl = letter()

    assert dl.header.tenant == "greenwood"
    assert dl.header.correlation_id == "flow-0001"
    assert dl.header.causation_id == "a1b2c3d4e5f6"
    assert dl.header.event_type == DeadLetter.EVENT_TYPE
    assert dl.header.source == "normalizer"
    assert dl.stage == "normalizer"
    assert dl.worker == "host-1:4242"


def test_headers_of_a_real_hub_event_give_its_tenant_and_flow() -> None:
    payment = payment_event(tenant="riverside")
    headers = [(k, v if isinstance(v, bytes) else None) for k, v in event_headers(payment)]

    dl = letter(source(headers))

    assert dl.header.tenant == "riverside"
    assert dl.header.correlation_id == payment.header.correlation_id
    assert dl.header.causation_id == payment.header.event_id


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("tenant", b"greenwood"), ("correlation_id", b"flow-0001")],  # no hub. prefix
        [("hub.tenant", None)],
    ],
    ids=["no headers", "unprefixed", "null tenant"],
)
def test_without_a_hub_tenant_header_the_tenant_is_unknown(
    headers: list[tuple[str, bytes | None]],
) -> None:
    dl = letter(source(headers))

    assert dl.header.tenant == UNKNOWN_TENANT == "unknown"
    assert dl.header.causation_id is None
    # A fresh flow: the dead letter's own id.
    assert dl.header.correlation_id == dl.header.event_id


def test_the_error_class_message_and_stack_are_recorded() -> None:
    dl = letter()

    assert dl.error_class == "NormalizationError"
    assert dl.error_message == "payment.captured without payload.payment.entity"
    assert dl.stack is not None
    assert "normalize_the_webhook" in dl.stack
    assert "NormalizationError: payment.captured without payload.payment.entity" in dl.stack


def test_an_error_without_a_message_is_named_by_its_class() -> None:
    dl = letter(failure=Failure(raised(KeyError()), retryable=False))

    assert dl.error_class == "KeyError"
    assert dl.error_message == "KeyError"


def test_the_stack_is_capped_and_keeps_its_end() -> None:
    error = raised(ValueError("x" * 10_000 + " the end"))

    stack = short_stack(error)

    assert len(stack) <= STACK_LIMIT
    assert stack.rstrip().endswith(" the end")
    assert len(letter(failure=Failure(error, retryable=False)).stack or "") <= STACK_LIMIT


@pytest.mark.parametrize("retryable", [True, False])
def test_the_retryable_flag_is_kept(retryable: bool) -> None:
    dl = letter(failure=Failure(raised(TimeoutError("provider timed out")), retryable=retryable))

    assert dl.retryable is retryable


def test_original_timestamp_is_the_record_time_in_utc() -> None:
    dl = letter()

    assert dl.original_timestamp == datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)


def test_a_record_without_a_timestamp_has_none() -> None:
    assert letter(source(timestamp_ms=None)).original_timestamp is None


def test_first_failure_defaults_to_now_and_equals_the_last() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)

    dl = letter()

    after = datetime.now(UTC) + timedelta(seconds=1)
    assert before <= dl.last_failure_at <= after
    assert dl.first_failure_at == dl.last_failure_at
    assert dl.attempts == 1


def test_an_earlier_first_failure_and_attempts_are_kept() -> None:
    first = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)

    dl = letter(
        failure=Failure(
            raised(ConnectionError("503 from provider")),
            retryable=True,
            attempts=5,
            first_failure_at=first,
        )
    )

    assert dl.first_failure_at == first
    assert dl.last_failure_at > first
    assert dl.attempts == 5
    assert dl.retryable is True


def test_provider_and_idempotency_key_from_arguments_or_headers() -> None:
    headers = [
        ("hub.tenant", b"greenwood"),
        ("hub.provider", b"twilio"),
        ("hub.idempotency_key", b"payment-receipt:pay_1:sms"),
    ]

    from_headers = letter(source(headers))
    explicit = letter(source(headers), provider="sendgrid", idempotency_key="k-2")
    none = letter(source([]))

    assert (from_headers.provider, from_headers.idempotency_key) == (
        "twilio",
        "payment-receipt:pay_1:sms",
    )
    assert (explicit.provider, explicit.idempotency_key) == ("sendgrid", "k-2")
    assert (none.provider, none.idempotency_key) == (None, None)


def test_a_dead_letter_is_a_valid_event_that_round_trips() -> None:
    dl = letter()

    assert DeadLetter.model_validate(dl.model_dump()) == dl
    codec = SingleObjectCodec()
    decoded = decode_event(codec, encode_event(codec, dl))
    assert decoded == dl
    assert isinstance(decoded, DeadLetter)
    assert decoded.original_value == VALUE
