"""Faults on a schedule, from a thread of their own while the traffic flows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from chaos.env import Environment

log = structlog.get_logger("chaos")

Action = Callable[[], str]  # does the fault, says what it did


@dataclass
class Injector:
    """Runs `(at seconds, action)` pairs after `start()`; remembers what each did."""

    plan: list[tuple[float, Action]]
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> Injector:
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-injector")
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        for at, action in sorted(self.plan, key=lambda item: item[0]):
            time.sleep(max(0.0, started + at - time.monotonic()))
            try:
                self.done.append(action())
            except Exception as exc:  # a fault that could not be injected is reported
                self.errors.append(f"{type(exc).__name__}: {exc}")
                log.warning("chaos.fault_failed", error=str(exc))

    def join(self, timeout: float = 300.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def kill(env: Environment, component: str, *, wait_back: bool = True) -> Action:
    def action() -> str:
        env.wait_running(component)  # a kill lands on a running process, not a restarting one
        env.kill(component)
        if wait_back:
            env.wait_running(component)
        return f"SIGKILL {component}"

    return action


def kill_in_window(env: Environment, provider: str, component: str = "connectors") -> Action:
    """Kill after the provider acted and before its answer reached the hub: the simulator
    carries out the next send, then holds its answer while the component dies."""

    def action() -> str:
        env.wait_running(component)
        env.sim.add_fault(provider, mode="hold", method="POST", delay_seconds=30.0)
        held = env.sim.held(provider, wait=8.0)
        env.kill(component)
        if not held:
            env.sim.clear_faults()
            env.wait_running(component)
            return f"SIGKILL {component} (no {provider} call to hold)"
        for request in held:
            env.sim.release(int(request["id"]))
        env.wait_running(component)
        return f"SIGKILL {component} while {provider} held its answer"

    return action


def every(
    seconds: float, count: int, action: Action, start: float = 1.0
) -> list[tuple[float, Action]]:
    return [(start + i * seconds, action) for i in range(count)]
