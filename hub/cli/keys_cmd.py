"""`hub keys list | rotate | retire | rewrap | generate`: the master keys that wrap every secret.

Rotation adds a primary key, re-wraps every account's data key under it (the
secrets' ciphertexts stay) and republishes the tenants; once no account uses
an old key any more, `retire` removes it. Keys held in HUB_MASTER_KEYS are the
operator's to edit: the hub then only re-wraps (`rewrap`).
"""

from __future__ import annotations

import typer
from rich.table import Table

from hub.cli.catalog_support import catalog_errors, echo_json, open_catalog, publish
from hub.cli.common import console, settings

keys = typer.Typer(help="Master keys of the catalog's secrets.", no_args_is_help=True)


@keys.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every master key: which one encrypts, how many accounts each wraps, where keys live."""
    from core.crypto import key_file_info

    s = settings()
    service = open_catalog(s)
    usage = service.master_key_usage()
    primary = service.keyring.primary.key_id
    source = "HUB_MASTER_KEYS" if s.master_keys is not None else str(s.master_key_path)
    created = (
        {}
        if s.master_keys is not None
        else {k["id"]: k["created_at"] for k in key_file_info(s.master_key_path)}
    )
    rows = [
        {
            "id": key_id,
            "primary": key_id == primary,
            "accounts": count,
            "created_at": created.get(key_id, ""),
            "in_keyring": key_id in service.keyring.key_ids,
        }
        for key_id, count in usage.items()
    ]
    if as_json:
        echo_json(rows)
        return
    table = Table("key id", "primary", "accounts wrapped", "created")
    for row in rows:
        missing = "" if row["in_keyring"] else " [red](missing from the keyring)[/]"
        table.add_row(
            f"{row['id']}{missing}",
            "[green]yes[/]" if row["primary"] else "-",
            str(row["accounts"]),
            str(row["created_at"]) or "-",
        )
    console.print(table)
    console.print(f"keys from {source}")


@keys.command("rotate")
def rotate() -> None:
    """Add a new primary key to the key file and re-wrap every account under it."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        report = service.rotate_master_key()
    console.print(
        f"[green]✓[/] new primary key {report.primary_key_id}; "
        f"{report.accounts_rewrapped} account(s) re-wrapped in {len(report.tenants)} tenant(s)"
    )
    console.print(
        "Every component reading the catalog needs the key file with the new key; "
        "retire the old key with `hub keys retire` once they have it."
    )
    publish(service, s)


@keys.command("rewrap")
def rewrap() -> None:
    """Re-wrap every account not yet under the primary key (after editing HUB_MASTER_KEYS)."""
    s = settings()
    service = open_catalog(s)
    with catalog_errors():
        report = service.rewrap_all()
    console.print(
        f"[green]✓[/] {report.accounts_rewrapped} account(s) re-wrapped under "
        f"{report.primary_key_id} in {len(report.tenants)} tenant(s)"
    )
    publish(service, s)


@keys.command("retire")
def retire(key_id: str = typer.Argument(..., help="A key id from `hub keys list`.")) -> None:
    """Remove an old key from the key file; refused while any account still uses it."""
    service = open_catalog(settings())
    with catalog_errors():
        service.retire_master_key(key_id)
    console.print(f"[green]✓[/] master key {key_id} retired")


@keys.command("generate")
def generate() -> None:
    """Print a new key as an HUB_MASTER_KEYS entry (stored nowhere): append it to the variable."""
    from core.crypto import format_master_key, new_master_key

    typer.echo(format_master_key(new_master_key()))
