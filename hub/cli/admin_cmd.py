"""`hub admin serve|openapi` and `hub api-keys create|list|revoke`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, cast

import typer
from rich.table import Table

from core.settings import Settings
from hub.cli.common import console, err_console, fail, require_kafka, settings

if TYPE_CHECKING:
    from catalog.models import Role
    from catalog.service import CatalogService

admin = typer.Typer(help="The admin API (HTTP, API keys).", no_args_is_help=True)
api_keys = typer.Typer(help="API keys of the admin API.", no_args_is_help=True)

ROLES = ("admin", "operator", "viewer")
STORE_WARNING = "Store it now (a password manager, a secret store): it is not shown again."


def open_service(s: Settings) -> CatalogService:
    from catalog.service import CatalogService
    from core.crypto import KeyringError

    try:
        return CatalogService.open(s)
    except KeyringError as exc:
        fail(str(exc))


def print_first_admin_key(token: str) -> None:
    """The first admin key, printed once: the catalog keeps only its hash."""
    console.print("[bold yellow]First admin API key[/] (role admin):")
    print(token, flush=True)  # bare, on its own line: rich would wrap or style it
    console.print(f"[yellow]{STORE_WARNING}[/]")


@admin.command("serve")
def serve(
    host: str = typer.Option(None, help="Bind address [default: HUB_ADMIN_HOST]."),
    port: int = typer.Option(None, help="Port [default: HUB_ADMIN_PORT]."),
) -> None:
    """Serve the admin API (and publish catalog changes to Kafka while it runs)."""
    import uvicorn

    from admin_api import create_app
    from admin_api.keys import ensure_first_admin_key
    from admin_api.relay import OutboxRelay
    from core.audit import KafkaAuditSink
    from core.logging import configure_logging
    from core.ports import port_is_free

    s = settings().model_copy(
        update={k: v for k, v in {"admin_host": host, "admin_port": port}.items() if v}
    )
    if not port_is_free(s.admin_port):
        fail(f"port {s.admin_port} is taken: stop what uses it or set HUB_ADMIN_PORT")
    configure_logging(s.log_level, s.log_format, component="admin-api")
    require_kafka(s)
    service = open_service(s)
    token = ensure_first_admin_key(service)
    if token is not None:
        print_first_admin_key(token)
    relay = OutboxRelay(s, service)
    relay.start()
    audit = KafkaAuditSink(s, client_id="admin-api-audit")
    try:
        uvicorn.run(
            create_app(s, service, audit_sink=audit),
            host=s.admin_host,
            port=s.admin_port,
            access_log=False,
            log_config=None,
            lifespan="on",
        )
    finally:
        relay.stop()
        audit.close()


@admin.command("openapi")
def openapi() -> None:
    """Print the OpenAPI document (`hub admin openapi > deploy/openapi.json`)."""
    from admin_api.routes import render

    sys.stdout.write(render())


@api_keys.command("create")
def create(
    name: str = typer.Argument(..., help="Who or what holds the key (shown in logs)."),
    role: str = typer.Option(..., "--role", "-r", help="admin, operator or viewer."),
) -> None:
    """Create an API key and print it, once."""
    if role not in ROLES:
        fail(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    from catalog.errors import CatalogError

    try:
        info, token = open_service(settings()).create_api_key(name, cast("Role", role))
    except CatalogError as exc:
        fail(str(exc))
    console.print(f"Created API key {info.id} ({info.name}, role {info.role}):", highlight=False)
    # Plain print: a pipe gets the bare token, without rich's wrapping.
    print(token)
    err_console.print(f"[yellow]{STORE_WARNING}[/]")


@api_keys.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
) -> None:
    """List API keys (ids, names, roles, prefixes: never the keys)."""
    keys = open_service(settings()).list_api_keys()
    if as_json:
        print(json.dumps([k.model_dump(mode="json") for k in keys], indent=2))
        return
    table = Table("id", "name", "role", "prefix", "created", "last used", "state")
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            k.role,
            k.prefix,
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
            "revoked" if k.revoked else "active",
        )
    console.print(table)


@api_keys.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (hub api-keys list).")) -> None:
    """Revoke an API key: it authenticates nothing from the next request on."""
    from catalog.errors import NotFoundError

    try:
        open_service(settings()).revoke_api_key(key_id)
    except NotFoundError:
        fail(f"no API key {key_id!r} (hub api-keys list shows them)")
    console.print(f"Revoked API key {key_id}.")
