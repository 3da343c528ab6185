"""Kafka over SASL_SSL (SCRAM-SHA-512, TLS from a throwaway CA) on the session broker's
second listener: the hub's clients work over it, and wrong credentials or an untrusted
certificate are a clear error at start instead of a client that retries forever."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import text
from support import open_invoice, watch_all

from core.kafka import AsyncProducer, Record, admin_config, producer_config, read_to_end
from core.kafka_preflight import KafkaConnectionError, check_connection
from core.ports import free_port
from core.settings import Settings
from core.topics import cdc_topic, table_topic
from hub import erp
from hub.cdc_source import streaming
from hub.local_kafka import LocalBroker
from hub.local_postgres import LocalPostgres
from hub.local_tls import cert_pem, make_ca
from hub.stack import child_env
from processors.runner import Stage, StageRunner, StepContext
from schemas.codec import make_codec
from schemas.events import InvoiceStatus, InvoiceStatusChanged
from simulators.client import SimulatorClient

pytestmark = pytest.mark.kafka


def _sasl(broker: LocalBroker, **changes: object) -> Settings:
    return Settings.model_validate({**broker.cfg.sasl_settings(), **changes})


def test_the_sasl_listener_takes_the_scram_user_and_refuses_plaintext_clients(
    broker: LocalBroker,
) -> None:
    settings = _sasl(broker)
    check_connection(settings, require_reachable=True)
    metadata = AdminClient(admin_config(settings)).list_topics(timeout=10)
    # The broker advertises its SASL_SSL address to clients that came in through it.
    assert {b.port for b in metadata.brokers.values()} == {broker.cfg.sasl_port}
    plain = Settings(kafka_bootstrap_servers=settings.bootstrap_servers)
    with pytest.raises(KafkaConnectionError, match="did not answer"):
        check_connection(plain, timeout=3, require_reachable=True)


def test_a_wrong_password_is_an_error_at_start_naming_the_mechanism_and_user(
    broker: LocalBroker,
) -> None:
    wrong = _sasl(broker, kafka_sasl_password="not-the-password")
    with pytest.raises(KafkaConnectionError) as raised:
        check_connection(wrong, timeout=15)
    message = str(raised.value)
    assert "SCRAM-SHA-512" in message
    assert "'hub'" in message
    assert "HUB_KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message


def test_a_broker_certificate_from_another_ca_is_an_error_at_start(
    broker: LocalBroker, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(cert_pem(make_ca("someone else's CA").cert))
    untrusted = _sasl(broker, kafka_ssl_ca_file=other_ca)
    with pytest.raises(KafkaConnectionError) as raised:
        check_connection(untrusted, timeout=15)
    assert "TLS" in str(raised.value)
    assert str(other_ca) in str(raised.value)


def test_hub_kafka_check_says_connected_or_why_not(broker: LocalBroker) -> None:
    def check(settings: Settings) -> subprocess.CompletedProcess[str]:
        env = {**child_env(settings), "COLUMNS": "300"}
        argv = [sys.executable, "-m", "hub", "kafka", "check", "--timeout", "10"]
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    good = check(_sasl(broker, home=broker.cfg.home))
    assert good.returncode == 0, good.stderr
    assert "connected (SASL_SSL, SCRAM-SHA-512 as hub)" in good.stdout
    bad = check(_sasl(broker, home=broker.cfg.home, kafka_sasl_password="wrong-one"))
    assert bad.returncode == 1
    assert "refused SASL SCRAM-SHA-512 authentication" in " ".join(bad.stderr.split())


def test_a_missing_ca_file_is_an_error_at_start(broker: LocalBroker, tmp_path: Path) -> None:
    missing = _sasl(broker, kafka_ssl_ca_file=tmp_path / "nowhere.pem")
    with pytest.raises(KafkaConnectionError, match="HUB_KAFKA_SSL_"):
        check_connection(missing, timeout=5)


def _echo_first(output: str, table: str) -> Stage:
    """Echoes the first record of each key; the keys seen are its (transactional) state."""

    def step(ctx: StepContext, msg: Message) -> list[Record]:
        seen = ctx.table(table)
        key = (msg.key() or b"").decode()
        if key in seen:
            return []
        seen.set(key, msg.offset())
        return [Record(output, msg.key(), msg.value(), [])]

    return Stage("test-sasl-echo", (), step, tables=(table,))


def test_producer_stage_runner_and_consumer_all_work_over_sasl_ssl(broker: LocalBroker) -> None:
    settings = _sasl(broker, instance_id=f"sasl-{uuid.uuid4().hex[:6]}")
    tag = uuid.uuid4().hex[:8]
    source, output, table = f"test.sasl-in-{tag}.v1", f"test.sasl-out-{tag}.v1", f"sasl-{tag}"
    admin = AdminClient(admin_config(settings))
    created = admin.create_topics(
        [
            NewTopic(source, 3, 1),
            NewTopic(output, 3, 1),
            NewTopic(table_topic(table), 3, 1, config={"cleanup.policy": "compact"}),
        ]
    )
    for future in created.values():
        future.result(30)
    producer = Producer(producer_config(settings, "test-sasl"))
    for i in [*range(30), *range(10)]:  # 40 records, 30 distinct keys
        producer.produce(source, key=f"k{i}", value=f"v{i}".encode())
    assert producer.flush(15) == 0

    stage = _echo_first(output, table)
    stage = Stage(stage.name, (source,), stage.step, tables=stage.tables)
    runner = StageRunner(settings, f"test-sasl-{tag}", [stage], make_codec(None), batch_size=10)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        echoed: list[Message] = []
        while len(echoed) < 30 and time.monotonic() < deadline:
            echoed = list(read_to_end(settings, output, timeout=20))
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
    assert sorted((m.key() or b"").decode() for m in echoed) == sorted(f"k{i}" for i in range(30))
    state = {(m.key() or b"").decode() for m in read_to_end(settings, table_topic(table))}
    assert state == {f"k{i}" for i in range(30)}


def test_the_ingress_producer_is_acknowledged_over_sasl_ssl(broker: LocalBroker) -> None:
    settings = _sasl(broker)
    topic = f"test.sasl-async-{uuid.uuid4().hex[:8]}.v1"
    admin = AdminClient(admin_config(settings))  # kept: a dropped client fails its futures
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)

    async def send() -> Message:
        producer = AsyncProducer(producer_config(settings, "test-sasl-ingress"))
        try:
            return await producer.produce(topic, b"webhook", key="k")
        finally:
            producer.close()

    assert asyncio.run(send()).topic() == topic
    assert [m.value() for m in read_to_end(settings, topic)] == [b"webhook"]


@pytest.mark.stack
def test_the_fee_module_pays_an_invoice_through_sasl_ssl(
    broker: LocalBroker, hub_settings: Settings, sim: SimulatorClient
) -> None:
    """The fee module's side (the producer library, a watcher) over SASL_SSL; the hub's
    stages read what it wrote and it reads what they wrote: one cluster, two listeners."""
    settings = _sasl(broker, home=hub_settings.home)
    with watch_all(settings) as watch:
        opened = open_invoice(settings, watch)
        assert sim.pay_order(opened.order_id, "captured")["webhook_status"] == 200
        paid = watch.wait_for(
            InvoiceStatusChanged,
            lambda e: e.invoice_id == opened.invoice.invoice_id,
            timeout=15,
        )[0]
    assert paid.status is InvoiceStatus.PAID


def test_the_debezium_connect_worker_streams_changes_over_sasl_ssl(
    broker: LocalBroker, hub_settings: Settings, postgres: LocalPostgres
) -> None:
    """Kafka Connect (Java clients, the SCRAM login sealed and resolved by the hub's config
    provider) creates its topics and writes Debezium's change events through SASL_SSL."""
    tag = uuid.uuid4().hex[:6]
    settings = _sasl(
        broker,
        # The session's home: the Debezium classpath and config provider are cached there.
        home=hub_settings.home,
        postgres_dsn=postgres.cfg.dsn,
        cdc_source_name=f"sasl{tag}",
        cdc_slot_name=f"hub_sasl_{tag}",
        outbox_slot_name=f"hub_sasl_outbox_{tag}",
        cdc_connect_port=free_port(),
        cdc_tables="students",
    )
    log = (hub_settings.home / f"cdc-sasl-{tag}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub", "cdc", "source"],
        env=child_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not streaming(settings) and time.monotonic() < deadline:
            assert worker.poll() is None, f"the worker exited; see {log.name}"
            time.sleep(1)
        assert streaming(settings), f"the connectors never ran; see {log.name}"
        student = f"SASL{tag}"
        erp.insert_student(
            erp.engine_for(settings.source_dsn),
            {"id": student, "name": "Asha Rao", "grade": "9", "section": "B"},
        )
        topic = cdc_topic(settings.cdc_source_name, "students")
        found: list[Message] = []
        while not found and time.monotonic() < deadline:
            found = [
                m for m in read_to_end(settings, topic) if student in (m.key() or b"").decode()
            ]
            time.sleep(0.5)
        assert found, f"no change event for {student} on {topic}"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        log.close()
        _drop_slots(settings)
    workdir = settings.home / "cdc" / f"{settings.cdc_source_name}-{settings.cdc_slot_name}"
    assert settings.kafka_sasl_password is not None
    password = settings.kafka_sasl_password.get_secret_value()
    assert "sasl.jaas.config=${hub:" in (workdir / "worker.properties").read_text()
    assert password not in (workdir / "worker.properties").read_text()


def _drop_slots(settings: Settings) -> None:
    """The test's replication slots, so the session's database keeps no WAL for them."""
    with erp.engine_for(settings.source_dsn).begin() as conn:
        for slot in (settings.cdc_slot_name, settings.outbox_slot_name):
            conn.execute(
                text(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = :slot AND NOT active"
                ),
                {"slot": slot},
            )
