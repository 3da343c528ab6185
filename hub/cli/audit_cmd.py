"""`hub audit list | show`: every provider call and webhook, from hub.audit.v1.

What is shown is what was stored: masked when the record was written, so no
command here can print a secret.
"""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.panel import Panel
from rich.table import Table

from hub.cli.common import console, fail, settings
from schemas.events import ProviderCallAudit

app = typer.Typer(help="The audit trail of provider calls and webhooks.", no_args_is_help=True)

TENANT = typer.Option(None, "--tenant", help="Tenant (school) id.")
PROVIDER = typer.Option(None, "--provider", help="Provider, e.g. twilio.")
STATUS = typer.Option(
    None,
    "--status",
    help="HTTP status (503), class (5xx), none (no answer), or outcome "
    "(delivered, retry, rejected, error, accepted, refused).",
)
SINCE = typer.Option("1d", "--since", help="At or after: an age (10m, 2h, 1d) or an ISO time.")


def _since(text: str) -> datetime:
    from hub.dlq.model import parse_when

    try:
        return parse_when(text)
    except ValueError as exc:
        fail(str(exc))


def _read(
    tenant: str | None, provider: str | None, status: str | None, since: str, limit: int
) -> list[ProviderCallAudit]:
    from confluent_kafka import KafkaException

    from core.audit import read_audit

    s = settings()
    try:
        with console.status("reading the audit trail…"):
            return read_audit(
                s,
                tenant=tenant,
                provider=provider,
                status=status,
                since=_since(since),
                limit=limit,
            )
    except ValueError as exc:  # a --status that names nothing
        fail(str(exc))
    except (KafkaException, TimeoutError) as exc:
        fail(f"cannot read the audit trail from {s.bootstrap_servers}: {exc}")


def _status(entry: ProviderCallAudit) -> str:
    code = "-" if entry.http_status is None else str(entry.http_status)
    return f"{code} {entry.outcome.value}"


@app.command("list")
def list_(
    tenant: str = TENANT,
    provider: str = PROVIDER,
    status: str = STATUS,
    since: str = SINCE,
    limit: int = typer.Option(50, help="Show at most this many (the newest; oldest first)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Provider calls and webhooks matching the filters, newest last."""
    from core.audit import audit_row

    entries = _read(tenant, provider, status, since, limit)
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(audit_row(entry)))
        return
    table = Table(
        "time", "tenant", "provider", "account", "operation", "dir", "status", "ms", "try", "id"
    )
    for e in entries:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.header.tenant,
            e.provider,
            e.account or "-",
            e.operation,
            "out" if e.direction.value == "outbound" else "in",
            _status(e),
            f"{e.duration_ms:.0f}",
            str(e.attempt),
            e.header.correlation_id,
        )
    console.print(table)
    console.print(
        f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        + (" (limit reached)" if len(entries) == limit else "")
        + "; the id column is the correlation id (`hub audit show` takes it or the entry id)"
    )


@app.command()
def show(
    entry_id: str = typer.Argument(..., help="An entry id or correlation id (see --json)."),
    since: str = SINCE,
) -> None:
    """One exchange (every one of a correlation id): URL, headers and masked bodies."""
    found = [
        e
        for e in _read(None, None, None, since, 100_000)
        if entry_id in (e.header.event_id, e.header.correlation_id)
    ]
    if not found:
        fail(f"no audit entry {entry_id} since {since} (expired, or another --since)")
    for e in found:
        facts = Table(show_header=False, box=None)
        for name, value in [
            ("id", e.header.event_id),
            ("at", e.at.isoformat()),
            ("tenant / account", f"{e.header.tenant} / {e.account or '-'}"),
            ("provider / operation", f"{e.provider} / {e.operation} ({e.direction.value})"),
            ("request", f"{e.method} {e.url}"),
            ("status", _status(e) + (f": {e.error}" if e.error else "")),
            ("duration / try", f"{e.duration_ms:.1f} ms / {e.attempt}"),
            ("correlation id", e.header.correlation_id),
            ("idempotency key", e.idempotency_key or "-"),
            ("provider event id", e.provider_event_id or "-"),
        ]:
            facts.add_row(f"[bold]{name}[/]", value)
        console.print(Panel(facts, title="audit entry"))
        for title, headers, body in (
            ("request", e.request_headers, e.request_body),
            ("response", e.response_headers, e.response_body),
        ):
            lines = "\n".join(f"{k}: {v}" for k, v in sorted(headers.items()))
            text = f"{lines}\n\n{body if body is not None else '(no answer)'}"
            console.print(Panel(text.strip(), title=title), markup=False)
