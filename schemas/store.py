"""Every .avsc under schemas/avro, parsed once at import of the store.

Files are named `<namespace>.<Name>.avsc` so fastavro's `load_schema` resolves
a reference to a named type (EventHeader, Contact) from its sibling file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

AVRO_DIR = Path(__file__).parent / "avro"
NAMESPACE = "com.integrationhub"


class UnknownSchemaError(LookupError):
    pass


@dataclass(frozen=True)
class SchemaEntry:
    name: str
    parsed: Any
    canonical: str
    fingerprint: bytes  # CRC-64-AVRO, 8 bytes little-endian, as single-object encoding wants
    path: Path

    @property
    def is_event(self) -> bool:
        """A top-level event type: it carries the shared EventHeader."""
        return any(f["name"] == "header" for f in self.parsed.get("fields", ()))


def _load(path: Path) -> SchemaEntry:
    parsed = load_schema(str(path))
    if not isinstance(parsed, dict):
        raise TypeError(
            f"{path} must hold one named schema (a record), not {type(parsed).__name__}"
        )
    canonical = to_parsing_canonical_form(parsed)
    return SchemaEntry(
        name=parsed["name"],
        parsed=parsed,
        canonical=canonical,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        path=path,
    )


class SchemaStore:
    def __init__(self, directory: Path = AVRO_DIR) -> None:
        entries = [_load(p) for p in sorted(directory.glob("*.avsc"))]
        self._by_name = {e.name: e for e in entries}
        self._by_fingerprint = {e.fingerprint: e for e in entries}

    def get(self, name: str) -> SchemaEntry:
        full = name if "." in name else f"{NAMESPACE}.{name}"
        try:
            return self._by_name[full]
        except KeyError:
            raise UnknownSchemaError(f"no schema named {full!r} in {AVRO_DIR}") from None

    def by_fingerprint(self, fp: bytes) -> SchemaEntry | None:
        return self._by_fingerprint.get(fp)

    def entries(self) -> list[SchemaEntry]:
        return list(self._by_name.values())

    def events(self) -> list[SchemaEntry]:
        return [e for e in self._by_name.values() if e.is_event]


def _strip_internal(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_internal(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_strip_internal(v) for v in node]
    return node


def full_schema_json(entry: SchemaEntry) -> str:
    """Self-contained schema JSON with defaults and docs kept (named types inlined
    at first use), as a schema registry or a compatibility check needs it. The
    parsing canonical form would drop the defaults that make evolution safe."""
    return json.dumps(_strip_internal(entry.parsed), separators=(",", ":"))


@lru_cache(maxsize=1)
def default_store() -> SchemaStore:
    return SchemaStore()
