"""The cluster launcher's pure parts: each node's properties, ports, bookkeeping.
No process is started here (tests/integration/test_local_cluster.py starts one)."""

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from core.ports import candidate_range, ephemeral_range, free_port
from core.settings import Settings
from core.topic_admin import Action, TopicPlan, execute
from core.topics import TopicSpec
from hub.local_cluster import (
    ClusterConfig,
    LocalCluster,
    PartitionState,
    busiest,
    node_properties,
)
from hub.local_kafka import KafkaSetupError, PortInUseError, pid_running

PORTS = (21001, 21002, 21003)
CONTROLLERS = (22001, 22002, 22003)


def config(tmp_path: Path, **kw: Any) -> ClusterConfig:
    return ClusterConfig(home=tmp_path, ports=PORTS, controller_ports=CONTROLLERS, **kw)


def props(cfg: ClusterConfig, node_id: int) -> dict[str, str]:
    lines = [line for line in node_properties(cfg, node_id).splitlines() if line]
    return dict(line.split("=", 1) for line in lines)


def test_every_node_is_a_voter_of_one_static_quorum(tmp_path: Path):
    cfg = config(tmp_path)
    voters = "1@127.0.0.1:22001,2@127.0.0.1:22002,3@127.0.0.1:22003"
    for n in (1, 2, 3):
        p = props(cfg, n)
        assert p["node.id"] == str(n)
        assert p["process.roles"] == "broker,controller"
        assert p["controller.quorum.voters"] == voters
        # Static quorum: no dynamic bootstrap servers beside the voters.
        assert "controller.quorum.bootstrap.servers" not in p


def test_each_node_listens_on_its_own_loopback_ports_and_data_dir(tmp_path: Path):
    cfg = config(tmp_path)
    for n, port, ctrl in zip((1, 2, 3), PORTS, CONTROLLERS, strict=True):
        p = props(cfg, n)
        assert p["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}"
        assert p["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
        assert p["log.dirs"] == str(tmp_path / "cluster-21001" / f"node-{n}" / "data")
    assert cfg.bootstrap == "127.0.0.1:21001,127.0.0.1:21002,127.0.0.1:21003"
    assert LocalCluster(cfg).bootstrap == cfg.bootstrap


def test_three_replicas_two_in_sync_for_every_topic_the_brokers_keep(tmp_path: Path):
    p = props(config(tmp_path), 2)
    assert p["default.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2"
    assert p["offsets.topic.replication.factor"] == "3"
    assert p["transaction.state.log.replication.factor"] == "3"
    assert p["transaction.state.log.min.isr"] == "2"
    assert p["share.coordinator.state.topic.replication.factor"] == "3"
    assert p["share.coordinator.state.topic.min.isr"] == "2"
    assert p["unclean.leader.election.enable"] == "false"
    assert p["auto.create.topics.enable"] == "false"
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert int(p["log.cleaner.dedupe.buffer.size"]) < 128 * 1024 * 1024


def test_a_killed_broker_is_fenced_within_seconds_but_not_on_one_missed_heartbeat(
    tmp_path: Path,
):
    p = props(config(tmp_path), 1)
    session, heartbeat = int(p["broker.session.timeout.ms"]), int(p["broker.heartbeat.interval.ms"])
    assert session <= 5000
    assert session >= 4 * heartbeat


@pytest.mark.parametrize(("nodes", "min_isr"), [(1, 1), (3, 2), (5, 3)])
def test_min_insync_replicas_is_a_majority(tmp_path: Path, nodes: int, min_isr: int):
    cfg = ClusterConfig(home=tmp_path, nodes=nodes)
    p = props(cfg, nodes)
    assert p["min.insync.replicas"] == str(min_isr)
    assert p["default.replication.factor"] == str(nodes)
    assert len(p["controller.quorum.voters"].split(",")) == nodes


def test_default_ports_are_free_distinct_and_outside_the_ephemeral_range(tmp_path: Path):
    cfg = ClusterConfig(home=tmp_path)
    every = cfg.ports + cfg.controller_ports
    assert len(cfg.ports) == len(cfg.controller_ports) == 3
    assert len(set(every)) == 6
    assert all(port in candidate_range(ephemeral_range()) for port in every)


def test_ports_that_do_not_fit_the_nodes_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="2 ports for 3 nodes"):
        ClusterConfig(home=tmp_path, ports=(21001, 21002))
    with pytest.raises(ValueError, match="differ"):
        ClusterConfig(home=tmp_path, ports=PORTS, controller_ports=(22001, 22002, 21001))
    with pytest.raises(ValueError, match="no node 4"):
        config(tmp_path).port(4)


def test_a_taken_port_fails_up_before_anything_is_formatted(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        ports = (taken, free_port(), free_port())
        cluster = LocalCluster(ClusterConfig(home=tmp_path, ports=ports))
        with pytest.raises(PortInUseError, match=str(taken)):
            cluster.up(timeout=1)
    assert not cluster.cfg.dir.exists()
    assert cluster.pids() == {}


def test_a_cluster_that_never_ran_has_nothing_to_stop_or_kill(tmp_path: Path):
    cluster = LocalCluster(config(tmp_path))
    assert cluster.pids() == {}
    assert cluster.cluster_id() is None
    assert cluster.down() == []
    with pytest.raises(KafkaSetupError, match="node 2 is not running"):
        cluster.kill(2)


def test_a_stale_state_file_never_makes_another_process_a_node(tmp_path: Path):
    cfg = config(tmp_path)
    cfg.dir.mkdir(parents=True)
    # This test's own pid: alive, but its command line is not node 1's.
    cfg.state_file.write_text(f'{{"nodes": {{"1": {os.getpid()}}}}}')
    assert LocalCluster(cfg).pids() == {}


def state(leader: int, replicas: tuple[int, ...], isr: tuple[int, ...]) -> PartitionState:
    return PartitionState("t", 0, leader, replicas, isr)


def test_a_partition_is_in_sync_only_with_a_leader_and_every_replica_in_its_isr():
    assert state(1, (1, 2, 3), (3, 1, 2)).in_sync
    assert not state(1, (1, 2, 3), (1, 2)).in_sync
    assert not state(-1, (1, 2, 3), (1, 2, 3)).in_sync


def test_the_busiest_leader_leads_the_most_partitions_lowest_id_on_a_tie():
    assert busiest([2, 3, 2, 1, -1, -1, -1]) == 2
    assert busiest([3, 1, 3, 1]) == 1
    with pytest.raises(KafkaSetupError):
        busiest([-1, -1])


class RecordingAdmin:
    def __init__(self) -> None:
        self.created: list[Any] = []

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
        self.created += topics
        return {}


def test_the_topic_admin_creates_topics_with_the_replication_factor_given():
    spec = TopicSpec("a.b.v1", "k", "s", "d")
    admin = RecordingAdmin()
    execute(admin, [TopicPlan(spec, 3, Action.CREATE)], replication_factor=3)  # type: ignore[arg-type]
    execute(admin, [TopicPlan(spec, 3, Action.CREATE)])  # type: ignore[arg-type]
    assert [t.replication_factor for t in admin.created] == [3, 1]


def test_the_replication_factor_setting_defaults_to_one_and_reads_its_variable(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("HUB_TOPIC_REPLICATION_FACTOR", raising=False)
    assert Settings().topic_replication_factor == 1
    monkeypatch.setenv("HUB_TOPIC_REPLICATION_FACTOR", "3")
    assert Settings().topic_replication_factor == 3
    monkeypatch.setenv("HUB_TOPIC_REPLICATION_FACTOR", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Settings()


def test_a_process_runs_while_its_command_line_carries_the_marker():
    own = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0]
    assert pid_running(os.getpid(), own)
    assert not pid_running(os.getpid(), b"kafka.Kafka /no/such/server.properties")
    assert not pid_running(2**22 + 1, own)  # above any pid_max: no such process
