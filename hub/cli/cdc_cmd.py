"""`hub postgres up|down|status` and `hub cdc source|consume|status`: change data capture."""

from __future__ import annotations

import json

import httpx
import typer

from core.masking import mask_dsn  # a DSN's password never reaches the screen
from core.settings import Settings
from hub.cli.common import console, fail, settings
from hub.local_postgres import (
    LocalPostgres,
    PostgresConfig,
    PostgresSetupError,
    default_root,
)

postgres = typer.Typer(
    help="The local PostgreSQL: the ERP demo source for CDC (development).", no_args_is_help=True
)
cdc = typer.Typer(
    help="Change data capture: Debezium source and the CDC consumer.", no_args_is_help=True
)


def local_postgres(s: Settings) -> LocalPostgres:
    return LocalPostgres(
        PostgresConfig(root=s.postgres_dir or default_root(s.home), port=s.postgres_port)
    )


def _refuse_if_external(s: Settings) -> None:
    if s.postgres_dsn:
        fail(
            "HUB_POSTGRES_DSN is set: the hub captures that database and does not manage a "
            "local one. Unset it to use `hub postgres`."
        )


@postgres.command()
def up() -> None:
    """Start PostgreSQL (initdb on first start), create the ERP tables and seed rows."""
    from hub import erp

    s = settings()
    _refuse_if_external(s)
    try:
        local_postgres(s).up()
    except PostgresSetupError as exc:
        fail(str(exc))
    erp.install(erp.engine_for(s.source_dsn))
    console.print(f"PostgreSQL ready: {mask_dsn(s.source_dsn)} (wal_level=logical)")


@postgres.command()
def down() -> None:
    """Stop the local PostgreSQL (its data stays)."""
    s = settings()
    _refuse_if_external(s)
    console.print(
        "PostgreSQL stopped" if local_postgres(s).down() else "PostgreSQL was not running"
    )


@postgres.command()
def status() -> None:
    """Is the local PostgreSQL running? Exit code 0 only if it is."""
    s = settings()
    if s.postgres_dsn:
        console.print(f"external database: {mask_dsn(s.postgres_dsn)}")
        return
    running = local_postgres(s).running()
    state = "[green]running[/]" if running else "[red]stopped[/]"
    console.print(f"PostgreSQL {state} {mask_dsn(s.source_dsn)}")
    if not running:
        raise typer.Exit(1)


@cdc.command()
def prepare() -> None:
    """Resolve Debezium's and Kafka Connect's jars with Maven and build the hub's
    config provider, which opens the worker's sealed secrets (both cached)."""
    from hub.cdc_source import DEBEZIUM_DIR
    from hub.connect_secrets import build_provider
    from hub.local_kafka import KafkaSetupError, resolve_classpath

    try:
        classpath = resolve_classpath(settings().home, DEBEZIUM_DIR)
        build_provider(settings().home, classpath)
    except KafkaSetupError as exc:
        fail(str(exc))
    console.print(
        f"Debezium classpath ready: {len(classpath.split(':'))} jars, and the config provider"
    )


@cdc.command()
def source() -> None:
    """Run Debezium's PostgreSQL connector (Kafka Connect standalone) until stopped."""
    from hub.cdc_source import run_source
    from hub.local_kafka import KafkaSetupError

    try:
        run_source(settings())
    except KafkaSetupError as exc:
        fail(str(exc))


@cdc.command()
def consume() -> None:
    """Turn change events into sync streams and outbound sync commands."""
    from processors.cdc.consumer import run

    run(settings())


@cdc.command("status")
def cdc_status() -> None:
    """Both Debezium connectors' states (change capture and the outbox relay), from
    Kafka Connect's REST API."""
    from hub.cdc_source import CONNECTOR, OUTBOX_CONNECTOR, status_url

    s = settings()
    states = {}
    for name in (CONNECTOR, OUTBOX_CONNECTOR):
        url = status_url(s, name)
        try:
            states[name] = httpx.get(url, timeout=5).json()
        except (httpx.HTTPError, ValueError) as exc:
            fail(f"the CDC source is not answering at {url} ({exc}); is `hub cdc source` running?")
    console.print_json(json.dumps(states))
