"""Start the hub's components as child processes, restart crashes, stop them all.

Used by `hub run` and by the test suite's stack, so both run the hub the same
way. Each child gets its own process group and log file; stopping sends
SIGTERM to the group (so a component's own children go too), then SIGKILL
after a grace period: no orphans.

A crashed component is restarted with exponential backoff (RestartPolicy), so
one that keeps crashing is not hammered; after too many rapid crashes in a row
the supervisor gives up on it, says so (an event, and `given_up`), and keeps
the others running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

ReadyCheck = Callable[[], bool]
Clock = Callable[[], float]

log = logging.getLogger("hub.supervisor")


class ServiceFailedError(RuntimeError):
    pass


# --- The restart policy: pure, so it is tested with a fake clock ------------


@dataclass(frozen=True)
class Crash:
    """One run that ended without being asked to (times from the supervisor's clock)."""

    started_at: float
    ended_at: float  # when the supervisor noticed the exit
    returncode: int | None = None

    @property
    def uptime(self) -> float:
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class RestartNow:
    attempt: int  # 1 for the first restart since the component last ran stably
    delay: float  # the backoff that has now passed since the crash


@dataclass(frozen=True)
class WaitUntil:
    at: float
    attempt: int
    delay: float


@dataclass(frozen=True)
class GiveUp:
    rapid_crashes: int


Decision = RestartNow | WaitUntil | GiveUp


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff initial_delay * factor**(attempt-1), capped at max_delay.

    A run that lasted stable_after seconds or more ends a streak: the next crash
    starts again at initial_delay. max_rapid_crashes crashes in a row, each
    within stable_after of starting, and the component is given up on.
    """

    initial_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    # Ten: the backoff then spans about two minutes, longer than a broker restart.
    max_rapid_crashes: int = 10

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.factor < 1 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 <= initial_delay <= max_delay and factor >= 1")
        if self.max_rapid_crashes < 1 or self.stable_after <= 0:
            raise ValueError("need max_rapid_crashes >= 1 and stable_after > 0")

    def streak(self, crashes: Sequence[Crash]) -> tuple[int, int]:
        """(crashes since the component last ran stably, how many of them were rapid)."""
        count = rapid = 0
        for crash in reversed(crashes):
            count += 1
            if crash.uptime >= self.stable_after:
                break  # the crash that ended a stable run opens the streak
            rapid += 1
        return count, rapid

    def delay(self, attempt: int) -> float:
        # The exponent is bounded so a huge attempt number cannot overflow a float.
        return min(self.max_delay, self.initial_delay * self.factor ** min(attempt - 1, 64))

    def decide(self, crashes: Sequence[Crash], now: float) -> Decision:
        if not crashes:
            raise ValueError("nothing crashed: there is nothing to decide")
        attempt, rapid = self.streak(crashes)
        if rapid >= self.max_rapid_crashes:
            return GiveUp(rapid)
        delay = self.delay(attempt)
        at = crashes[-1].ended_at + delay
        return RestartNow(attempt, delay) if now >= at else WaitUntil(at, attempt, delay)


# --- Services and what happens to them --------------------------------------


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: ReadyCheck
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)
    crashes: list[Crash] = field(default_factory=list)
    given_up: bool = False
    stopping: bool = False  # asked to stop: its exit is not a crash
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass(frozen=True)
class Crashed:
    service: Service
    returncode: int | None
    attempt: int  # the restart that will follow
    delay: float  # in this many seconds


@dataclass(frozen=True)
class Restarted:
    service: Service
    attempt: int
    delay: float


@dataclass(frozen=True)
class GaveUp:
    service: Service
    returncode: int | None
    rapid_crashes: int


Event = Crashed | Restarted | GaveUp
OnEvent = Callable[[Event], None]


def log_event(event: Event) -> None:
    """The default report: the standard log (hub run prints instead)."""
    name = event.service.name
    match event:
        case Crashed(returncode=code, attempt=attempt, delay=delay):
            log.warning("%s exited (code %s); restart %d in %.1fs", name, code, attempt, delay)
        case Restarted(attempt=attempt, delay=delay):
            log.warning("%s restarted (attempt %d, after %.1fs)", name, attempt, delay)
        case GaveUp(rapid_crashes=rapid):
            log.error(
                "%s crashed %d times in a row: given up on; log %s:\n%s",
                name,
                rapid,
                event.service.log_file,
                event.service.log_tail(),
            )


def http_ready(url: str) -> ReadyCheck:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def group_ready(client_config: Mapping[str, Any], group_id: str) -> ReadyCheck:
    """Ready when the consumer group is stable and has partitions assigned.
    `client_config`: how to reach the cluster (core.kafka.admin_config)."""

    def check() -> bool:
        admin = AdminClient({**client_config, "log_level": 0})
        try:
            description = admin.describe_consumer_groups([group_id])[group_id].result(timeout=3)
        except Exception:  # any failure to describe the group means "not ready yet"
            return False
        assigned = sum(len(m.assignment.topic_partitions) for m in description.members)
        return description.state == ConsumerGroupState.STABLE and assigned > 0

    return check


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Supervisor:
    def __init__(
        self,
        log_dir: Path,
        env: dict[str, str],
        policy: RestartPolicy | None = None,
        *,
        clock: Clock = time.monotonic,
        on_event: OnEvent = log_event,
    ) -> None:
        """`clock` times runs and backoffs (tests pass a fake one); `on_event` hears of
        every crash, restart and give-up (by default they are logged)."""
        self.log_dir = log_dir
        self.env = env
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.on_event = on_event
        self.services: dict[str, Service] = {}
        # restart_crashed runs in a loop thread under the tests while stop runs
        # in the main one: a service being stopped must not be respawned.
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def given_up(self) -> list[Service]:
        return [s for s in self.services.values() if s.given_up]

    def _spawn(self, service: Service) -> None:
        with service.log_file.open("ab") as log_file:
            service.proc = subprocess.Popen(
                service.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **service.env},
                start_new_session=True,
            )
        service.started_at = self.clock()

    def start(
        self, name: str, argv: list[str], ready: ReadyCheck, env: dict[str, str] | None = None
    ) -> Service:
        service = Service(name, argv, ready, self.log_dir / f"{name}.log", env=dict(env or {}))
        with self._lock:
            self.services[name] = service
            self._spawn(service)
        return service

    def wait_ready(self, name: str, timeout: float = 90.0) -> float:
        service = self.services[name]
        # Real time for the deadline: this one does wait (an injected clock may not move).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.alive():
                raise ServiceFailedError(
                    f"{name} exited during startup; last lines of {service.log_file}:\n"
                    + service.log_tail()
                )
            if service.ready():
                return self.clock() - service.started_at
            time.sleep(0.2)
        raise ServiceFailedError(
            f"{name} was not ready after {timeout:.0f}s; see {service.log_file}"
        )

    def restart_crashed(self) -> list[str]:
        """Restart the crashed services whose backoff has passed. Never waits."""
        with self._lock:
            now = self.clock()
            return [s.name for s in list(self.services.values()) if self._tend(s, now)]

    def _tend(self, service: Service, now: float) -> bool:
        """Record a new crash, then restart, wait or give up; True if restarted."""
        proc = service.proc
        if proc is None or service.stopping or service.given_up or proc.poll() is None:
            return False
        new_crash = len(service.crashes) < service.restarts + 1
        if new_crash:
            service.crashes.append(Crash(service.started_at, now, proc.returncode))
            # Leftovers of the crashed run (its own children) would hold its port.
            _kill_group(proc.pid, signal.SIGKILL)
        decision = self.policy.decide(service.crashes, now)
        if isinstance(decision, GiveUp):
            service.given_up = True
            self.on_event(GaveUp(service, proc.returncode, decision.rapid_crashes))
            return False
        if new_crash:
            self.on_event(Crashed(service, proc.returncode, decision.attempt, decision.delay))
        if isinstance(decision, WaitUntil):
            return False
        self._spawn(service)
        service.restarts += 1
        self.on_event(Restarted(service, decision.attempt, decision.delay))
        return True

    def stop(self, name: str, timeout: float = 15.0) -> None:
        service = self.services[name]
        with self._lock:
            service.stopping = True
            proc = service.proc
        if proc is None or proc.poll() is not None:
            return  # a crash already took its group down (see _tend)
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait(5)
        else:
            _kill_group(proc.pid, signal.SIGKILL)  # a child that outlived its leader

    def kill(self, name: str) -> int:
        """SIGKILL a running service's process group, as a crash would end it (fault
        injection). The supervisor restarts it like any crash; returns its pid."""
        proc = self.services[name].proc
        if proc is None or proc.poll() is not None:
            raise ServiceFailedError(f"{name} is not running")
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return proc.pid

    def stop_all(self, timeout: float = 15.0) -> None:
        for name in reversed(list(self.services)):
            self.stop(name, timeout)
