"""Change data capture sync streams: the latest state of a row, and each change."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from schemas.events._base import Event, _Model, entity_key

Value = bool | int | float | str | None


class CdcSource(_Model):
    db: str
    schema_: str = Field(alias="schema")
    table: str
    lsn: int | None = None
    tx_id: int | None = None
    committed_at: datetime
    snapshot: bool = False

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )


class EntityState(Event):
    SCHEMA = "com.integrationhub.EntityState"
    EVENT_TYPE = "sync.entity.state"

    entity: str
    entity_id: str
    attributes: dict[str, Value]
    source: CdcSource

    def key(self) -> str:
        return entity_key(self.header.tenant, self.entity_id)


class ChangeOp(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class FieldChange(_Model):
    field: str
    old: Value = None
    new: Value = None


class EntityChange(Event):
    SCHEMA = "com.integrationhub.EntityChange"
    EVENT_TYPE = "sync.entity.changed"

    entity: str
    entity_id: str
    op: ChangeOp
    changes: list[FieldChange]
    source: CdcSource

    def key(self) -> str:
        return entity_key(self.header.tenant, self.entity_id)
