"""Apply the topic catalog to a cluster, idempotently.

`plan` is pure: it compares the catalog with what the cluster has and says
what to do. `apply_catalog` carries the plan out with the AdminClient. A
partition count that differs is reported, never changed: adding partitions
moves keys to other partitions and breaks per-entity order and the
processors' tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from core.topics import TopicSpec


class Action(StrEnum):
    CREATE = "create"
    UPDATE_CONFIG = "update config"
    UNCHANGED = "unchanged"
    PARTITION_DRIFT = "partition drift"


@dataclass(frozen=True)
class ExistingTopic:
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class TopicPlan:
    spec: TopicSpec
    partitions: int
    action: Action
    config_changes: dict[str, str] = field(default_factory=dict)
    note: str = ""


def plan(
    specs: list[TopicSpec], existing: dict[str, ExistingTopic], default_partitions: int
) -> list[TopicPlan]:
    plans = []
    for spec in specs:
        partitions = spec.partitions or default_partitions
        current = existing.get(spec.name)
        if current is None:
            plans.append(TopicPlan(spec, partitions, Action.CREATE))
            continue
        changes = {k: v for k, v in spec.config().items() if current.config.get(k) != v}
        if current.partitions != partitions:
            note = f"has {current.partitions} partitions, catalog says {partitions}; not changed"
            plans.append(TopicPlan(spec, partitions, Action.PARTITION_DRIFT, changes, note))
        elif changes:
            plans.append(TopicPlan(spec, partitions, Action.UPDATE_CONFIG, changes))
        else:
            plans.append(TopicPlan(spec, partitions, Action.UNCHANGED))
    return plans


def describe_existing(
    admin: AdminClient, names: list[str], timeout: float = 10.0
) -> dict[str, ExistingTopic]:
    metadata = admin.list_topics(timeout=timeout)
    present = [n for n in names if n in metadata.topics]
    if not present:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present]
    configs = {
        resource.name: {k: str(v.value) for k, v in future.result(timeout=timeout).items()}
        for resource, future in admin.describe_configs(resources).items()
    }
    return {
        n: ExistingTopic(len(metadata.topics[n].partitions), configs.get(n, {})) for n in present
    }


def execute(
    admin: AdminClient,
    plans: list[TopicPlan],
    timeout: float = 30.0,
    *,
    replication_factor: int = 1,
) -> None:
    """Create the missing topics with `replication_factor` replicas per partition
    (their min.insync.replicas is the brokers' default), set drifted configs. An
    existing topic's replication factor is never changed here."""
    to_create = [
        NewTopic(p.spec.name, p.partitions, replication_factor, config=p.spec.config())
        for p in plans
        if p.action is Action.CREATE
    ]
    if to_create:
        for future in admin.create_topics(to_create, operation_timeout=timeout).values():
            future.result(timeout=timeout)
    to_alter = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            p.spec.name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in p.config_changes.items()
            ],
        )
        for p in plans
        if p.action is Action.UPDATE_CONFIG
    ]
    if to_alter:
        for future in admin.incremental_alter_configs(to_alter).values():
            future.result(timeout=timeout)


def apply_catalog(
    admin: AdminClient,
    specs: list[TopicSpec],
    default_partitions: int,
    replication_factor: int = 1,
) -> list[TopicPlan]:
    """`replication_factor`: settings.topic_replication_factor; 1 suits the single
    local broker, 3 a cluster that must survive losing a broker."""
    plans = plan(specs, describe_existing(admin, [s.name for s in specs]), default_partitions)
    execute(admin, plans, replication_factor=replication_factor)
    return plans
