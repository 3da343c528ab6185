"""Circuit breakers per provider account, as values and transitions. Pure.

The seed's rule (000, "Circuit Breaker Pattern"): when at least half of the
last 10 calls to an account failed, the breaker opens; for 60 s nothing calls
the account; then 3 probe calls decide: 2 of 3 succeeding close it, 2 of 3
failing open it again for another 60 s.

One breaker is shared by every connector worker of the fleet. Workers append
*events* to `hub.breakers.events.v1` (a call's outcome; a request to probe),
keyed by account; one keeper (processors.stages.breakers) folds them, in log
order, with `apply` and writes each new state to the compacted
`hub.breakers.v1`, which every worker reads whole and follows. So every worker
sees the same state within a second, and the probes of a half-open breaker
are granted to one worker at a time: 3 for the whole fleet, not 3 per worker.
A worker that holds the grant and dies leaves it to expire after a lease.

Time is the event's own (the worker's clock when the call ended), so the
fold is deterministic: a restored keeper reaches the same state again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.settings import Settings


class BreakerPhase(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window: int = 10
    failure_ratio: float = 0.5
    open_seconds: float = 60.0
    probes: int = 3
    lease_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerConfig:
        return cls(
            settings.breaker_window,
            settings.breaker_failure_ratio,
            settings.breaker_open_seconds,
            settings.breaker_probes,
            settings.breaker_probe_lease_seconds,
        )

    @property
    def probes_to_close(self) -> int:
        """Successes among the probes that close the breaker: a majority (2 of 3)."""
        return self.probes // 2 + 1


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class BreakerState(_Value):
    account: str  # <tenant>:<provider>:<label>
    phase: BreakerPhase = BreakerPhase.CLOSED
    # Closed: the last `window` outcomes, oldest first (True: the call succeeded).
    recent: tuple[bool, ...] = ()
    epoch: int = 0  # how often it opened; probes and their results name it
    opened_at: float | None = None
    probe_holder: str | None = None  # the worker granted this epoch's probes
    granted_at: float | None = None
    probe_results: tuple[bool, ...] = ()
    reason: str = ""  # why it opened, for operators
    updated_at: float = 0.0

    def reopens_at(self, config: BreakerConfig) -> float | None:
        return None if self.opened_at is None else self.opened_at + config.open_seconds


class CallOutcome(_Value):
    type: Literal["outcome"] = "outcome"
    account: str
    ok: bool
    at: float
    worker: str
    # Set on a probe's outcome: the epoch whose probe it was.
    probe_epoch: int | None = None
    error: str = ""


class ProbeRequest(_Value):
    type: Literal["probe_request"] = "probe_request"
    account: str
    at: float
    worker: str
    epoch: int


class BreakerEvent(_Value):
    event: CallOutcome | ProbeRequest = Field(discriminator="type")


def apply(
    state: BreakerState | None, event: CallOutcome | ProbeRequest, config: BreakerConfig
) -> BreakerState:
    """The breaker after one event, in log order."""
    current = state or BreakerState(account=event.account)
    if isinstance(event, ProbeRequest):
        return _on_probe_request(current, event, config)
    if event.probe_epoch is not None:
        return _on_probe_result(current, event, config)
    if current.phase is not BreakerPhase.CLOSED:
        return current  # a call that began before it opened: the probes decide now
    recent = (*current.recent, event.ok)[-config.window :]
    failures = recent.count(False)
    if len(recent) >= config.window and failures >= config.failure_ratio * len(recent):
        reason = f"{failures} of the last {len(recent)} calls failed" + (
            f" (last: {event.error})" if event.error else ""
        )
        return _opened(current, event.at, reason)
    return current.model_copy(update={"recent": recent, "updated_at": event.at})


def _opened(state: BreakerState, at: float, reason: str) -> BreakerState:
    return BreakerState(
        account=state.account,
        phase=BreakerPhase.OPEN,
        epoch=state.epoch + 1,
        opened_at=at,
        reason=reason,
        updated_at=at,
    )


def _on_probe_request(
    state: BreakerState, event: ProbeRequest, config: BreakerConfig
) -> BreakerState:
    if event.epoch != state.epoch:
        return state  # asked about an opening that is over
    due = state.reopens_at(config)
    if state.phase is BreakerPhase.OPEN and due is not None and event.at >= due:
        return _granted(state, event)
    lease_over = (
        state.granted_at is not None and event.at >= state.granted_at + config.lease_seconds
    )
    if (
        state.phase is BreakerPhase.HALF_OPEN
        and event.worker != state.probe_holder
        and lease_over
        and not state.probe_results
    ):
        return _granted(state, event)  # its holder never probed (gone): another worker may
    return state


def _granted(state: BreakerState, event: ProbeRequest) -> BreakerState:
    return state.model_copy(
        update={
            "phase": BreakerPhase.HALF_OPEN,
            "probe_holder": event.worker,
            "granted_at": event.at,
            "updated_at": event.at,
        }
    )


def _on_probe_result(
    state: BreakerState, event: CallOutcome, config: BreakerConfig
) -> BreakerState:
    if state.phase is not BreakerPhase.HALF_OPEN or event.probe_epoch != state.epoch:
        return state
    results = (*state.probe_results, event.ok)
    if results.count(True) >= config.probes_to_close:
        return BreakerState(account=state.account, epoch=state.epoch, updated_at=event.at)
    if results.count(False) > config.probes - config.probes_to_close:
        reason = f"{results.count(False)} of {len(results)} probes failed" + (
            f" (last: {event.error})" if event.error else ""
        )
        return _opened(state, event.at, reason)
    return state.model_copy(update={"probe_results": results, "updated_at": event.at})


# --- admission: what a worker does with its next call ------------------------


@dataclass(frozen=True)
class Call:
    """Closed (or unknown): call the provider."""


@dataclass(frozen=True)
class Probe:
    """Half-open and this worker holds the grant: call, and report it as a probe."""

    epoch: int


@dataclass(frozen=True)
class Refuse:
    """Open: do not call. `ask` — the open time is over: request the probes."""

    reason: str
    until: float | None
    ask: ProbeRequest | None = None


Admission = Call | Probe | Refuse


def admit(
    state: BreakerState | None,
    *,
    worker: str,
    now: float,
    probes_used: int,
    config: BreakerConfig,
) -> Admission:
    """`probes_used`: how many probes of the state's epoch this worker already made."""
    if state is None or state.phase is BreakerPhase.CLOSED:
        return Call()
    due = state.reopens_at(config)
    why = f"circuit open for {state.account}: {state.reason}"
    if state.phase is BreakerPhase.OPEN:
        if due is not None and now >= due:
            ask = ProbeRequest(account=state.account, at=now, worker=worker, epoch=state.epoch)
            return Refuse(f"{why}; asking to probe", due, ask)
        return Refuse(why, due)
    if state.probe_holder == worker and probes_used < config.probes:
        return Probe(state.epoch)
    lease_over = state.granted_at is not None and now >= state.granted_at + config.lease_seconds
    if state.probe_holder != worker and lease_over and not state.probe_results:
        ask = ProbeRequest(account=state.account, at=now, worker=worker, epoch=state.epoch)
        return Refuse(f"{why}; its probes' holder is silent, asking", None, ask)
    return Refuse(f"{why}; half-open, {state.probe_holder} is probing", None)


def account_key(tenant: str, provider: str, label: str) -> str:
    return f"{tenant}:{provider}:{label}"
