"""Start the hub's components as child processes, restart crashes, stop them all.

Used by `hub run` and by the test suite's stack, so both run the hub the same
way. Each child gets its own process group and log file; stopping sends
SIGTERM to the group (so a component's own children go too), then SIGKILL
after a grace period: no orphans.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

ReadyCheck = Callable[[], bool]


class ServiceFailedError(RuntimeError):
    pass


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: ReadyCheck
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def http_ready(url: str) -> ReadyCheck:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def group_ready(bootstrap: str, group_id: str) -> ReadyCheck:
    """Ready when the consumer group is stable and has partitions assigned."""

    def check() -> bool:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        try:
            description = admin.describe_consumer_groups([group_id])[group_id].result(timeout=3)
        except Exception:  # any failure to describe the group means "not ready yet"
            return False
        assigned = sum(len(m.assignment.topic_partitions) for m in description.members)
        return description.state == ConsumerGroupState.STABLE and assigned > 0

    return check


class Supervisor:
    def __init__(self, log_dir: Path, env: dict[str, str], max_restarts: int = 5) -> None:
        self.log_dir = log_dir
        self.env = env
        self.max_restarts = max_restarts
        self.services: dict[str, Service] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, service: Service) -> None:
        with service.log_file.open("ab") as log:
            service.proc = subprocess.Popen(
                service.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        service.started_at = time.monotonic()

    def start(self, name: str, argv: list[str], ready: ReadyCheck) -> Service:
        service = Service(name, argv, ready, self.log_dir / f"{name}.log")
        self.services[name] = service
        self._spawn(service)
        return service

    def wait_ready(self, name: str, timeout: float = 90.0) -> float:
        service = self.services[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.alive():
                raise ServiceFailedError(
                    f"{name} exited during startup; last lines of {service.log_file}:\n"
                    + service.log_tail()
                )
            if service.ready():
                return time.monotonic() - service.started_at
            time.sleep(0.2)
        raise ServiceFailedError(
            f"{name} was not ready after {timeout:.0f}s; see {service.log_file}"
        )

    def restart_crashed(self) -> list[str]:
        restarted = []
        for service in self.services.values():
            if service.alive() or service.restarts >= self.max_restarts:
                continue
            service.restarts += 1
            self._spawn(service)
            restarted.append(service.name)
        return restarted

    def stop(self, name: str, timeout: float = 15.0) -> None:
        service = self.services[name]
        proc = service.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self, timeout: float = 15.0) -> None:
        for name in reversed(list(self.services)):
            self.stop(name, timeout)
