"""What the `hub dlq` commands share: their filter options, selection, loading, formatting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.kafka import admin_config
from core.masking import mask_body, mask_mapping, mask_text
from hub.cli.common import console, fail, settings
from hub.dlq.actions import ORIGINAL, RETRY
from hub.dlq.model import BadIdError, DlqFilter, DlqRecord, Status, parse_id, parse_when
from hub.dlq.store import load_dead_letters
from providers import stages as all_stages
from schemas.codec import DecodeError, make_codec
from schemas.events import RawWebhook, decode_event

SHOWN_BODY_LIMIT = 64 * 1024

STAGE = typer.Option(None, "--stage", help=f"Stage: {', '.join(all_stages())}.")
TOPIC = typer.Option(None, "--topic", help="Original topic the records failed on.")
TENANT = typer.Option(None, "--tenant", help="Tenant (school) id.")
PROVIDER = typer.Option(None, "--provider", help="Provider, e.g. twilio.")
ERROR = typer.Option(None, "--error", help="Error class, or text in the error message.")
SINCE = typer.Option(None, "--since", help="Failed at or after: ISO time or age (30m, 2h, 7d).")
UNTIL = typer.Option(None, "--until", help="Failed at or before: ISO time or age.")
STATUS = typer.Option("pending", "--status", help="pending, replayed, purged or all.")


def statuses_of(status: str) -> frozenset[Status]:
    if status == "all":
        return frozenset(Status)
    try:
        return frozenset({Status(status)})
    except ValueError:
        fail(f"--status {status!r}: choose pending, replayed, purged or all")


def build_filter(
    *,
    stage: str | None,
    topic: str | None,
    tenant: str | None,
    provider: str | None,
    error: str | None,
    since: str | None,
    until: str | None,
    statuses: frozenset[Status],
    ids: list[str] | None = None,
    require: str | None = None,
) -> DlqFilter:
    if require and not ids and not any((stage, topic, tenant, provider, error, since, until)):
        fail(f"choose what to {require}: dead letter ids, or at least one filter (--stage, ...)")
    if stage and stage not in all_stages():
        fail(f"unknown stage {stage!r}; stages: {', '.join(all_stages())}")
    try:
        for record_id in ids or []:
            parse_id(record_id)
        return DlqFilter(
            stage=stage,
            topic=topic,
            tenant=tenant,
            provider=provider,
            error=error,
            since=parse_when(since) if since else None,
            until=parse_when(until) if until else None,
            statuses=statuses,
            ids=frozenset(ids or []),
        )
    except (BadIdError, ValueError) as exc:
        fail(str(exc))


def load(dlq_filter: DlqFilter) -> list[DlqRecord]:
    s = settings()
    stages = (
        [dlq_filter.stage]
        if dlq_filter.stage
        else (sorted({parse_id(i)[0] for i in dlq_filter.ids}) or None)
    )
    try:
        with console.status("reading dead-letter topics…"):
            records, unreadable = load_dead_letters(s, make_codec(s.schema_registry_url), stages)
    except (KafkaException, TimeoutError) as exc:
        fail(f"cannot read the dead-letter topics from {s.bootstrap_servers}: {exc}")
    if unreadable:
        console.print(
            f"[yellow]{unreadable} record(s) in dead-letter topics are not dead letters[/]"
        )
    return records


def age(when: datetime) -> str:
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def row_of(r: DlqRecord) -> dict[str, Any]:
    letter = r.letter
    return {
        "id": r.id,
        "stage": r.stage,
        "status": str(r.status),
        "last_failure_at": letter.last_failure_at.isoformat(),
        "tenant": letter.header.tenant,
        "provider": letter.provider,
        "original_topic": letter.original_topic,
        "error_class": letter.error_class,
        "error_message": mask_text(letter.error_message),
        "retryable": letter.retryable,
        "attempts": letter.attempts,
        "idempotency_key": letter.idempotency_key,
    }


def payload_of(r: DlqRecord) -> str:
    """The original record, for an operator to read: masked (its sensitive keys, quoted
    credentials), though a replay sends it exactly as it came."""
    value = r.letter.original_value
    try:
        event = decode_event(make_codec(settings().schema_registry_url), value)
        shown = event.model_dump(mode="json")
        if isinstance(event, RawWebhook):
            # The provider's bytes: masked by key inside them too, as the audit trail does.
            shown["body"] = mask_body(event.body, event.content_type, SHOWN_BODY_LIMIT)
        return json.dumps(mask_mapping(shown), indent=2)
    except DecodeError as exc:
        preview = (value or b"")[:400]
        return mask_text(f"(not a hub event: {exc})\n{preview!r}")


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def check_target(to: str) -> None:
    if to in (ORIGINAL, RETRY):
        return
    s = settings()
    if to not in AdminClient(admin_config(s)).list_topics(timeout=10).topics:
        fail(f"--to {to}: no such topic (use original, retry, or an existing topic)")
