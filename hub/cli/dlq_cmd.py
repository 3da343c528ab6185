"""`hub dlq list | stats | show | replay | purge | monitor`: the operator's dead-letter tool."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import typer
from rich.panel import Panel
from rich.table import Table

from core.masking import mask_text
from hub.cli.common import console, fail, settings
from hub.cli.dlq_support import (
    ERROR,
    PROVIDER,
    SINCE,
    STAGE,
    STATUS,
    TENANT,
    TOPIC,
    UNTIL,
    age,
    build_filter,
    check_target,
    load,
    payload_of,
    progress_bar,
    row_of,
    statuses_of,
)
from hub.dlq.actions import ORIGINAL, Operator, ReplayError
from hub.dlq.model import BadIdError, Status, select
from hub.dlq.stats import compute
from hub.dlq.store import load_one
from schemas.codec import make_codec
from schemas.events import DlqAction

app = typer.Typer(help="List, inspect, replay and purge dead letters.", no_args_is_help=True)


@app.command("list")
def list_(
    stage: str = STAGE,
    topic: str = TOPIC,
    tenant: str = TENANT,
    provider: str = PROVIDER,
    error: str = ERROR,
    since: str = SINCE,
    until: str = UNTIL,
    status: str = STATUS,
    limit: int = typer.Option(50, help="Show at most this many (oldest first)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Dead letters matching the filters, oldest first."""
    dlq_filter = build_filter(
        stage=stage,
        topic=topic,
        tenant=tenant,
        provider=provider,
        error=error,
        since=since,
        until=until,
        statuses=statuses_of(status),
    )
    chosen = select(load(dlq_filter), dlq_filter, limit)
    if as_json:
        for record in chosen:
            typer.echo(json.dumps(row_of(record)))
        return
    table = Table("id", "stage", "failed", "tenant", "provider", "error", "message", "status")
    for r in chosen:
        table.add_row(
            r.id,
            r.stage,
            age(r.letter.last_failure_at),
            r.letter.header.tenant,
            r.letter.provider or "-",
            r.letter.error_class,
            mask_text(r.letter.error_message)[:60],
            str(r.status),
        )
    console.print(table)
    console.print(
        f"{len(chosen)} dead letter(s)" + (" (limit reached)" if len(chosen) == limit else "")
    )


@app.command()
def stats(stage: str = STAGE, as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts by error class, provider, tenant, stage; oldest, newest, growth in the last hour."""
    dlq_filter = build_filter(
        stage=stage,
        topic=None,
        tenant=None,
        provider=None,
        error=None,
        since=None,
        until=None,
        statuses=frozenset(Status),
    )
    result = compute(select(load(dlq_filter), dlq_filter), datetime.now(UTC))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "total": result.total,
                    "by_error": result.by_error,
                    "by_provider": result.by_provider,
                    "by_tenant": result.by_tenant,
                    "by_stage": result.by_stage,
                    "by_status": result.by_status,
                    "oldest": result.oldest.isoformat() if result.oldest else None,
                    "newest": result.newest.isoformat() if result.newest else None,
                    "last_hour": result.last_hour,
                    "previous_hour": result.previous_hour,
                }
            )
        )
        return
    console.print(f"[bold]{result.total}[/] dead letters; last hour: {result.growth}")
    if result.oldest and result.newest:
        console.print(f"oldest {age(result.oldest)}, newest {age(result.newest)}")
    for title, counter in (
        ("error class", result.by_error),
        ("provider", result.by_provider),
        ("tenant", result.by_tenant),
        ("stage", result.by_stage),
        ("status", result.by_status),
    ):
        table = Table(title, "count")
        for name, count in counter.most_common(10):
            table.add_row(name, str(count))
        console.print(table)


@app.command()
def show(
    record_id: str = typer.Argument(..., help="A dead letter id from `hub dlq list`."),
) -> None:
    """One dead letter: where it came from, why it failed, its payload and headers."""
    s = settings()
    try:
        record = load_one(s, make_codec(s.schema_registry_url), record_id)
    except BadIdError as exc:
        fail(str(exc))
    if record is None:
        fail(f"no dead letter {record_id} (expired, or not written yet)")
    letter = record.letter
    facts = Table(show_header=False, box=None)
    for name, value in [
        ("id", record.id),
        (
            "status",
            f"{record.status}"
            + (
                f" by {record.state.actor} (action {record.state.action_id})"
                if record.state
                else ""
            ),
        ),
        (
            "from",
            f"{letter.original_topic} partition {letter.original_partition} "
            f"offset {letter.original_offset}",
        ),
        ("stage / worker", f"{letter.stage} / {letter.worker}"),
        # Masked for the screen: a letter written before masking may quote a credential.
        ("error", mask_text(f"{letter.error_class}: {letter.error_message}")),
        ("retryable", str(letter.retryable)),
        ("attempts", str(letter.attempts)),
        (
            "first / last failure",
            f"{letter.first_failure_at.isoformat()} / {letter.last_failure_at.isoformat()}",
        ),
        ("tenant", letter.header.tenant),
        ("correlation id", letter.header.correlation_id),
        ("provider", letter.provider or "-"),
        ("idempotency key", letter.idempotency_key or "-"),
    ]:
        facts.add_row(f"[bold]{name}[/]", value)
    console.print(Panel(facts, title="dead letter"))
    headers = "\n".join(
        f"{h.key}: {(h.value or b'').decode('utf-8', 'replace')}" for h in letter.original_headers
    )
    console.print(Panel(mask_text(headers) or "(none)", title="original headers"), markup=False)
    console.print(Panel(payload_of(record), title="payload"), markup=False)
    if letter.stack:
        console.print(Panel(mask_text(letter.stack), title="stack"), markup=False)


@app.command()
def replay(
    ids: list[str] = typer.Argument(None, help="Dead letter ids; or select with filters."),
    stage: str = STAGE,
    topic: str = TOPIC,
    tenant: str = TENANT,
    provider: str = PROVIDER,
    error: str = ERROR,
    since: str = SINCE,
    until: str = UNTIL,
    to: str = typer.Option(ORIGINAL, "--to", help="original, retry, or a topic name."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would move."),
    rate: float = typer.Option(None, "--rate", help="At most this many records per second."),
    again: bool = typer.Option(False, "--again", help="Also replay ones replayed before."),
    resume: str = typer.Option(
        None,
        "--resume",
        help="Action id of an interrupted run (with --again: skip what that run did).",
    ),
    limit: int = typer.Option(None, help="Replay at most this many."),
) -> None:
    """Put dead letters back: exactly once per run, resumable (re-run the same command)."""
    check_target(to)
    # By default only pending dead letters: re-running an interrupted replay
    # therefore resumes it. --again re-replays (idempotency keys still hold).
    statuses = {Status.PENDING, Status.REPLAYED} if again else {Status.PENDING}
    dlq_filter = replace(
        build_filter(
            stage=stage,
            topic=topic,
            tenant=tenant,
            provider=provider,
            error=error,
            since=since,
            until=until,
            statuses=frozenset(statuses),
            ids=ids,
            require="replay",
        ),
        not_done_by=resume,
    )
    chosen = select(load(dlq_filter), dlq_filter, limit)
    if ids and not again:
        skipped = sorted(set(ids) - {r.id for r in chosen})
        if skipped:
            console.print(
                f"[yellow]skipping {len(skipped)} not pending (replayed or purged); "
                "--again replays them again[/]"
            )
    if dry_run or not chosen:
        list_table = Table("id", "original topic", "error", "would go to")
        for r in chosen:
            list_table.add_row(r.id, r.letter.original_topic, r.letter.error_class, to)
        console.print(list_table)
        console.print(
            f"{len(chosen)} dead letter(s) " + ("would be replayed" if dry_run else "to replay")
        )
        return
    s = settings()
    operator = Operator(s, make_codec(s.schema_registry_url))
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"replaying to {to}", total=len(chosen))
            report = operator.run(
                DlqAction.REPLAY,
                chosen,
                dlq_filter.describe(),
                to=to,
                rate=rate,
                progress=lambda n: bar.advance(task, n),
            )
    except ReplayError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted: re-run the same command to replay the rest (nothing is repeated)", 130)
    console.print(
        f"replayed {report.done} dead letter(s) (action {report.action_id}; "
        "audit on hub.dlq.audit.v1)"
    )


@app.command()
def purge(
    ids: list[str] = typer.Argument(None, help="Dead letter ids; or select with filters."),
    stage: str = STAGE,
    topic: str = TOPIC,
    tenant: str = TENANT,
    provider: str = PROVIDER,
    error: str = ERROR,
    since: str = SINCE,
    until: str = UNTIL,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Mark dead letters as dealt with: hidden from list, never replayed. Audited."""
    statuses = frozenset({Status.PENDING, Status.REPLAYED})
    dlq_filter = build_filter(
        stage=stage,
        topic=topic,
        tenant=tenant,
        provider=provider,
        error=error,
        since=since,
        until=until,
        statuses=statuses,
        ids=ids,
        require="purge",
    )
    chosen = select(load(dlq_filter), dlq_filter)
    if not chosen:
        console.print("nothing to purge")
        return
    if not yes and not typer.confirm(
        f"Purge {len(chosen)} dead letter(s)? They will not be listed or replayed any more"
    ):
        fail("not purged", 1)
    s = settings()
    report = Operator(s, make_codec(s.schema_registry_url)).run(
        DlqAction.PURGE, chosen, dlq_filter.describe()
    )
    console.print(f"purged {report.done} dead letter(s) (action {report.action_id})")


@app.command()
def monitor() -> None:
    """Watch dead-letter topics; alert on hub.alerts.v1 when one grows too fast."""
    from hub.dlq.monitor import run

    run(settings())
