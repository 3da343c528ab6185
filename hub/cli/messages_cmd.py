"""`hub messages show | list` and `hub bulk status | send`: what became of messages.

A message's story is every step the messenger took for it, in order, from
notifications.message-events.v1; a bulk's report is the newest one on the
compacted notifications.bulk-reports.v1. Both read Kafka directly (no group,
nothing committed), so they work against a running hub and after it stopped.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import typer
from rich.table import Table

from hub.cli.common import console, fail, settings
from schemas.events import BulkReport, MessageEvent

messages = typer.Typer(
    help="One message's story: every send, receipt and failover.", no_args_is_help=True
)
bulk = typer.Typer(
    help="Bulk sends: send a template to many, and follow the report.", no_args_is_help=True
)

TENANT = typer.Option(None, "--tenant", help="Only this tenant (school).")


def _story(message_id: str, tenant: str | None) -> list[MessageEvent]:
    from core.kafka import read_to_end
    from core.topics import MESSAGE_EVENTS
    from schemas.codec import make_codec
    from schemas.events import decode_as

    s = settings()
    codec = make_codec(s.schema_registry_url)
    found = []
    with console.status(f"reading {MESSAGE_EVENTS}…"):
        for msg in read_to_end(s, MESSAGE_EVENTS):
            if tenant is not None and (msg.key() or b"").decode() != tenant:
                continue
            event = decode_as(codec, msg.value(), MessageEvent)
            if event.message_id == message_id:
                found.append(event)
    return sorted(found, key=lambda e: e.header.occurred_at)


@messages.command("show")
def show(
    message_id: str = typer.Argument(
        ..., help="The message id (a notification id, or <bulk id>:<n>)."
    ),
    tenant: str | None = TENANT,
) -> None:
    """Tell the whole story of one message: requested, routed, sent, receipts, failovers."""
    story = _story(message_id, tenant)
    if not story:
        fail(
            f"no message {message_id!r} on record"
            + (f" for tenant {tenant!r}" if tenant else "")
            + ": check the id (hub messages list shows recent ones)"
        )
    first = story[0]
    console.print(
        f"[bold]{message_id}[/bold]  {first.channel.value} to {first.to}  "
        f"tenant {first.header.tenant}" + (f"  bulk {first.bulk_id}" if first.bulk_id else "")
    )
    table = Table(show_header=True, header_style="bold")
    for column in ("time (UTC)", "step", "attempt", "provider / account", "reference", "detail"):
        table.add_column(column)
    for event in story:
        who = f"{event.provider} / {event.account}" if event.provider else ""
        table.add_row(
            event.header.occurred_at.strftime("%H:%M:%S.%f")[:-3],
            _styled(event.step.value),
            str(event.attempt or ""),
            who,
            event.provider_ref or "",
            event.detail,
        )
    console.print(table)


def _styled(step: str) -> str:
    colour = {
        "DELIVERED": "green",
        "FAILED": "red",
        "REJECTED": "red",
        "FAILING_OVER": "yellow",
        "WAITING": "yellow",
    }.get(step)
    return f"[{colour}]{step}[/{colour}]" if colour else step


@messages.command("list")
def list_messages(
    tenant: str | None = TENANT,
    limit: int = typer.Option(20, "--limit", help="How many, newest last."),
) -> None:
    """The newest messages and where each stands (its last step)."""
    from core.kafka import read_to_end
    from core.topics import MESSAGE_EVENTS
    from schemas.codec import make_codec
    from schemas.events import decode_as

    s = settings()
    codec = make_codec(s.schema_registry_url)
    last: dict[str, MessageEvent] = {}
    with console.status(f"reading {MESSAGE_EVENTS}…"):
        for msg in read_to_end(s, MESSAGE_EVENTS):
            if tenant is not None and (msg.key() or b"").decode() != tenant:
                continue
            event = decode_as(codec, msg.value(), MessageEvent)
            last.pop(event.message_id, None)
            last[event.message_id] = event
    table = Table(show_header=True, header_style="bold")
    for column in ("message", "tenant", "channel", "to", "last step", "provider"):
        table.add_column(column)
    for event in list(last.values())[-limit:]:
        table.add_row(
            event.message_id,
            event.header.tenant,
            event.channel.value,
            event.to,
            _styled(event.step.value),
            event.provider or "",
        )
    console.print(table)


def latest_report(bulk_id: str, tenant: str | None) -> BulkReport | None:
    from core.kafka import read_to_end
    from core.topics import BULK_REPORTS
    from schemas.codec import make_codec
    from schemas.events import decode_as

    s = settings()
    codec = make_codec(s.schema_registry_url)
    newest: BulkReport | None = None
    for msg in read_to_end(s, BULK_REPORTS):
        key = (msg.key() or b"").decode()
        if not key.endswith(f":{bulk_id}") or (tenant and not key.startswith(f"{tenant}:")):
            continue
        if msg.value() is not None:
            newest = decode_as(codec, msg.value(), BulkReport)
    return newest


def render_report(report: BulkReport) -> Table:
    table = Table(
        title=f"bulk {report.bulk_id} ({report.channel.value}, {report.template})",
        show_header=True,
        header_style="bold",
    )
    for column in (
        "total",
        "released",
        "sent",
        "delivered",
        "failed",
        "rejected",
        "pending",
        "retried on alternate",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(v)
            for v in (
                report.total,
                report.released,
                report.sent,
                report.delivered,
                report.failed,
                report.rejected,
                report.pending,
                report.retried_on_alternate,
            )
        )
    )
    return table


@bulk.command("status")
def status(
    bulk_id: str = typer.Argument(..., help="The bulk id (hub bulk send prints it)."),
    tenant: str | None = TENANT,
    watch: bool = typer.Option(False, "--watch", help="Refresh every second until it completes."),
) -> None:
    """The live report of a bulk send: sent, delivered, failed, pending, per provider."""
    while True:
        report = latest_report(bulk_id, tenant)
        if report is None:
            fail(f"no report for bulk {bulk_id!r} yet: is the hub running, and the id right?")
        console.clear() if watch else None
        console.print(render_report(report))
        providers = Table(show_header=True, header_style="bold")
        for column in ("provider", "sent", "delivered", "failed", "cost (minor units)"):
            providers.add_column(column, justify="right")
        for tally in report.by_provider:
            providers.add_row(
                tally.provider,
                str(tally.sent),
                str(tally.delivered),
                str(tally.failed),
                str(tally.cost_minor),
            )
        console.print(providers)
        for failure in report.failures:
            console.print(f"  [red]✗[/red] {failure}")
        if report.complete or not watch:
            console.print(
                "[green]complete[/green]" if report.complete else "[yellow]in progress[/yellow]"
            )
            return
        time.sleep(1.0)


@bulk.command("send")
def send(
    template: str = typer.Argument(..., help="The template's name (hub templates list)."),
    recipients: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="A CSV: a `to` column, optional `name` and `reference`; "
        "the other columns are the template's variables.",
    ),
    tenant: str = typer.Option(..., "--tenant", help="The school sending it."),
    channel: str = typer.Option("sms", "--channel", help="sms, email or whatsapp."),
    locale: str | None = typer.Option(None, "--locale", help="e.g. hi; default: the template's."),
    batch_size: int = typer.Option(100, "--batch-size", min=1, help="Recipients per batch."),
) -> None:
    """Send one template to every row of a CSV, in batches; prints the bulk id."""
    from producers import EventProducer, bulk_parts
    from schemas.events import BulkRecipient, Channel

    try:
        kind = Channel(channel.upper())
    except ValueError:
        fail(f"--channel must be sms, email or whatsapp, not {channel!r}", code=2)
    with recipients.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "to" not in rows[0]:
        fail(f"{recipients} needs a header row with a `to` column", code=2)
    people = [
        BulkRecipient(
            to=row.pop("to"),
            to_name=row.pop("name", None) or None,
            reference=row.pop("reference", None) or None,
            variables={k: v for k, v in row.items() if k},
        )
        for row in rows
    ]
    parts = bulk_parts(
        tenant, template, kind, people, locale=locale, batch_size=batch_size, source="cli"
    )
    with (
        console.status(f"publishing {len(people)} recipients in {len(parts)} part(s)…"),
        EventProducer(settings()) as producer,
    ):
        for part in parts:
            producer.publish(part)
        producer.flush()
    console.print(
        f"bulk [bold]{parts[0].bulk_id}[/bold]: {len(people)} recipients; "
        f"follow it with `hub bulk status {parts[0].bulk_id} --watch`"
    )
