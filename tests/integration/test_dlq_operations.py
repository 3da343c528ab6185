"""`hub dlq`: list, stats, dry runs, purge, exactly-once resumable replay, growth alerts."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from support import hub_cli, hub_env

from core.dead_letters import Failure, SourceRecord, build_dead_letter
from core.kafka import admin_config, event_headers, producer_config, read_to_end
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import ALERTS, DLQ_AUDIT, dlq_topic
from hub.stack import HubStack
from schemas.codec import SingleObjectCodec
from schemas.events import Alert, DlqActionPhase, DlqAudit, encode_event

pytestmark = [pytest.mark.kafka, pytest.mark.stack]


def write_dead_letters(
    settings: Settings,
    stage: str,
    tenant: str,
    count: int,
    original_topic: str = "fees.invoices.v1",
) -> None:
    """Dead letters as a stage writes them, for a tenant no other test uses."""
    codec = SingleObjectCodec()
    producer = Producer(producer_config(settings, "dlq-test"))
    for n in range(count):
        record = SourceRecord(
            original_topic,
            0,
            n,
            None,
            f"{tenant}:{n}".encode(),
            f"value-{n}".encode(),
            [("hub.tenant", tenant.encode())],
        )
        letter = build_dead_letter(
            record,
            Failure(ValueError(f"bad record {n}"), retryable=False),
            stage=stage,
            worker="test",
        )
        producer.produce(
            dlq_topic(stage),
            key=record.key,
            value=encode_event(codec, letter),
            headers=event_headers(letter),
        )
    assert producer.flush(30) == 0


def new_topic(settings: Settings) -> str:
    name = f"test.replay-target.{secrets.token_hex(4)}"
    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(name, 3, 1)])[name].result(30)
    return name


def listed(settings: Settings, *args: str) -> list[dict[str, object]]:
    result = hub_cli(settings, "dlq", "list", "--json", "--limit", "100000", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_list_stats_dry_run_and_purge(hub_settings: Settings, stack: HubStack) -> None:
    tenant = f"dlq-{secrets.token_hex(3)}"
    write_dead_letters(hub_settings, "reconciler", tenant, 6)
    rows = listed(hub_settings, "--tenant", tenant)
    assert len(rows) == 6
    assert {r["error_class"] for r in rows} == {"ValueError"}
    assert all(str(r["id"]).startswith("reconciler:") and r["status"] == "pending" for r in rows)
    assert len(listed(hub_settings, "--tenant", tenant, "--error", "bad record 3")) == 1

    stats = hub_cli(hub_settings, "dlq", "stats", "--json")
    assert stats.returncode == 0
    assert json.loads(stats.stdout)["by_tenant"][tenant] == 6

    target = new_topic(hub_settings)
    dry = hub_cli(hub_settings, "dlq", "replay", "--tenant", tenant, "--to", target, "--dry-run")
    assert dry.returncode == 0 and "6 dead letter(s) would be replayed" in dry.stdout
    assert list(read_to_end(hub_settings, target)) == []

    purged = hub_cli(
        hub_settings, "dlq", "purge", "--tenant", tenant, "--error", "bad record 0", "--yes"
    )
    assert purged.returncode == 0, purged.stderr + purged.stdout
    assert len(listed(hub_settings, "--tenant", tenant)) == 5
    assert len(listed(hub_settings, "--tenant", tenant, "--status", "purged")) == 1


def test_replay_killed_midway_and_run_again_replays_every_record_exactly_once(
    hub_settings: Settings, stack: HubStack
) -> None:
    tenant = f"dlq-{secrets.token_hex(3)}"
    count = 300
    write_dead_letters(hub_settings, "normalizer", tenant, count)
    target = new_topic(hub_settings)
    argv = [
        sys.executable,
        "-m",
        "hub",
        "dlq",
        "replay",
        "--tenant",
        tenant,
        "--stage",
        "normalizer",
        "--to",
        target,
        "--rate",
        "40",
    ]
    with TopicWatcher(hub_settings, [target], since_ms=0) as watch:
        first = subprocess.Popen(
            argv, env=hub_env(hub_settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill it, without warning, once some (not all) batches are committed.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(watch.undecodable) < 40:
            watch.poll(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    partial = len(list(read_to_end(hub_settings, target)))
    assert 0 < partial < count, "the replay was interrupted half way"

    second = hub_cli(
        hub_settings, "dlq", "replay", "--tenant", tenant, "--stage", "normalizer", "--to", target
    )
    assert second.returncode == 0, second.stderr + second.stdout

    replayed = Counter(
        dict(msg.headers() or []).get("hub.replay.of") for msg in read_to_end(hub_settings, target)
    )
    assert len(replayed) == count, "no dead letter skipped"
    assert set(replayed.values()) == {1}, "none replayed twice"
    assert listed(hub_settings, "--tenant", tenant) == []  # all marked replayed
    audits = [
        e for t, e in _audit_events(hub_settings) if isinstance(e, DlqAudit) and tenant in e.filter
    ]
    phases = Counter(a.phase for a in audits)
    assert phases[DlqActionPhase.STARTED] == 2 and phases[DlqActionPhase.COMPLETED] == 1
    completed = next(a for a in audits if a.phase is DlqActionPhase.COMPLETED)
    assert completed.selected == completed.done == count - partial


def _audit_events(settings: Settings) -> list[tuple[str, object]]:
    with TopicWatcher(settings, [DLQ_AUDIT], since_ms=0) as watch:
        watch.settle(2.0)
        return list(watch.events)


def test_a_dead_letter_topic_growing_fast_raises_an_alert(
    hub_settings: Settings, stack: HubStack
) -> None:
    topic = dlq_topic("connector-sendgrid")  # no other test writes here
    with TopicWatcher(hub_settings, [ALERTS]) as watch:
        write_dead_letters(
            hub_settings,
            "connector-sendgrid",
            f"dlq-{secrets.token_hex(3)}",
            hub_settings.dlq_alert_threshold + 2,
            original_topic="connector.sendgrid.commands.v1",
        )
        alert = watch.wait_for(Alert, lambda a: a.subject == topic, timeout=20)[0]
    assert alert.rule == "dlq.growth"
    assert alert.observed > alert.threshold == hub_settings.dlq_alert_threshold
    assert "hub dlq list --stage connector-sendgrid" in alert.message
