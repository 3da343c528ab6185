"""Outbound sync: from a declarative mapping, the connector commands a change causes. Pure."""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from providers import names as provider_names
from schemas.events import (
    ConnectorCommand,
    EventHeader,
    SendPush,
    UpdateAppProfile,
    UpdateDirectoryUser,
    UpdateSmsContact,
)

DEFAULT_MAPPING = Path(__file__).with_name("sync_mapping.toml")
PAYLOADS = {
    p.OPERATION: p for p in (UpdateDirectoryUser, UpdateAppProfile, UpdateSmsContact, SendPush)
}
OP_NAMES = {"c": "create", "u": "update", "d": "delete"}
SOURCE = "cdc-consumer"


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    name: str
    entity: str
    provider: str
    operation: str
    ops: frozenset[str]
    when_changed: frozenset[str]
    fields: dict[str, Any]  # payload field -> template (or a table of templates)

    def applies(self, entity: str, op: str, changed: frozenset[str]) -> bool:
        return (
            self.entity == entity
            and OP_NAMES.get(op, op) in self.ops
            and bool(self.when_changed & changed)
        )


def _columns(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def render(template: str, row: dict[str, Any]) -> str | None:
    """Fill a template from the row; a template that is just one null column is null."""
    columns = _columns(template)
    if len(columns) == 1 and template == "{" + columns[0] + "}":
        value = row.get(columns[0])
        return None if value is None else str(value)
    return template.format_map({c: "" if row.get(c) is None else row[c] for c in columns})


def _render_all(fields: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _render_all(value, row) if isinstance(value, dict) else render(value, row)
        for name, value in fields.items()
    }


def _target(raw: dict[str, Any]) -> Target:
    try:
        target = Target(
            raw["name"],
            raw["entity"],
            raw["provider"],
            raw["operation"],
            frozenset(raw.get("ops", ["create", "update"])),
            frozenset(raw["when_changed"]),
            dict(raw["fields"]),
        )
    except KeyError as exc:
        raise MappingError(f"sync target {raw.get('name', '?')} has no {exc}") from None
    if target.provider not in provider_names():
        raise MappingError(f"{target.name}: unknown provider {target.provider!r}")
    if target.operation not in PAYLOADS:
        raise MappingError(
            f"{target.name}: unknown operation {target.operation!r}; "
            f"choose from {', '.join(PAYLOADS)}"
        )
    unknown = set(target.fields) - set(PAYLOADS[target.operation].model_fields)
    if unknown:
        raise MappingError(f"{target.name}: {target.operation} has no field(s) {sorted(unknown)}")
    return target


def load_mapping(path: Path = DEFAULT_MAPPING) -> list[Target]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"cannot read the sync mapping {path}: {exc}") from exc
    targets = [_target(raw) for raw in document.get("targets", [])]
    names = [t.name for t in targets]
    if len(names) != len(set(names)):
        raise MappingError(f"{path}: target names must be unique")
    return targets


@dataclass(frozen=True)
class Change:
    tenant: str
    entity: str
    entity_id: str
    op: str
    changed: frozenset[str]
    row: dict[str, Any]
    position: str  # the change's place in the source log (LSN): the idempotency key's anchor
    cause: EventHeader


def commands_for(change: Change, targets: list[Target]) -> list[ConnectorCommand]:
    """One command per target this change concerns. The idempotency key names the
    change's log position, so a change replayed after a restart calls nobody twice."""
    commands = []
    for target in targets:
        if not target.applies(change.entity, change.op, change.changed):
            continue
        try:
            payload = PAYLOADS[target.operation].model_validate(
                _render_all(target.fields, change.row)
            )
        except ValidationError as exc:
            raise MappingError(
                f"{target.name}: the row does not fill {target.operation}: "
                f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            ) from exc
        commands.append(
            ConnectorCommand(
                header=change.cause.caused(f"connector.{target.operation}", source=SOURCE),
                idempotency_key=f"sync:{target.name}:{change.entity}:{change.entity_id}:{change.position}",
                ordering_key=f"{change.entity}:{change.entity_id}",
                ordering_version=int(change.position) if change.position.isdigit() else None,
                provider=target.provider,
                payload=payload,
                context={
                    "target": target.name,
                    "entity": change.entity,
                    "entity_id": change.entity_id,
                    "position": change.position,
                },
            )
        )
    return commands
