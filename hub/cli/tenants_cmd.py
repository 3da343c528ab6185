"""`hub tenants …` and `hub accounts …`: the tenant catalog from the command line.

Every change is saved in the catalog database first, then published to
Kafka (hub.catalog.tenants.v1) for the components; secrets are prompted for
or read from a variable, sealed at once, and never printed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.panel import Panel
from rich.table import Table

from hub.cli.catalog_support import (
    catalog_errors,
    echo_json,
    gather_fields,
    open_catalog,
    publish,
)
from hub.cli.common import console, settings

if TYPE_CHECKING:
    from catalog.models import AccountInfo

tenants = typer.Typer(help="Tenants (schools) in the catalog.", no_args_is_help=True)
accounts = typer.Typer(help="A tenant's provider accounts and their secrets.", no_args_is_help=True)

AS_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
TENANT = typer.Argument(..., help="Tenant id, e.g. greenwood.")
LABEL = typer.Argument(..., help="Account label, e.g. twilio-primary.")
SET = typer.Option(None, "--set", help="A non-secret field: field=value (repeatable).")
SECRET = typer.Option(
    None, "--secret", help="A secret field to be prompted for, hidden (repeatable)."
)
SECRET_ENV = typer.Option(
    None,
    "--secret-from-env",
    help="A secret field read from an environment variable: field=VARIABLE (repeatable).",
)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _yes_no(value: bool) -> str:
    return "yes" if value else "[red]no[/]"


# --- tenants ----------------------------------------------------------------


@tenants.command("list")
def list_tenants(as_json: bool = AS_JSON) -> None:
    """Every tenant: name, enabled, version, number of accounts."""
    s = settings()
    service = open_catalog(s)
    found = service.list_tenants()
    if as_json:
        echo_json(found)
        return
    table = Table("tenant", "name", "enabled", "version", "accounts", "updated")
    for t in found:
        table.add_row(
            t.id, t.name, _yes_no(t.enabled), str(t.version), str(t.accounts), _when(t.updated_at)
        )
    console.print(table)
    console.print(f"{len(found)} tenant(s)")


@tenants.command("show")
def show_tenant(tenant_id: str = TENANT, as_json: bool = AS_JSON) -> None:
    """One tenant: its facts, accounts (secret names, never values) and routing."""
    service = open_catalog(settings())
    with catalog_errors():
        info = service.get_tenant(tenant_id)
        found = service.list_accounts(tenant_id)
        routing = service.get_routing(tenant_id)
    if as_json:
        echo_json(
            {**info.model_dump(mode="json"), "accounts": [a.model_dump(mode="json") for a in found]}
            | {"routing": routing}
        )
        return
    facts = Table(show_header=False, box=None)
    for name, value in [
        ("id", info.id),
        ("name", info.name or "-"),
        ("enabled", _yes_no(info.enabled)),
        ("version", str(info.version)),
        ("created / updated", f"{_when(info.created_at)} / {_when(info.updated_at)}"),
    ]:
        facts.add_row(f"[bold]{name}[/]", value)
    console.print(Panel(facts, title=f"tenant {info.id}"))
    _print_accounts(found)
    table = Table("channel", "accounts, most preferred first")
    for channel, labels in routing.items():
        table.add_row(channel, " → ".join(labels))
    console.print(table if routing else "no routing: each provider's primary account is used")


@tenants.command("create")
def create_tenant(
    tenant_id: str = TENANT,
    name: str = typer.Option("", help="Display name, e.g. 'Greenwood High School'."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
) -> None:
    """Add a tenant (then give it accounts with `hub accounts add`)."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        info = service.create_tenant(tenant_id, name, enabled=not disabled)
    console.print(f"[green]✓[/] tenant {info.id} created (version {info.version})")
    publish(service, s)


@tenants.command("update")
def update_tenant(
    tenant_id: str = TENANT,
    name: str = typer.Option(None, help="New display name."),
    enabled: bool = typer.Option(None, "--enable/--disable", help="Enable or disable it."),
) -> None:
    """Rename, enable or disable a tenant."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        info = service.update_tenant(tenant_id, name=name, enabled=enabled)
    console.print(f"[green]✓[/] tenant {info.id} at version {info.version}")
    publish(service, s)


@tenants.command("delete")
def delete_tenant(
    tenant_id: str = TENANT,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a tenant with its accounts and routing (the components forget it)."""
    s = settings()
    service = open_catalog(s)
    if not yes:
        typer.confirm(f"Delete tenant {tenant_id} and all its accounts?", abort=True)
    with catalog_errors():
        service.delete_tenant(tenant_id)
    console.print(f"[green]✓[/] tenant {tenant_id} deleted")
    publish(service, s)


@tenants.command("import")
def import_tenants(
    path: Path = typer.Argument(..., help="A tenant file (TOML), e.g. tenants.toml."),
) -> None:
    """Create or update the tenants of a file; running it again changes nothing."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        report = service.import_file(path)
    console.print(
        f"[green]✓[/] tenants: {report.tenants_created} created, {report.tenants_updated} "
        f"updated, {report.tenants_unchanged} unchanged; accounts: {report.accounts_created} "
        f"created, {report.accounts_updated} updated, {report.accounts_unchanged} unchanged"
    )
    publish(service, s)


@tenants.command("route")
def route(
    tenant_id: str = TENANT,
    channel: str = typer.Argument(..., help="sms, email, payment, or a provider category."),
    labels: list[str] = typer.Argument(None, help="Account labels, most preferred first."),
) -> None:
    """Set which accounts serve a channel, in order; no labels removes the channel."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        routing = service.get_routing(tenant_id)
        routing[channel] = list(labels or [])
        routing = service.set_routing(tenant_id, routing)
    shown = " → ".join(routing.get(channel, [])) or "(removed)"
    console.print(f"[green]✓[/] {tenant_id} {channel}: {shown}")
    publish(service, s)


# --- accounts ---------------------------------------------------------------


def _print_accounts(found: list[AccountInfo]) -> None:
    table = Table("label", "provider", "priority", "enabled", "settings", "secrets set", "key")
    for a in found:
        table.add_row(
            a.label,
            a.provider,
            str(a.priority),
            _yes_no(a.enabled),
            "\n".join(f"{k}={v}" for k, v in a.settings.items()) or "-",
            ", ".join(a.secrets_set) or "-",
            a.key_id or "-",
        )
    console.print(table)


@accounts.command("list")
def list_accounts(tenant_id: str = TENANT, as_json: bool = AS_JSON) -> None:
    """A tenant's accounts: provider, priority, settings, which secrets are set."""
    service = open_catalog(settings())
    with catalog_errors():
        found = service.list_accounts(tenant_id)
    if as_json:
        echo_json(found)
        return
    _print_accounts(found)
    console.print(f"{len(found)} account(s)")


@accounts.command("show")
def show_account(tenant_id: str = TENANT, label: str = LABEL, as_json: bool = AS_JSON) -> None:
    """One account (secret names, never values)."""
    service = open_catalog(settings())
    with catalog_errors():
        found = service.get_account(tenant_id, label)
    if as_json:
        echo_json(found)
        return
    _print_accounts([found])


@accounts.command("add")
def add_account(
    tenant_id: str = TENANT,
    label: str = LABEL,
    provider: str = typer.Option(..., "--provider", "-p", help="`hub providers list` names them."),
    sets: list[str] = SET,
    secrets: list[str] = SECRET,
    secrets_from_env: list[str] = SECRET_ENV,
    priority: int = typer.Option(0, help="Lower first: the primary has the lowest."),
    disabled: bool = typer.Option(False, "--disabled", help="Add it disabled."),
) -> None:
    """Add an account, e.g. --provider twilio --set account_sid=AC… --secret auth_token."""
    s = settings()
    service = open_catalog(s)
    fields = gather_fields(provider, sets, secrets, secrets_from_env)
    with catalog_errors():
        info = service.add_account(
            tenant_id, label, provider, fields, priority=priority, enabled=not disabled
        )
    console.print(
        f"[green]✓[/] account {tenant_id}/{info.label} ({info.provider}) added; "
        f"secrets set: {', '.join(info.secrets_set) or 'none'}"
    )
    publish(service, s)


@accounts.command("update")
def update_account(
    tenant_id: str = TENANT,
    label: str = LABEL,
    sets: list[str] = SET,
    secrets: list[str] = SECRET,
    secrets_from_env: list[str] = SECRET_ENV,
    priority: int = typer.Option(None, help="New priority (lower first)."),
    enabled: bool = typer.Option(None, "--enable/--disable", help="Enable or disable it."),
) -> None:
    """Change some fields (the others, secrets included, are kept), priority, or enabled."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        provider = service.get_account(tenant_id, label).provider
    fields = gather_fields(provider, sets, secrets, secrets_from_env)
    with catalog_errors():
        info = service.update_account(
            tenant_id, label, fields=fields or None, priority=priority, enabled=enabled
        )
    console.print(f"[green]✓[/] account {tenant_id}/{info.label} saved")
    publish(service, s)


@accounts.command("remove")
def remove_account(
    tenant_id: str = TENANT,
    label: str = LABEL,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove an account (and its label from the tenant's routing)."""
    s = settings()
    service = open_catalog(s)
    if not yes:
        typer.confirm(f"Remove account {tenant_id}/{label}?", abort=True)
    with catalog_errors():
        service.remove_account(tenant_id, label)
    console.print(f"[green]✓[/] account {tenant_id}/{label} removed")
    publish(service, s)
