"""Circuit breakers as values (core.breaker): the seed's rule, folded event by event."""

from __future__ import annotations

import pytest

from core.breaker import (
    BreakerConfig,
    BreakerPhase,
    BreakerState,
    Call,
    CallOutcome,
    Probe,
    ProbeRequest,
    Refuse,
    admit,
    apply,
)

SEED = BreakerConfig(window=10, failure_ratio=0.5, open_seconds=60, probes=3, lease_seconds=30)
ACCOUNT = "greenwood:twilio:twilio-primary"


def outcome(ok: bool, at: float, worker: str = "w1", probe: int | None = None) -> CallOutcome:
    return CallOutcome(account=ACCOUNT, ok=ok, at=at, worker=worker, probe_epoch=probe)


def fold(
    events: list[CallOutcome | ProbeRequest], state: BreakerState | None = None
) -> BreakerState:
    for event in events:
        state = apply(state, event, SEED)
    assert state is not None
    return state


def opened_at_100() -> BreakerState:
    """The seed's example: 10 requests, 6 failures -> open."""
    calls = [
        outcome(ok, 91 + i) for i, ok in enumerate([True, False] * 2 + [False] * 4 + [True] * 2)
    ]
    return fold(calls)


def test_the_seeds_example_six_failures_in_ten_opens_it() -> None:
    state = opened_at_100()
    assert state.phase is BreakerPhase.OPEN
    assert state.opened_at == 100
    assert state.epoch == 1
    assert state.reason == "6 of the last 10 calls failed"


def test_fewer_than_ten_calls_never_open_it_even_all_failing() -> None:
    state = fold([outcome(False, t) for t in range(9)])
    assert state.phase is BreakerPhase.CLOSED
    assert state.recent == (False,) * 9


def test_exactly_half_failing_opens_and_four_in_ten_does_not() -> None:
    half = fold([outcome(ok, t) for t, ok in enumerate([False] * 5 + [True] * 5)])
    four = fold([outcome(ok, t) for t, ok in enumerate([False] * 4 + [True] * 6)])
    assert half.phase is BreakerPhase.OPEN
    assert four.phase is BreakerPhase.CLOSED


def test_the_window_slides_old_failures_out() -> None:
    state = fold([outcome(ok, t) for t, ok in enumerate([False] * 4 + [True] * 10)])
    assert state.recent == (True,) * 10
    assert fold([outcome(False, 20)], state).phase is BreakerPhase.CLOSED


def test_while_open_nobody_calls_for_sixty_seconds() -> None:
    state = opened_at_100()
    refused = admit(state, worker="w2", now=159.9, probes_used=0, config=SEED)
    assert isinstance(refused, Refuse)
    assert refused.until == 160
    assert refused.ask is None


def test_after_sixty_seconds_a_worker_asks_for_the_probes_and_is_granted_them() -> None:
    state = opened_at_100()
    asking = admit(state, worker="w2", now=160, probes_used=0, config=SEED)
    assert isinstance(asking, Refuse)
    assert asking.ask == ProbeRequest(account=ACCOUNT, at=160, worker="w2", epoch=1)
    granted = apply(state, asking.ask, SEED)
    assert granted.phase is BreakerPhase.HALF_OPEN
    assert granted.probe_holder == "w2"


def test_the_fleet_gets_three_probes_not_three_per_worker() -> None:
    state = opened_at_100()
    first = ProbeRequest(account=ACCOUNT, at=161, worker="w1", epoch=1)
    second = ProbeRequest(account=ACCOUNT, at=161.5, worker="w2", epoch=1)
    state = fold([first, second], state)
    assert state.probe_holder == "w1"  # the first in the log; w2's request changes nothing
    holder = [admit(state, worker="w1", now=162, probes_used=n, config=SEED) for n in range(4)]
    other = admit(state, worker="w2", now=162, probes_used=0, config=SEED)
    assert holder[:3] == [Probe(1), Probe(1), Probe(1)]
    assert isinstance(holder[3], Refuse)
    assert isinstance(other, Refuse)
    assert other.ask is None


@pytest.mark.parametrize(
    ("results", "phase"),
    [
        ([True, True], BreakerPhase.CLOSED),  # 2 of 3 succeeded: closed at once
        ([True, False, True], BreakerPhase.CLOSED),
        ([False, False], BreakerPhase.OPEN),  # 2 of 3 failed: open another 60 s
        ([False, True, False], BreakerPhase.OPEN),
        ([True], BreakerPhase.HALF_OPEN),
    ],
)
def test_two_of_three_probes_decide(results: list[bool], phase: BreakerPhase) -> None:
    state = fold([ProbeRequest(account=ACCOUNT, at=160, worker="w1", epoch=1)], opened_at_100())
    state = fold([outcome(ok, 161 + i, probe=1) for i, ok in enumerate(results)], state)
    assert state.phase is phase
    if phase is BreakerPhase.OPEN:
        assert state.epoch == 2
        assert state.opened_at == 160 + len(results)
    if phase is BreakerPhase.CLOSED:
        assert state.recent == ()


def test_calls_that_began_before_it_opened_do_not_decide_the_probes() -> None:
    state = fold([ProbeRequest(account=ACCOUNT, at=160, worker="w1", epoch=1)], opened_at_100())
    late = fold([outcome(True, 161), outcome(True, 162), outcome(True, 163)], state)
    assert late.phase is BreakerPhase.HALF_OPEN
    assert late.probe_results == ()


def test_a_silent_probe_holder_loses_its_grant_after_the_lease() -> None:
    state = fold([ProbeRequest(account=ACCOUNT, at=160, worker="w1", epoch=1)], opened_at_100())
    early = admit(state, worker="w2", now=189, probes_used=0, config=SEED)
    late = admit(state, worker="w2", now=190, probes_used=0, config=SEED)
    assert isinstance(early, Refuse)
    assert early.ask is None
    assert isinstance(late, Refuse)
    assert late.ask is not None
    assert apply(state, late.ask, SEED).probe_holder == "w2"


def test_a_probe_request_of_an_old_opening_is_ignored() -> None:
    stale = ProbeRequest(account=ACCOUNT, at=500, worker="w1", epoch=0)
    assert apply(opened_at_100(), stale, SEED) == opened_at_100()


def test_closed_and_unknown_breakers_let_calls_through() -> None:
    assert admit(None, worker="w1", now=0, probes_used=0, config=SEED) == Call()
    closed = BreakerState(account=ACCOUNT)
    assert admit(closed, worker="w1", now=0, probes_used=0, config=SEED) == Call()
