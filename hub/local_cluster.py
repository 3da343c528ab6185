"""A three-node Apache Kafka (KRaft) cluster on 127.0.0.1, for fault-injection tests.

Started by the single local broker's own pieces (hub/local_kafka.py): classpath,
storage formatter, kafka.Kafka in its own session. Every node is a combined
broker+controller and a voter of a *static* quorum (`controller.quorum.voters`):
the voters are known before the first start, so it takes one properties line and
a plain `format --cluster-id` per node. A dynamic quorum (`--initial-controllers`)
needs every controller's directory id up front, and what it buys, replacing a
voter that lost its disk, is never needed: `start()` reuses the node's data dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from core.ports import free_port, port_is_free
from hub.local_kafka import (
    KafkaSetupError,
    PortInUseError,
    format_storage,
    internal_topic_lines,
    kraft_node_lines,
    log_tail,
    new_cluster_id,
    pid_running,
    resolve_classpath,
    spawn_server,
    stop_group,
    wait_formatted,
)

if TYPE_CHECKING:
    from subprocess import Popen


@dataclass(frozen=True)
class ClusterConfig:
    home: Path
    nodes: int = 3
    heap: str = "384m"
    # Where the resolved classpath is cached; defaults to `home` (as BrokerConfig).
    cache_home: Path | None = None
    # Client (PLAINTEXT) and controller ports of node 1, 2, …; empty: free ports.
    ports: tuple[int, ...] = ()
    controller_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("a cluster needs at least one node")
        for name in ("ports", "controller_ports"):
            given: tuple[int, ...] = getattr(self, name)
            if not given:
                object.__setattr__(self, name, tuple(free_port() for _ in range(self.nodes)))
            elif len(given) != self.nodes:
                raise ValueError(f"{name} has {len(given)} ports for {self.nodes} nodes")
        every = self.ports + self.controller_ports
        if len(set(every)) != len(every):
            raise ValueError(f"ports must all differ: {every}")

    @property
    def node_ids(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def min_isr(self) -> int:
        # A majority, like the controller quorum: 2 of 3 (one node may be down).
        return self.nodes // 2 + 1

    @property
    def dir(self) -> Path:
        # Named by node 1's port (as broker-<port>): found again from the same config.
        return self.home / f"cluster-{self.ports[0]}"

    def node_dir(self, node_id: int) -> Path:
        self._check(node_id)
        return self.dir / f"node-{node_id}"

    def data_dir(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "data"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.log"

    def props_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.properties"

    @property
    def state_file(self) -> Path:
        return self.dir / "cluster.json"

    def port(self, node_id: int) -> int:
        self._check(node_id)
        return self.ports[node_id - 1]

    def controller_port(self, node_id: int) -> int:
        self._check(node_id)
        return self.controller_ports[node_id - 1]

    @property
    def voters(self) -> str:
        return ",".join(f"{n}@127.0.0.1:{self.controller_port(n)}" for n in self.node_ids)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _check(self, node_id: int) -> None:
        if node_id not in self.node_ids:
            raise ValueError(f"no node {node_id}: nodes are {list(self.node_ids)}")


def node_properties(cfg: ClusterConfig, node_id: int) -> str:
    quorum = f"controller.quorum.voters={cfg.voters}"
    lines = kraft_node_lines(
        node_id, cfg.port(node_id), cfg.controller_port(node_id), cfg.data_dir(node_id), quorum
    )
    replication = [
        f"default.replication.factor={cfg.nodes}",
        # acks=all then means "a majority has it": one node may die, nothing acked is lost.
        f"min.insync.replicas={cfg.min_isr}",
        *internal_topic_lines(cfg.nodes, cfg.min_isr),
        # Explicit (it is the default): a replica outside the ISR never becomes
        # leader, so killing a leader can never truncate acknowledged records.
        "unclean.leader.election.enable=false",
        # 10 instead of 50: fewer replicas to create when the first transactional
        # producer starts, on a 2-core machine running three brokers.
        "transaction.state.log.num.partitions=10",
    ]
    failover = [
        # The controller fences a broker that misses heartbeats for the session
        # timeout, and only then moves its leaderships. Defaults 2 s / 9 s; on
        # loopback 0.5 s / 3 s fences a killed broker three times sooner and
        # still takes six missed heartbeats in a row, far beyond a GC pause.
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
    ]
    return "\n".join([*lines, *replication, *failover, ""])


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # -1: none right now
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def in_sync(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


def partition_states(metadata: ClusterMetadata, topics: Iterable[str]) -> list[PartitionState]:
    states = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaSetupError(f"topic {topic!r} is not in the cluster's metadata")
        for p in sorted(meta.partitions.values(), key=lambda p: p.id):
            states.append(PartitionState(topic, p.id, p.leader, tuple(p.replicas), tuple(p.isrs)))
    return states


def busiest(leaders: Iterable[int]) -> int:
    """The node leading the most partitions (the lowest id of a tie); -1 counts for none."""
    counts = Counter(n for n in leaders if n >= 0)
    if not counts:
        raise KafkaSetupError("no partition has a leader")
    return min(counts, key=lambda n: (-counts[n], n))


class LocalCluster:
    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self._procs: dict[int, Popen[bytes]] = {}  # nodes this object started
        self._admin: AdminClient | None = None

    @property
    def bootstrap(self) -> str:
        return self.cfg.bootstrap

    # --- processes ---------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.cfg.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {"nodes": {}}
        return state

    def _save(self) -> None:
        state = {"bootstrap": self.bootstrap, "updated_at": time.time()}
        state["nodes"] = {str(n): p for n, p in self.pids().items()}
        tmp = self.cfg.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.cfg.state_file)  # atomic: a reader never sees half a file

    def cluster_id(self) -> str | None:
        """The id the nodes were formatted with (None before the first up())."""
        for n in self.cfg.node_ids:
            meta = self.cfg.data_dir(n) / "meta.properties"
            if meta.exists():
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.removeprefix("cluster.id=").strip()
        return None

    def _marker(self, node_id: int) -> bytes:
        # The node's own properties path is on its command line: a reused pid
        # (or another cluster's node) never matches.
        return str(self.cfg.props_file(node_id)).encode()

    def pid(self, node_id: int) -> int | None:
        proc = self._procs.get(node_id)
        if proc is not None:
            # Started here: trust the handle (before exec, cmdline is still Python's).
            return proc.pid if proc.poll() is None else None
        pid = self._state()["nodes"].get(str(node_id))
        return pid if isinstance(pid, int) and pid_running(pid, self._marker(node_id)) else None

    def pids(self) -> dict[int, int]:
        """Node id -> pid of every node running now."""
        return {n: pid for n in self.cfg.node_ids if (pid := self.pid(n)) is not None}

    def _alive(self, node_id: int) -> Callable[[int], bool]:
        def alive(pid: int) -> bool:
            proc = self._procs.get(node_id)
            if proc is not None and proc.pid == pid:
                return proc.poll() is None
            return pid_running(pid, self._marker(node_id))

        return alive

    def _check_ports(self, node_id: int) -> None:
        for port in (self.cfg.port(node_id), self.cfg.controller_port(node_id)):
            if not port_is_free(port):
                raise PortInUseError(f"port {port} on 127.0.0.1 (node {node_id}) is taken")

    def _spawn(self, node_id: int, classpath: str) -> None:
        self._check_ports(node_id)
        props = self.cfg.props_file(node_id)
        props.write_text(node_properties(self.cfg, node_id))
        log = self.cfg.log_file(node_id)
        self._procs[node_id] = spawn_server(classpath, self.cfg.heap, props, log)
        self._save()

    def _classpath(self) -> str:
        return resolve_classpath(self.cfg.cache_home or self.cfg.home)

    # --- lifecycle ---------------------------------------------------------

    def up(self, timeout: float = 120.0) -> None:
        """Format every node with one cluster id (the first time), start every node
        not running, and return once every broker is registered and unfenced. On any
        failure (or interrupt), SIGKILLs every node of the cluster before raising."""
        deadline = time.monotonic() + timeout
        try:
            down = [n for n in self.cfg.node_ids if self.pid(n) is None]
            for n in down:  # before formatting or starting anything
                self._check_ports(n)
            classpath = self._classpath()
            self._format(classpath)
            for n in down:
                self._spawn(n, classpath)
            self._wait(deadline, "every broker registered", self._registered)
        except BaseException:
            self.down(kill=True)
            raise

    def _format(self, classpath: str) -> None:
        unformatted = [
            n for n in self.cfg.node_ids if not (self.cfg.data_dir(n) / "meta.properties").exists()
        ]
        if not unformatted:
            return
        cluster_id = self.cluster_id() or new_cluster_id()
        for n in unformatted:
            self.cfg.node_dir(n).mkdir(parents=True, exist_ok=True)
            self.cfg.props_file(n).write_text(node_properties(self.cfg, n))
        # All at once: each format is a JVM start of a few seconds.
        procs = [
            format_storage(classpath, self.cfg.props_file(n), cluster_id, standalone=False)
            for n in unformatted
        ]
        errors = []
        for proc in procs:  # collect every one, even after a failure
            try:
                wait_formatted(proc)
            except KafkaSetupError as exc:
                errors.append(str(exc))
        if errors:
            raise KafkaSetupError("\n".join(errors))

    def down(self, timeout: float = 20.0, *, kill: bool = False) -> list[int]:
        """Stop every node (SIGTERM to all at once, so none waits on a quorum the
        others already left; SIGKILL whatever outlives `timeout`). Returns the node
        ids it stopped; afterwards no process of this cluster runs."""
        running = self.pids()
        deadline = time.monotonic() + timeout
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
        for n, pid in running.items():
            stop_group(pid, self._alive(n), max(0.0, deadline - time.monotonic()), kill=kill)
        self._procs.clear()
        self._admin = None
        self.cfg.state_file.unlink(missing_ok=True)
        return sorted(running)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node's process group: no controlled shutdown, as a crash."""
        pid = self.pid(node_id)
        if pid is None:
            raise KafkaSetupError(f"node {node_id} is not running")
        stop_group(pid, self._alive(node_id), 10.0, kill=True)
        self._procs.pop(node_id, None)
        self._save()

    def start(self, node_id: int, timeout: float = 60.0) -> None:
        """Start a stopped node on its own data dir; return once it is registered again
        and every partition's ISR is full (it has caught up)."""
        deadline = time.monotonic() + timeout
        if self.pid(node_id) is None:
            self._spawn(node_id, self._classpath())
        self._wait(deadline, f"node {node_id} registered", lambda md: node_id in md.brokers)
        self.wait_in_sync(None, max(0.0, deadline - time.monotonic()))

    # --- what the cluster says ---------------------------------------------

    def admin(self) -> AdminClient:
        if self._admin is None:
            # log_level 0: "connection refused" from a node a test killed is expected.
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        return self._admin

    def metadata(self, timeout: float = 5.0) -> ClusterMetadata:
        return self.admin().list_topics(timeout=timeout)

    def _registered(self, md: ClusterMetadata) -> bool:
        # Brokers in the metadata are registered and unfenced: the controller
        # quorum has a leader and has admitted every node.
        return md.controller_id >= 0 and set(md.brokers) >= set(self.cfg.node_ids)

    def _wait(self, deadline: float, what: str, done: Callable[[ClusterMetadata], bool]) -> None:
        while True:
            self._check_running()
            # Unreachable, or a topic not in the metadata yet: not done yet.
            with contextlib.suppress(KafkaException, KafkaSetupError):
                if done(self.metadata(timeout=2.0)):
                    return
            if time.monotonic() >= deadline:
                raise KafkaSetupError(f"timed out waiting for {what}; logs in {self.cfg.dir}")
            time.sleep(0.3)

    def _check_running(self) -> None:
        for n, proc in self._procs.items():
            if proc.poll() is not None:
                raise KafkaSetupError(
                    f"node {n} exited (status {proc.returncode}); last lines of "
                    f"{self.cfg.log_file(n)}:\n{log_tail(self.cfg.log_file(n))}"
                )

    def wait_in_sync(self, topics: list[str] | None, timeout: float) -> None:
        """Until every partition of `topics` (None: every topic, internal ones too)
        has a leader and its full replica set in the ISR."""

        def in_sync(md: ClusterMetadata) -> bool:
            names = list(md.topics) if topics is None else topics
            return all(s.in_sync for s in partition_states(md, names))

        self._wait(time.monotonic() + timeout, f"in-sync replicas of {topics or 'all'}", in_sync)

    def leader_of(self, topic: str, partition: int, timeout: float = 10.0) -> int:
        """The node leading the partition, waiting up to `timeout` while it has none."""
        leader: list[int] = []

        def has_leader(md: ClusterMetadata) -> bool:
            states = partition_states(md, [topic])
            leader[:] = [s.leader for s in states if s.partition == partition]
            return bool(leader) and leader[0] >= 0

        self._wait(time.monotonic() + timeout, f"a leader of {topic}[{partition}]", has_leader)
        return leader[0]

    def busiest_leader(self, topics: list[str]) -> int:
        return busiest(s.leader for s in partition_states(self.metadata(), topics))
