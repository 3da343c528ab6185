"""The supervisor: its restart policy (pure, fake clock) and real child processes."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from core.settings import Settings
from hub.cli import run_cmd
from hub.stack import components, ready_checks
from hub.supervisor import (
    Crash,
    Crashed,
    Event,
    GaveUp,
    GiveUp,
    Restarted,
    RestartNow,
    RestartPolicy,
    Service,
    ServiceFailedError,
    Supervisor,
    WaitUntil,
)

POLICY = RestartPolicy(
    initial_delay=0.5, factor=2, max_delay=30, stable_after=60, max_rapid_crashes=10
)
CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def history(*uptimes: float, gap: float = 1.0) -> list[Crash]:
    """Crashes after these uptimes, each restart `gap` seconds after the crash before it."""
    crashes, t = [], 0.0
    for uptime in uptimes:
        crashes.append(Crash(started_at=t, ended_at=t + uptime, returncode=1))
        t += uptime + gap
    return crashes


# --- The policy ---------------------------------------------------------------


def test_the_backoff_doubles_from_the_initial_delay() -> None:
    delays = []
    for n in range(1, 6):
        decision = POLICY.decide(history(*[0.2] * n), now=1e9)
        assert isinstance(decision, RestartNow)
        assert decision.attempt == n
        delays.append(decision.delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_the_backoff_is_capped() -> None:
    policy = RestartPolicy(initial_delay=0.5, max_delay=30, max_rapid_crashes=1000)
    decision = policy.decide(history(*[0.2] * 200), now=1e12)
    assert isinstance(decision, RestartNow)
    assert (decision.attempt, decision.delay) == (200, 30.0)
    assert [policy.delay(n) for n in (6, 7, 8)] == [16.0, 30.0, 30.0]


def test_backoff_means_not_yet_then_restart_now() -> None:
    crashes = history(0.2, 0.2, 0.2)  # the third restart waits 2 s after the last crash
    crashed_at = crashes[-1].ended_at
    assert POLICY.decide(crashes, now=crashed_at) == WaitUntil(crashed_at + 2.0, 3, 2.0)
    assert isinstance(POLICY.decide(crashes, now=crashed_at + 1.99), WaitUntil)
    assert POLICY.decide(crashes, now=crashed_at + 2.0) == RestartNow(3, 2.0)


def test_a_stable_run_resets_the_backoff() -> None:
    rapid = [0.2] * 6
    assert POLICY.decide(history(*rapid), now=1e9) == RestartNow(6, 16.0)
    # It then stayed up for two minutes before crashing: back to the first delay.
    assert POLICY.decide(history(*rapid, 120.0), now=1e9) == RestartNow(1, 0.5)
    assert POLICY.decide(history(*rapid, 120.0, 0.2), now=1e9) == RestartNow(2, 1.0)


def test_it_gives_up_after_n_rapid_crashes_in_a_row() -> None:
    policy = RestartPolicy(max_rapid_crashes=3)
    assert isinstance(policy.decide(history(0.2, 0.2), now=1e9), RestartNow)
    assert policy.decide(history(0.2, 0.2, 0.2), now=1e9) == GiveUp(3)
    # Not in a row: a stable run in between starts the count again.
    assert isinstance(policy.decide(history(0.2, 0.2, 120.0, 0.2, 0.2), now=1e9), RestartNow)
    # A run just short of stable_after still counts as rapid.
    assert isinstance(policy.decide(history(59.9, 59.9, 59.9), now=1e9), GiveUp)


def test_the_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="nothing crashed"):
        POLICY.decide([], now=0.0)
    with pytest.raises(ValueError):
        RestartPolicy(max_rapid_crashes=0)
    with pytest.raises(ValueError):
        RestartPolicy(initial_delay=10, max_delay=1)


# --- Real child processes -------------------------------------------------------


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def supervisor_factory(tmp_path: Path, events: list[Event]) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> Supervisor:
        sup = Supervisor(
            tmp_path / "logs", dict(os.environ), policy, clock=clock, on_event=events.append
        )
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop_all(timeout=2)


def wait_exit(service: Service) -> None:
    assert service.proc is not None
    service.proc.wait(10)


def test_a_crashing_child_is_restarted_later_and_later_then_given_up(
    supervisor_factory: Callable[..., Supervisor], events: list[Event]
) -> None:
    clock = FakeClock()
    policy = RestartPolicy(initial_delay=1, factor=2, max_delay=30, max_rapid_crashes=4)
    sup = supervisor_factory(policy, clock)
    service = sup.start("flaky", CRASH, lambda: True)
    waited = []
    for _ in range(3):
        wait_exit(service)
        pid = service.proc.pid if service.proc else None
        clock.now += 0.25  # binary fractions: the sums below are exact
        began = time.perf_counter()
        assert sup.restart_crashed() == []  # noticed, but the backoff has not passed
        assert time.perf_counter() - began < 0.5  # and it did not sleep it off
        crashed = events[-1]
        assert isinstance(crashed, Crashed) and crashed.returncode == 3
        clock.now += crashed.delay - 0.125
        assert sup.restart_crashed() == []
        clock.now += 0.125
        assert sup.restart_crashed() == ["flaky"]
        assert service.proc is not None and service.proc.pid != pid  # a new process
        waited.append(crashed.delay)
    assert waited == [1.0, 2.0, 4.0]
    assert [(e.attempt, e.delay) for e in events if isinstance(e, Restarted)] == [
        (1, 1.0),
        (2, 2.0),
        (3, 4.0),
    ]
    assert service.restarts == 3 and sup.given_up == []

    wait_exit(service)  # the fourth rapid crash in a row
    clock.now += 0.1
    assert sup.restart_crashed() == []
    assert events[-1] == GaveUp(service, 3, 4)
    assert sup.given_up == [service] and len(service.crashes) == 4
    clock.now += 3600
    assert sup.restart_crashed() == [] and service.restarts == 3  # given up stays given up


def test_real_delays_grow_between_crash_and_restart(
    supervisor_factory: Callable[..., Supervisor], events: list[Event]
) -> None:
    policy = RestartPolicy(initial_delay=0.2, factor=2, max_delay=0.8, max_rapid_crashes=4)
    sup = supervisor_factory(policy)
    service = sup.start("flaky", CRASH, lambda: True)
    deadline = time.monotonic() + 20
    while not sup.given_up and time.monotonic() < deadline:
        sup.restart_crashed()
        time.sleep(0.01)
    assert sup.given_up == [service]
    restarts = [c.started_at for c in service.crashes[1:]]
    waited = [
        start - crash.ended_at for start, crash in zip(restarts, service.crashes, strict=False)
    ]
    assert len(waited) == 3
    # Late by at most the polling period and a spawn, however busy the machine.
    for measured, expected in zip(waited, [0.2, 0.4, 0.8], strict=True):
        assert expected <= measured < expected + 0.5, waited
    assert waited == sorted(waited)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """The process has exited (a zombie waiting for init to reap it counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _logged_pid(log_file: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_file.exists() and (found := re.search(r"child (\d+)", log_file.read_text())):
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no child pid in {log_file}")


# A component with a child of its own that ignores SIGTERM (says its pid once it does).
PARENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import os, signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print(\\'child\\', os.getpid(), flush=True); time.sleep(120)'])\n"
    "time.sleep({sleep})\n"
    "sys.exit(1)\n"
)
STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('child 0', flush=True)\n"
    "time.sleep(120)\n"
)


def test_stop_all_leaves_no_child_alive(
    supervisor_factory: Callable[..., Supervisor], events: list[Event]
) -> None:
    # No backoff at all: a stopped service taken for a crashed one would be back at once.
    sup = supervisor_factory(RestartPolicy(initial_delay=0, max_delay=0))
    parent = sup.start("parent", [sys.executable, "-c", PARENT.format(sleep=120)], lambda: True)
    stubborn = sup.start("stubborn", [sys.executable, "-c", STUBBORN], lambda: True)
    grandchild = _logged_pid(parent.log_file)
    _logged_pid(stubborn.log_file)  # its SIGTERM handler is installed
    assert parent.proc is not None and stubborn.proc is not None
    pids = [parent.proc.pid, stubborn.proc.pid, grandchild]
    assert not any(_gone(pid, timeout=0) for pid in pids)
    sup.stop_all(timeout=1)
    assert all(_gone(pid) for pid in pids)
    assert sup.restart_crashed() == []  # stopped is not crashed: nothing comes back
    assert not parent.alive() and not stubborn.alive() and events == []


def test_a_crash_takes_the_leftovers_of_the_crashed_run_with_it(
    supervisor_factory: Callable[..., Supervisor],
) -> None:
    sup = supervisor_factory(RestartPolicy(initial_delay=30, max_delay=30))
    service = sup.start("leaky", [sys.executable, "-c", PARENT.format(sleep=0.2)], lambda: True)
    grandchild = _logged_pid(service.log_file)
    wait_exit(service)
    assert not _gone(grandchild, timeout=0)  # the run's own child outlived it
    assert sup.restart_crashed() == []
    assert _gone(grandchild)


# --- What `hub run` prints, and the stack's list of components ------------------


def test_hub_run_names_a_given_up_component_its_log_and_its_last_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(
        run_cmd,
        "console",
        Console(file=out, width=300, force_terminal=True, color_system="standard"),
    )
    log_file = tmp_path / "processors.log"
    log_file.write_text("oldest-line\n" + "".join(f"line {n} [boom]\n" for n in range(30)))
    service = Service("processors", ["x"], lambda: True, log_file)
    run_cmd.report_event(Crashed(service, 1, 3, 2.0))
    run_cmd.report_event(Restarted(service, 3, 2.0))
    run_cmd.report_event(GaveUp(service, 1, 10))
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "processors exited (code 1); restart attempt 3 in 2.0s" in text
    assert "processors restarted (attempt 3, after 2.0s)" in text
    assert "gave up on processors" in text and "crashed 10 times in a row" in text
    assert str(log_file) in text
    assert "line 29 [boom]" in text and "line 10 [boom]" in text and "oldest-line" not in text
    assert "\x1b[1;31m" in out.getvalue()  # bold red


def test_the_simulators_are_development_only_and_cdc_is_optional() -> None:
    everything = components(simulators=True, cdc=True)
    assert [c.name for c in everything if c.dev_only] == ["simulators"]
    assert [c.name for c in components(simulators=False, cdc=False)] == [
        "admin",
        "ingress",
        "processors",
        "connectors",
        "retries",
        "dlq-monitor",
    ]
    cdc = {c.name for c in everything} - {c.name for c in components(True, cdc=False)}
    assert cdc == {"cdc-source", "cdc-consumer"}


def test_every_component_has_a_ready_check() -> None:
    names = {c.name for c in components(simulators=True, cdc=True)}
    assert set(ready_checks(Settings())) == names


def test_a_service_gets_its_own_environment_on_top_of_the_supervisors(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['A'] + os.environ['B'])"
    supervisor = Supervisor(tmp_path / "logs", {**os.environ, "A": "base", "B": "base"})
    service = supervisor.start(
        "one", [sys.executable, "-c", script], lambda: True, env={"B": "own"}
    )
    assert service.proc is not None
    service.proc.wait(10)
    assert out.read_text() == "baseown"


def test_kill_is_a_sigkill_the_supervisor_then_treats_as_a_crash(tmp_path: Path) -> None:
    supervisor = Supervisor(
        tmp_path / "logs", dict(os.environ), RestartPolicy(initial_delay=0.0, max_delay=0.0)
    )
    supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], lambda: True)
    try:
        pid = supervisor.kill("sleeper")
        service = supervisor.services["sleeper"]
        assert service.proc is not None and service.proc.returncode == -signal.SIGKILL
        assert supervisor.restart_crashed() == ["sleeper"]
        restarted = service.proc
        assert restarted.pid != pid and service.alive()
        restarted.kill()
        restarted.wait(5)
        with pytest.raises(ServiceFailedError, match="not running"):
            supervisor.kill("sleeper")
    finally:
        supervisor.stop_all()
