"""The audit trail of every provider call and every webhook, on hub.audit.v1.

Builders are pure: they mask (core.masking) the URL, headers and bodies of one
HTTP exchange and return the record. The Kafka sink hands records to an
idempotent producer without ever blocking the caller, or failing it: a call
that succeeded must not turn into a failure because its audit record could
not be written (a full local queue drops the record, and says so in the log).
`read_audit` reads the topic back, filtered, for `hub audit list` and the API.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from core.kafka import client_config, high_watermarks, producer_config, read_to_end
from core.masking import MASKER, mask_body, mask_headers, mask_text, mask_url
from core.settings import Settings
from core.topics import AUDIT
from schemas.codec import Codec, DecodeError, make_codec
from schemas.events import (
    AuditDirection,
    AuditOutcome,
    EventHeader,
    ProviderCallAudit,
    decode_as,
    encode_event,
)

log = structlog.get_logger("audit")

RETRYABLE_STATUSES = frozenset({408, 425, 429})
FLUSH_SECONDS = 5.0


def _millis(when: datetime) -> datetime:
    # Avro timestamp-millis keeps milliseconds: truncate so a decoded record equals its original.
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange as it happened, before masking. `status` None: no answer."""

    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int | None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: bytes | None = None
    duration_ms: float = 0.0
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def request_type(self) -> str | None:
        return _header(self.request_headers, "content-type")

    @property
    def response_type(self) -> str | None:
        return _header(self.response_headers, "content-type")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _content(message: httpx.Request | httpx.Response) -> bytes:
    try:
        return message.content
    except (httpx.RequestNotRead, httpx.ResponseNotRead):
        return b"<streamed body not recorded>"


def exchange_from_httpx(
    request: httpx.Request, response: httpx.Response | None, duration_ms: float, at: datetime
) -> Exchange:
    """The exchange an httpx send made; the request as sent (auth applied) when answered."""
    sent = response.request if response is not None else request
    return Exchange(
        method=sent.method,
        url=str(sent.url),
        request_headers=dict(sent.headers),
        request_body=_content(sent),
        status=None if response is None else response.status_code,
        response_headers={} if response is None else dict(response.headers),
        response_body=None if response is None else _content(response),
        duration_ms=duration_ms,
        at=at,
    )


def outcome_of_status(status: int | None) -> AuditOutcome:
    """For calls no adapter classifies (lookups): what their HTTP status says."""
    if status is None:
        return AuditOutcome.ERROR
    if 200 <= status < 300:
        return AuditOutcome.DELIVERED
    if status in RETRYABLE_STATUSES or status >= 500:
        return AuditOutcome.RETRY
    return AuditOutcome.REJECTED


@dataclass(frozen=True)
class Party:
    """Whose exchange it was: tenant, provider, account, and where the record comes from."""

    header: EventHeader
    provider: str
    account: str | None = None


def _record(
    party: Party,
    exchange: Exchange,
    *,
    direction: AuditDirection,
    operation: str,
    outcome: AuditOutcome,
    body_limit: int,
    secrets: Iterable[str],
    error: str | None,
    **extra: Any,
) -> ProviderCallAudit:
    masker = MASKER.including(secrets)
    return ProviderCallAudit(
        header=party.header,
        provider=party.provider,
        account=party.account,
        operation=operation,
        direction=direction,
        method=exchange.method,
        url=mask_url(exchange.url, masker),
        http_status=exchange.status,
        duration_ms=round(exchange.duration_ms, 3),
        outcome=outcome,
        error=None if error is None else mask_text(error, masker),
        request_headers=mask_headers(exchange.request_headers, masker),
        request_body=mask_body(exchange.request_body, exchange.request_type, body_limit, masker),
        response_headers=mask_headers(exchange.response_headers, masker),
        response_body=None
        if exchange.response_body is None
        else mask_body(exchange.response_body, exchange.response_type, body_limit, masker),
        at=_millis(exchange.at),
        **extra,
    )


def outbound_record(
    cause: EventHeader,
    exchange: Exchange,
    *,
    provider: str,
    operation: str,
    outcome: AuditOutcome,
    attempt: int,
    source: str,
    body_limit: int,
    account: str | None = None,
    idempotency_key: str | None = None,
    error: str | None = None,
    secrets: Iterable[str] = (),
) -> ProviderCallAudit:
    """A call the hub made for the command whose header is `cause`: same tenant and flow.
    `secrets` (the tenant's) are masked by value besides every registered one."""
    return _record(
        Party(cause.caused(ProviderCallAudit.EVENT_TYPE, source=source), provider, account),
        exchange,
        direction=AuditDirection.OUTBOUND,
        operation=operation,
        outcome=outcome,
        body_limit=body_limit,
        secrets=secrets,
        attempt=attempt,
        idempotency_key=idempotency_key,
        error=error,
    )


def inbound_record(
    tenant: str,
    exchange: Exchange,
    *,
    provider: str,
    operation: str,
    outcome: AuditOutcome,
    source: str,
    body_limit: int,
    correlation_id: str | None = None,
    account: str | None = None,
    provider_event_id: str | None = None,
    error: str | None = None,
    secrets: Iterable[str] = (),
) -> ProviderCallAudit:
    """A webhook the hub answered (`exchange.status` is the hub's answer). `correlation_id`:
    the raw webhook record's, so the call and the flow it started are found together."""
    header = EventHeader.new(
        ProviderCallAudit.EVENT_TYPE, tenant, source=source, correlation_id=correlation_id
    )
    return _record(
        Party(header, provider, account),
        exchange,
        direction=AuditDirection.INBOUND,
        operation=operation,
        outcome=outcome,
        body_limit=body_limit,
        secrets=secrets,
        provider_event_id=provider_event_id,
        error=error,
    )


# --- writing ----------------------------------------------------------------------


class AuditSink(Protocol):
    def record(self, entry: ProviderCallAudit) -> None:
        """Hand the record over without blocking; never raises."""
        ...

    def close(self) -> None: ...


class KafkaAuditSink:
    """Writes to hub.audit.v1, keyed by tenant: an idempotent producer, acks=all."""

    def __init__(self, settings: Settings, codec: Codec | None = None, client_id: str = "audit"):
        self.codec = codec or make_codec(settings.schema_registry_url)
        self.producer = Producer(producer_config(settings, client_id, **{"linger.ms": 20}))
        self.dropped = 0

    def record(self, entry: ProviderCallAudit) -> None:
        try:
            value = encode_event(self.codec, entry)
            self.producer.produce(AUDIT, value=value, key=entry.key(), on_delivery=_on_delivery)
        except Exception as exc:  # a full queue (BufferError), a bug: the call goes on regardless
            self.dropped += 1
            log.warning("audit.dropped", error=str(exc), dropped=self.dropped)
        self.producer.poll(0)  # serve delivery reports; returns at once

    def close(self) -> None:
        left = self.producer.flush(FLUSH_SECONDS)
        if left:
            log.warning("audit.not_flushed", records=left)


def _on_delivery(err: KafkaError | None, _msg: Message) -> None:
    if err is not None:
        log.warning("audit.not_written", error=str(err))


# --- reading ----------------------------------------------------------------------

_STATUS_CLASS = re.compile(r"[1-5]xx")


@dataclass(frozen=True)
class AuditFilter:
    """What `hub audit list` selects. `status`: an HTTP status (503), a class (5xx),
    an outcome (retry, delivered, refused ...) or `none` (no HTTP answer)."""

    tenant: str | None = None
    provider: str | None = None
    status: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        status = (self.status or "").lower()
        known = {o.value for o in AuditOutcome} | {"none"}
        if status and not (status.isdigit() or _STATUS_CLASS.fullmatch(status) or status in known):
            raise ValueError(
                f"status {self.status!r}: an HTTP status (503), a class (5xx), none, "
                f"or an outcome ({', '.join(sorted(o.value for o in AuditOutcome))})"
            )

    def _status_matches(self, entry: ProviderCallAudit) -> bool:
        status = (self.status or "").lower()
        if not status:
            return True
        if status == "none":
            return entry.http_status is None
        if status.isdigit():
            return entry.http_status == int(status)
        if _STATUS_CLASS.fullmatch(status):
            return entry.http_status is not None and entry.http_status // 100 == int(status[0])
        return entry.outcome.value == status

    def matches(self, entry: ProviderCallAudit) -> bool:
        return (
            (self.tenant is None or entry.header.tenant == self.tenant)
            and (self.provider is None or entry.provider == self.provider)
            and (self.since is None or entry.at >= self.since)
            and self._status_matches(entry)
        )


def _start_offsets(settings: Settings, since: datetime | None) -> dict[int, int] | None:
    """Per partition, the first offset at or after `since` (its end if none is)."""
    if since is None:
        return None
    marks = high_watermarks(settings, AUDIT)
    consumer = Consumer({**client_config(settings), "group.id": "hub-audit"})
    try:
        wanted = [TopicPartition(AUDIT, p, int(since.timestamp() * 1000)) for p in marks]
        found = consumer.offsets_for_times(wanted, timeout=10) if wanted else []
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1] for tp in found}


def read_audit(
    settings: Settings,
    *,
    tenant: str | None = None,
    provider: str | None = None,
    status: str | int | None = None,
    since: datetime | None = None,
    limit: int = 200,
    codec: Codec | None = None,
) -> list[ProviderCallAudit]:
    """The newest `limit` records matching the filters, oldest of them first."""
    chosen = AuditFilter(tenant, provider, None if status is None else str(status), since)
    codec = codec or make_codec(settings.schema_registry_url)
    key = tenant.encode() if tenant is not None else None
    # The newest `limit` of all are among the newest `limit` of each partition.
    newest: dict[int, deque[ProviderCallAudit]] = {}
    for msg in read_to_end(settings, AUDIT, start=_start_offsets(settings, since)):
        if key is not None and msg.key() != key:
            continue  # keyed by tenant: skip without decoding
        try:
            entry = decode_as(codec, msg.value(), ProviderCallAudit)
        except DecodeError:
            log.warning("audit.undecodable", partition=msg.partition(), offset=msg.offset())
            continue
        if chosen.matches(entry):
            newest.setdefault(msg.partition() or 0, deque(maxlen=limit)).append(entry)
    merged = sorted((e for part in newest.values() for e in part), key=lambda e: e.at)
    return merged[-limit:] if limit > 0 else []


def audit_row(entry: ProviderCallAudit) -> dict[str, Any]:
    """One record as JSON-ready values (the CLI's --json, the API)."""
    row = entry.model_dump(mode="json", exclude={"header"})
    return {
        "id": entry.header.event_id,
        "tenant": entry.header.tenant,
        "correlation_id": entry.header.correlation_id,
        "source": entry.header.source,
        **row,
    }


__all__ = [
    "AuditFilter",
    "AuditSink",
    "Exchange",
    "KafkaAuditSink",
    "audit_row",
    "exchange_from_httpx",
    "inbound_record",
    "outbound_record",
    "outcome_of_status",
    "read_audit",
]
