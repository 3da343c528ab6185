"""The fault suite's worst scenarios, short, on the session's hub: a regression fails CI.

`make chaos` runs every scenario at full size on hubs of its own; these run the
same code (chaos.scenarios) with about a hundred payments and two kills each,
against the session's broker and stack, and demand the same: nothing lost,
nothing twice, nothing left unprocessed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos import faults
from chaos.env import Environment
from chaos.scenarios import SHORT, Row, fee_flow
from core.settings import Settings
from hub.local_kafka import LocalBroker
from hub.stack import HubStack
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]


@pytest.fixture
def env(hub_settings: Settings, stack: HubStack, broker: LocalBroker) -> Iterator[Environment]:
    with SimulatorClient(hub_settings.simulator_url) as sim:
        sim.clear_faults()
        yield Environment(hub_settings, stack, sim, broker=broker)
        sim.clear_faults()


def assert_clean(row: Row) -> None:
    tally = row.tally
    assert (tally.lost, tally.duplicated, tally.out_of_order, tally.stuck) == (0, 0, 0, 0), (
        row.faults,
        tally.notes,
    )
    assert row.faults, "no fault was injected"


def test_processors_killed_twice_lose_no_payment_and_announce_none_twice(env: Environment) -> None:
    kill = faults.kill(env, "processors", wait_back=False)
    row = fee_flow(env, "processors killed", SHORT, lambda _e: [(1.0, kill), (3.5, kill)])
    assert_clean(row)
    assert row.faults == ["SIGKILL processors", "SIGKILL processors"]


def test_connectors_killed_while_the_provider_holds_its_answer_send_nothing_twice(
    env: Environment,
) -> None:
    plan = [
        (1.0, faults.kill_in_window(env, "twilio")),
        (8.0, faults.kill_in_window(env, "sendgrid")),
    ]
    row = fee_flow(env, "connectors killed in the answer window", SHORT, lambda _e: plan, rate=8.0)
    assert_clean(row)
    assert row.faults == [
        "SIGKILL connectors while twilio held its answer",
        "SIGKILL connectors while sendgrid held its answer",
    ]


def test_ingress_killed_while_providers_send_loses_no_webhook(env: Environment) -> None:
    kill = faults.kill(env, "ingress", wait_back=False)
    row = fee_flow(env, "ingress killed", SHORT, lambda _e: [(1.0, kill), (3.0, kill)])
    assert_clean(row)
