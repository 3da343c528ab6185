"""What `hub tenants`, `hub accounts` and `hub keys` share: the catalog, its errors, publishing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from pydantic import BaseModel

from core.settings import Settings
from hub.cli.common import console, err_console, fail

if TYPE_CHECKING:
    from catalog.service import CatalogService

# How long a CLI change waits for Kafka to take its snapshots before saying it
# will be published later: an operator at a prompt should not wait for a timeout.
PUBLISH_TIMEOUT = 5.0


@contextmanager
def catalog_errors() -> Iterator[None]:
    """The catalog's refusals as one red line each, exit code 1."""
    from catalog.errors import CatalogError, NotFoundError
    from catalog.tenant_file import TenantFileError
    from core.crypto import KeyringError

    try:
        yield
    except NotFoundError as exc:
        fail(f"{exc}", code=2)
    except (CatalogError, KeyringError, TenantFileError) as exc:
        fail(str(exc))


def open_catalog(s: Settings) -> CatalogService:
    from catalog.service import CatalogService

    with catalog_errors():
        service = CatalogService.open(s)
    if service.created_key_file:
        err_console.print(
            f"[yellow]Created the master key file {s.master_key_path}[/] (mode 0600). Back it "
            "up: without it the catalog's secrets cannot be opened. Every component that reads "
            "the catalog needs it too (or HUB_MASTER_KEYS).",
            highlight=False,
        )
    return service


def publish(service: CatalogService, s: Settings) -> None:
    """Publish what the change put in the outbox. Kafka away is not a failure: the
    change is saved and the outbox keeps it for the next relay."""
    from confluent_kafka import KafkaException, Producer

    from catalog.errors import PublishError
    from core.kafka import producer_config
    from core.topics import CATALOG_TENANTS
    from schemas.codec import CodecError, make_codec

    config = producer_config(
        s,
        "hub-cli-catalog",
        **{"message.timeout.ms": int(PUBLISH_TIMEOUT * 1000), "log_level": 2},
    )
    try:
        published = service.publish_pending(
            Producer(config), make_codec(s.schema_registry_url), timeout=PUBLISH_TIMEOUT
        )
    except (PublishError, KafkaException, CodecError) as exc:
        err_console.print(
            f"[yellow]Saved, not published yet[/]: Kafka at {s.bootstrap_servers} did not take "
            f"the change within {PUBLISH_TIMEOUT:g}s ({exc}). The admin API "
            "(`hub admin serve`) will publish it, or the next CLI change will.",
            highlight=False,
        )
        return
    if published:
        console.print(f"[green]✓[/] published {published} tenant snapshot(s) to {CATALOG_TENANTS}")


def echo_json(value: Any) -> None:
    def plain(item: Any) -> Any:
        return item.model_dump(mode="json") if isinstance(item, BaseModel) else item

    data = [plain(v) for v in value] if isinstance(value, list) else plain(value)
    typer.echo(json.dumps(data, indent=2, default=str))


def parse_assignments(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """["field=value", …] -> {field: value}."""
    parsed: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"{option} takes field=value, got {item!r}")
        parsed[name.strip()] = value
    return parsed


def gather_fields(
    provider: str,
    sets: Sequence[str] | None,
    secrets: Sequence[str] | None,
    secrets_from_env: Sequence[str] | None,
) -> dict[str, str]:
    """An account's fields from the options. Secrets never come from --set (shell
    history, `ps`): they are prompted for, hidden, or read from a variable."""
    from catalog.fields import provider_of

    with catalog_errors():
        secret_fields = provider_of(provider).secret_fields
    public = parse_assignments(sets, "--set")
    leaked = sorted(set(public) & set(secret_fields))
    if leaked:
        fail(
            f"{', '.join(leaked)} is secret for {provider}: give it with --secret "
            f"{leaked[0]} (prompted, hidden) or --secret-from-env {leaked[0]}=VARIABLE"
        )
    fields = dict(public)
    for name in secrets or ():
        _check_secret(secret_fields, provider, name)
        fields[name] = typer.prompt(f"{name}", hide_input=True, confirmation_prompt=False)
    for name, variable in parse_assignments(secrets_from_env, "--secret-from-env").items():
        _check_secret(secret_fields, provider, name)
        value = os.environ.get(variable)
        if value is None:
            fail(f"--secret-from-env {name}={variable}: the variable {variable} is not set")
        fields[name] = value
    return fields


def _check_secret(secret_fields: Sequence[str], provider: str, name: str) -> None:
    if name not in secret_fields:
        known = ", ".join(secret_fields) or "none"
        fail(f"{name!r} is not a secret field of {provider} (secret fields: {known}); use --set")
