"""A real three-node KRaft cluster: the leader of partition 0 is SIGKILLed while an
idempotent acks=all producer writes, comes back, catches up, and a read_committed
consumer still reads every record exactly once, in order per partition.

Its own cluster on free ports under tmp_path, not the session broker: this test
requests none of tests/conftest.py's fixtures.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import ConfigResource

from core.kafka import consumer_config, producer_config
from core.settings import Settings
from core.topic_admin import apply_catalog
from core.topics import TopicSpec
from hub.local_cluster import ClusterConfig, LocalCluster, partition_states
from hub.local_kafka import KafkaSetupError

# The whole test, cluster start included, takes ~40 s on 2 cores; bounded well below 300 s.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

TOPIC = "chaos.records.v1"
RECORDS = 2000


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    instance = LocalCluster(ClusterConfig(home=tmp_path, cache_home=Settings().home))
    try:
        instance.up(timeout=120)
        yield instance
    finally:
        instance.down(kill=True)  # a no-op when the test already stopped it


def settings_for(cluster: LocalCluster) -> Settings:
    return Settings(kafka_bootstrap_servers=cluster.bootstrap)


def create_topic(cluster: LocalCluster) -> None:
    spec = TopicSpec(TOPIC, "k<n>", "none", "records of the failover test", partitions=3)
    apply_catalog(cluster.admin(), [spec], default_partitions=3, replication_factor=3)
    cluster.wait_in_sync([TOPIC], timeout=30)
    states = partition_states(cluster.metadata(), [TOPIC])
    assert [len(s.replicas) for s in states] == [3, 3, 3]
    resource = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
    config = cluster.admin().describe_configs([resource])[resource].result(timeout=10)
    assert config["min.insync.replicas"].value == "2"  # the brokers' default


def produce_killing_leader(cluster: LocalCluster, victim: int) -> tuple[list[str], int]:
    """Kills `victim` halfway; every delivery error (none expected), and how many
    records were still unacknowledged when it died."""
    errors: list[str] = []
    in_flight = 0

    def report(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(producer_config(settings_for(cluster), "failover-test"))
    for i in range(RECORDS):
        producer.produce(TOPIC, key=f"k{i % 40}", value=str(i).encode(), on_delivery=report)
        producer.poll(0)
        if i == RECORDS // 2:
            in_flight = len(producer)
            cluster.kill(victim)
        time.sleep(0.001)  # ~2 s of writing: the kill lands mid-flow
    assert producer.flush(60) == 0
    return errors, in_flight


def consume_all(cluster: LocalCluster) -> dict[int, list[int]]:
    """Partition -> values in the order read; reads on 2 s past the last expected record
    so duplicates would show."""
    consumer = Consumer(consumer_config(settings_for(cluster), "failover-test-reader"))
    consumer.subscribe([TOPIC])
    read: dict[int, list[int]] = defaultdict(list)
    deadline, quiet_until = time.monotonic() + 45, None
    try:
        while time.monotonic() < deadline and (
            quiet_until is None or time.monotonic() < quiet_until
        ):
            for msg in consumer.consume(500, timeout=0.5):
                assert msg.error() is None, msg.error()
                value = msg.value()
                assert value is not None
                read[msg.partition()].append(int(value))
            if quiet_until is None and sum(map(len, read.values())) >= RECORDS:
                quiet_until = time.monotonic() + 2
    finally:
        consumer.close()
    return read


def test_killing_the_leader_mid_flow_loses_and_duplicates_nothing(cluster: LocalCluster):
    create_topic(cluster)
    victim = cluster.leader_of(TOPIC, 0)
    assert cluster.busiest_leader([TOPIC]) in (1, 2, 3)

    errors, in_flight = produce_killing_leader(cluster, victim)

    assert in_flight > 0  # the kill landed mid-flow, not between two batches
    assert errors == []
    assert victim not in cluster.pids()
    assert cluster.leader_of(TOPIC, 0) != victim  # leadership failed over
    cluster.start(victim, timeout=60)
    assert all(len(s.isr) == 3 for s in partition_states(cluster.metadata(), [TOPIC]))

    read = consume_all(cluster)
    values = [v for vs in read.values() for v in vs]
    assert len(values) == RECORDS
    assert Counter(values) == Counter(range(RECORDS))  # each exactly once
    for partition, vs in read.items():
        assert vs == sorted(vs), f"partition {partition} out of order"
    assert len(read) == 3

    pids = cluster.pids()
    assert sorted(pids) == [1, 2, 3]
    assert cluster.down() == [1, 2, 3]
    assert [pid for pid in pids.values() if Path(f"/proc/{pid}").exists()] == []
    assert processes_of(cluster) == []


def processes_of(cluster: LocalCluster) -> list[int]:
    """Any process whose command line names this cluster's directory."""
    marker = str(cluster.cfg.dir).encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_an_up_that_fails_half_way_leaves_no_process_behind(tmp_path: Path):
    cluster = LocalCluster(ClusterConfig(home=tmp_path, cache_home=Settings().home))
    try:
        # Formatted and spawned, then out of time at the first readiness check.
        with pytest.raises(KafkaSetupError, match="timed out"):
            cluster.up(timeout=0.1)
        assert all(cluster.cfg.log_file(n).exists() for n in (1, 2, 3))  # they did start
        assert processes_of(cluster) == []
        assert cluster.pids() == {}
        assert not cluster.cfg.state_file.exists()
    finally:
        cluster.down(kill=True)
