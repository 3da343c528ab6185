"""`hub topics apply | list`: the topic catalog as code."""

from __future__ import annotations

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.table import Table

from core.kafka import admin_config
from core.topic_admin import Action, apply_catalog
from core.topics import DAY_MS
from hub.cli.common import console, fail, settings
from providers import topics as topic_catalog

app = typer.Typer(help="Create and inspect the hub's topics.", no_args_is_help=True)


def _retention(ms: int) -> str:
    return f"{ms // DAY_MS}d" if ms % DAY_MS == 0 else f"{ms}ms"


@app.command("list")
def list_() -> None:
    """Show the catalog: every topic, its key, schema and retention."""
    s = settings()
    table = Table("topic", "key", "value schema", "partitions", "retention", "cleanup")
    for spec in topic_catalog(s):
        table.add_row(
            spec.name,
            spec.key,
            spec.value_schema.rsplit(".", 1)[-1],
            str(spec.partitions or s.topic_partitions),
            _retention(spec.retention_ms),
            spec.cleanup_policy,
        )
    console.print(table)


@app.command()
def apply() -> None:
    """Create missing topics and fix drifted configs. Safe to run any number of times."""
    s = settings()
    try:
        plans = apply_catalog(
            AdminClient(admin_config(s)),
            topic_catalog(s),
            s.topic_partitions,
            s.topic_replication_factor,
        )
    except KafkaException as exc:
        fail(
            f"cannot apply topics to {s.bootstrap_servers}: {exc}. "
            "Is Kafka up (`hub kafka status`)?"
        )
    table = Table("topic", "action", "detail")
    colors = {
        Action.CREATE: "green",
        Action.UPDATE_CONFIG: "yellow",
        Action.UNCHANGED: "dim",
        Action.PARTITION_DRIFT: "red",
    }
    for p in plans:
        detail = p.note or ", ".join(f"{k}={v}" for k, v in p.config_changes.items())
        table.add_row(p.spec.name, f"[{colors[p.action]}]{p.action}[/]", detail)
    console.print(table)
    counts = {a: sum(p.action is a for p in plans) for a in Action}
    console.print(" ".join(f"{a}: {n}" for a, n in counts.items() if n))
