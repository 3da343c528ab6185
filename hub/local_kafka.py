"""A single-node Apache Kafka (KRaft) for development and tests, from Maven's jars.

Maven resolves the broker's classpath from deploy/kafka/pom.xml into ~/.m2 once;
the resolved classpath is cached under HUB_HOME keyed by the pom's hash, so a
second start runs no Maven at all. The broker binds 127.0.0.1 only, keeps its
data and log under HUB_HOME/kafka/broker-<port>, and runs in its own session so
it outlives the command that started it (`hub kafka down` stops it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from core.ports import port_is_free
from hub.local_tls import (
    TlsFiles,
    client_settings,
    create_scram_user,
    sasl_listener_lines,
    sasl_password,
    write_tls_files,
)

_PACKAGED = Path(__file__).parent / "_deploy" / "kafka"
_REPO = Path(__file__).resolve().parents[1] / "deploy" / "kafka"
DEPLOY_DIR = _PACKAGED if _PACKAGED.exists() else _REPO


class KafkaSetupError(RuntimeError):
    pass


class PortInUseError(KafkaSetupError):
    pass


@dataclass(frozen=True)
class BrokerConfig:
    home: Path
    port: int = 19092
    controller_port: int = 19093
    heap: str = "768m"
    # Where the resolved classpath is cached; defaults to `home`. Tests keep broker
    # data in a temporary home but share this cache, so they never re-run Maven.
    cache_home: Path | None = None
    # A second listener, SASL_SSL (SCRAM-SHA-512, a throwaway CA: hub/local_tls.py), for
    # trying and testing the hub's Kafka security settings. None: PLAINTEXT only.
    sasl_port: int | None = None

    @property
    def dir(self) -> Path:
        return self.home / "kafka" / f"broker-{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_file(self) -> Path:
        return self.dir / "server.log"

    @property
    def state_file(self) -> Path:
        return self.dir / "broker.json"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.dir / "tls" / "ca.pem", self.dir / "tls" / "server-keystore.pem")

    def sasl_settings(self) -> dict[str, object]:
        """Settings fields that point the hub at the SASL_SSL listener (it must be on)."""
        if self.sasl_port is None:
            raise KafkaSetupError("the broker has no SASL_SSL listener (set HUB_KAFKA_SASL_PORT)")
        return client_settings(self.sasl_port, self.dir, self.tls_files)


def kraft_node_lines(
    node_id: int, port: int, controller_port: int, data_dir: Path, quorum: str
) -> list[str]:
    """What every combined broker+controller node the hub starts has in common:
    loopback listeners, the controller listener, its data directory. `quorum` is
    the line naming the controllers (dynamic bootstrap servers or static voters)."""
    return [
        "process.roles=broker,controller",
        f"node.id={node_id}",
        quorum,
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=3",
        "auto.create.topics.enable=false",
        "offsets.topic.num.partitions=10",
        # No reason to wait for more members before the first rebalance in tests.
        "group.initial.rebalance.delay.ms=0",
        # The default 128 MiB dedupe buffer does not fit a small heap.
        "log.cleaner.dedupe.buffer.size=33554432",
    ]


def internal_topic_lines(replicas: int, min_isr: int) -> list[str]:
    """Replication of the topics the brokers create themselves (offsets, transactions,
    share-group state): as many replicas as there are brokers to hold them."""
    return [
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
    ]


def server_properties(cfg: BrokerConfig) -> str:
    quorum = f"controller.quorum.bootstrap.servers=127.0.0.1:{cfg.controller_port}"
    lines = kraft_node_lines(1, cfg.port, cfg.controller_port, cfg.data_dir, quorum)
    if cfg.sasl_port is not None:
        lines = sasl_listener_lines(lines, cfg.sasl_port, cfg.tls_files)
    return "\n".join([*lines, *internal_topic_lines(1, 1), ""])


def resolve_classpath(home: Path, deploy_dir: Path = DEPLOY_DIR) -> str:
    pom = deploy_dir / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cache = home / "kafka" / f"classpath-{digest}.txt"
    if cache.exists():
        classpath = cache.read_text().strip()
        if classpath and all(Path(j).exists() for j in classpath.split(os.pathsep)):
            return classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaSetupError("Maven (mvn) is not installed: it resolves the Kafka jars")
    cache.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={cache}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not cache.exists():
        raise KafkaSetupError(f"Maven could not resolve Kafka's jars:\n{result.stdout[-4000:]}")
    return cache.read_text().strip()


def new_cluster_id() -> str:
    """A random cluster id, base64url of a UUID. Never starting with '-', which the
    storage tool's argument parser would read as an option (as Kafka's own
    Uuid.randomUuid also avoids)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def pid_alive(pid: int, marker: bytes = b"kafka.Kafka") -> bool:
    """Whether `pid` runs and is (still) the server: a pid from a state file may
    have been reused by another program since, whose cmdline lacks `marker`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return marker in cmdline.read_bytes()
    except FileNotFoundError:
        return True  # no /proc: trust kill(0)


def pid_running(pid: int, marker: bytes) -> bool:
    """Like pid_alive, for waiting until another process's server has exited. A JVM
    shutting down can show as a zombie with an empty cmdline while its other threads
    still run (sockets open); it is gone once it is a zombie with no thread left."""
    if not Path("/proc/self").exists():
        return pid_alive(pid, marker)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith("Z") and fields.get("Threads", "").strip() == "1":
        return False
    return cmdline == b"" or marker in cmdline


def server_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server the hub starts (broker, PostgreSQL): the caller's,
    less every HUB_ and KAFKA_ variable. Their settings reach them as files; the master
    key and any secret an operator exported for the hub have no business in a JVM's or
    a database's environment (/proc/<pid>/environ)."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.upper().startswith(("HUB_", "KAFKA_"))}


def format_storage(
    classpath: str, props: Path, cluster_id: str, *, standalone: bool
) -> subprocess.Popen[str]:
    """Start formatting one node's storage; `wait_formatted` collects it. Returned
    unfinished so a cluster formats all its nodes at once (each is a JVM start)."""
    argv = ["java", "-cp", classpath, "kafka.tools.StorageTool", "format"]
    # --standalone: a dynamic quorum of this one controller. Without it, the
    # quorum is the static controller.quorum.voters of the properties file.
    argv += ["--standalone"] if standalone else []
    argv += [f"--cluster-id={cluster_id}", "-c", str(props)]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=server_env(),
    )


def wait_formatted(proc: subprocess.Popen[str]) -> None:
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise KafkaSetupError(f"formatting Kafka storage failed:\n{output}")


def spawn_server(classpath: str, heap: str, props: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """kafka.Kafka in its own session (so it outlives its starter and its whole
    process group can be signalled), logging to `log_file`."""
    log4j = DEPLOY_DIR / "log4j2.properties"
    argv = [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(props),
    ]
    with log_file.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=server_env(),
        )


def stop_group(
    pid: int, alive: Callable[[int], bool], timeout: float, *, kill: bool = False
) -> None:
    """Signal the process group `pid` leads (SIGTERM, or SIGKILL when `kill`), wait up
    to `timeout` for it to exit, SIGKILL it if it has not, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
    _reap(pid)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    reachable: bool
    pid: int | None
    bootstrap: str
    log_file: Path


class LocalBroker:
    def __init__(self, cfg: BrokerConfig) -> None:
        self.cfg = cfg
        self._proc: subprocess.Popen[bytes] | None = None

    def _pid(self) -> int | None:
        if self._proc is not None:
            # Started by this object: trust the handle. Right after fork, before
            # exec, /proc/<pid>/cmdline still shows this Python process.
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int(json.loads(self.cfg.state_file.read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            return None
        return pid if pid_alive(pid) else None

    def reachable(self, timeout: float = 2.0) -> bool:
        admin = AdminClient(
            # log_level 0: connection-refused while the broker boots is expected, not news.
            {"bootstrap.servers": self.cfg.bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
        )
        try:
            admin.list_topics(timeout=timeout)
        except Exception:  # any failure means "not reachable yet"
            return False
        return True

    def status(self) -> BrokerStatus:
        pid = self._pid()
        reachable = pid is not None and self.reachable()
        return BrokerStatus(pid is not None, reachable, pid, self.cfg.bootstrap, self.cfg.log_file)

    def up(self, timeout: float = 90.0) -> BrokerStatus:
        if self._pid() is not None:
            self.wait_ready(timeout)
            return self.status()
        ports = [
            (self.cfg.port, "HUB_KAFKA_PORT"),
            (self.cfg.controller_port, "HUB_KAFKA_CONTROLLER_PORT"),
        ]
        if self.cfg.sasl_port is not None:
            ports.append((self.cfg.sasl_port, "HUB_KAFKA_SASL_PORT"))
        for port, setting in ports:
            if not port_is_free(port):
                raise PortInUseError(
                    f"port {port} on 127.0.0.1 is taken: stop what uses it, or set {setting} "
                    "to a free port (or KAFKA_BOOTSTRAP_SERVERS to use a running cluster)"
                )
        classpath = resolve_classpath(self.cfg.cache_home or self.cfg.home)
        self.cfg.dir.mkdir(parents=True, exist_ok=True)
        props = self.cfg.dir / "server.properties"
        if self.cfg.sasl_port is not None:
            write_tls_files(self.cfg.tls_files.ca.parent)
        props.write_text(server_properties(self.cfg))
        if not (self.cfg.data_dir / "meta.properties").exists():
            self._format(classpath, props)
        self._spawn(classpath, props)
        try:
            self.wait_ready(timeout)
            self._ensure_scram_user()
        except BaseException:
            # A broker that never became ready must not outlive the command (or the
            # test run) that started it.
            self.down(kill=True)
            raise
        return self.status()

    def _ensure_scram_user(self) -> None:
        # SCRAM credentials live in the cluster's metadata: made through the PLAINTEXT
        # listener once the broker is up (and again after each start: an upsert).
        if self.cfg.sasl_port is not None:
            admin = AdminClient({"bootstrap.servers": self.cfg.bootstrap, "log_level": 0})
            create_scram_user(admin, sasl_password(self.cfg.dir))

    def _format(self, classpath: str, props: Path) -> None:
        wait_formatted(format_storage(classpath, props, new_cluster_id(), standalone=True))

    def _spawn(self, classpath: str, props: Path) -> None:
        self._proc = proc = spawn_server(classpath, self.cfg.heap, props, self.cfg.log_file)
        self.cfg.state_file.write_text(
            json.dumps({"pid": proc.pid, "port": self.cfg.port, "started_at": time.time()})
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pid() is None:
                raise KafkaSetupError(
                    f"the broker exited during startup; last lines of {self.cfg.log_file}:\n"
                    + self.log_tail()
                )
            if self.reachable(timeout=1.0):
                return
            time.sleep(0.3)
        raise KafkaSetupError(
            f"the broker did not become ready in {timeout:.0f}s; see {self.cfg.log_file}"
        )

    def down(self, timeout: float = 30.0, *, kill: bool = False) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        stop_group(pid, self._alive, timeout, kill=kill)
        self._proc = None
        self.cfg.state_file.unlink(missing_ok=True)
        return True

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return pid_alive(pid)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.cfg.log_file, lines)


def _reap(pid: int) -> None:
    # When this process started the broker, collect its exit status so it is not
    # left a zombie (and pid_alive stops seeing it).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
