"""The fault scenarios: real traffic through the real hub, faults injected, invariants judged.

Each scenario starts its own hub (chaos.env), so none inherits another's
backlog, and returns one row of the report. `size` scales the traffic: the
short form inside `make test` runs about a hundred payments with one or two
faults.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from chaos import faults
from chaos.check import Tally, judge_fees, judge_settled, wait_for_fees
from chaos.env import Environment, environment
from chaos.faults import Injector
from chaos.fees import FeeTraffic
from processors.fees import receipt_for_gateway
from providers.cashfree import order_id_for


@dataclass
class Row:
    scenario: str
    traffic: str
    faults: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return "PASS" if self.tally.clean else "FAIL"


@dataclass(frozen=True)
class Size:
    payments: int
    rate: float
    kills: int


FULL = Size(payments=300, rate=30.0, kills=5)
SHORT = Size(payments=100, rate=20.0, kills=2)

Scenario = Callable[[Size], Row]


def fee_flow(
    env: Environment,
    name: str,
    size: Size,
    plan: Callable[[Environment], list[tuple[float, faults.Action]]],
    *,
    rate: float | None = None,
    tenants: tuple[str, ...] = ("greenwood",),
    settle_timeout: float = 180.0,
    after_pay: Callable[[Environment, FeeTraffic], Tally] | None = None,
) -> Row:
    """Open invoices, then pay them while the plan's faults run; judge what came of it."""
    started = time.monotonic()
    since_ms = int(time.time() * 1000)
    traffic = FeeTraffic(env, size.payments, tenants=tenants)
    traffic.open()
    injector = Injector(plan(env)).start()
    traffic.pay(rate or size.rate)
    early = after_pay(env, traffic) if after_pay else Tally()
    injector.join()
    traffic.acknowledge_all()
    effects = wait_for_fees(env, traffic.payments, settle_timeout)
    tally = judge_fees(effects, traffic.payments).add(judge_settled(env, since_ms)).add(early)
    if injector.errors:
        tally.notes += injector.errors
    return Row(
        name,
        f"{size.payments} payments at {rate or size.rate:g}/s",
        injector.done,
        tally,
        time.monotonic() - started,
    )


def processors_killed(size: Size) -> Row:
    with environment("processors") as env:
        kill = faults.kill(env, "processors", wait_back=False)
        return fee_flow(
            env,
            "processors killed",
            size,
            lambda _env: faults.every(size.payments / size.rate / size.kills, size.kills, kill),
        )


def connectors_killed(size: Size) -> Row:
    kills = size.kills * 4  # 20 in the full suite
    rate = size.rate / 3  # a longer flow, so the kills spread over it

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        window = [faults.kill_in_window(env, p) for p in ("twilio", "sendgrid")]
        plain = faults.kill(env, "connectors")
        actions = [window[(i // 2) % 2] if i % 2 == 0 else plain for i in range(kills)]
        gap = size.payments / rate / kills
        return [(1.0 + i * gap, action) for i, action in enumerate(actions)]

    with environment("connectors") as env:
        return fee_flow(env, "connectors killed (half in the answer window)", size, plan, rate=rate)


def ingress_killed(size: Size) -> Row:
    with environment("ingress") as env:
        kill = faults.kill(env, "ingress", wait_back=False)
        gap = size.payments / size.rate / (size.kills + 1)
        return fee_flow(
            env,
            "ingress killed (senders retry until 2xx)",
            size,
            lambda _env: faults.every(gap, size.kills, kill, start=gap / 2),
        )


def retry_worker_killed(size: Size) -> Row:
    """Twilio fails for a while, so SMS commands wait in the retry tiers; the worker
    that moves them back is killed while they wait."""

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        def outage() -> str:
            env.sim.add_fault("twilio", status=503, times=100_000, method="POST")
            return "twilio 503s for 8s"

        def recover() -> str:
            env.sim.clear_faults()
            return "twilio recovered"

        kill = faults.kill(env, "retries", wait_back=False)
        kills = [(6.0 + i * 6.0, kill) for i in range(max(2, size.kills - 2))]
        return [(0.0, outage), (8.0, recover), *kills]

    with environment("retries") as env:
        return fee_flow(env, "retry worker killed while tiers hold commands", size, plan)


def scaled_out_and_in(size: Size) -> Row:
    """A second processors and a second connectors instance join during the flow and
    leave again: every rebalance moves partitions, state and ledgers between them."""

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        duration = size.payments / size.rate

        def join(component: str) -> faults.Action:
            return lambda: f"{env.stack.start_instance(component, '1')} joined"

        def leave(component: str) -> faults.Action:
            def action() -> str:
                env.stack.supervisor.stop(f"{component}-1")
                return f"{component}-1 left"

            return action

        return [
            (1.0, join("processors")),
            (1.5, join("connectors")),
            (duration * 0.7, leave("processors")),
            (duration * 0.8, leave("connectors")),
        ]

    with environment("scale") as env:
        return fee_flow(env, "scaled out and in", size, plan, rate=size.rate / 2)


def gateway_failover(size: Size) -> Row:
    """Seed 004: Cashfree answers 503 for the first half of the orders (they go to
    Razorpay), while processors and connectors are killed as the orders are made.
    Each payment request must end with exactly one order at one gateway — a second
    would be a parent who can be charged twice — and then one PAID, one SMS, one email."""
    started = time.monotonic()
    since_ms = int(time.time() * 1000)
    with environment("failover") as env:
        traffic = FeeTraffic(env, size.payments, tenants=("sunrise",))
        failing = env.settings.failover_attempts * (size.payments // 2)
        env.sim.add_fault("cashfree", status=503, times=failing, tenant="sunrise")
        kills = [faults.kill(env, "processors"), faults.kill(env, "connectors")]
        injector = Injector([(1.0 + 2.0 * i, kills[i % 2]) for i in range(size.kills)]).start()
        traffic.open(timeout=600.0)
        injector.join()
        env.sim.clear_faults()
        orders = judge_orders(env, traffic)
        traffic.pay(size.rate)
        traffic.acknowledge_all()
        effects = wait_for_fees(env, traffic.payments, 180.0)
        tally = judge_fees(effects, traffic.payments).add(judge_settled(env, since_ms)).add(orders)
        if injector.errors:
            tally.notes += injector.errors
        by_gateway = {g: sum(p.gateway == g for p in traffic.payments) for g in GATEWAYS}
        return Row(
            "gateway failover (Cashfree 503s), processors and connectors killed",
            f"{size.payments} payment requests, then paid at {size.rate:g}/s; "
            + ", ".join(f"{n} via {g}" for g, n in by_gateway.items()),
            injector.done,
            tally,
            time.monotonic() - started,
        )


GATEWAYS = ("cashfree", "razorpay")


def judge_orders(env: Environment, traffic: FeeTraffic) -> Tally:
    """Exactly one order per payment request across both gateways, as the gateways saw it."""
    tally = Tally()
    razorpay = Counter(str(o.get("receipt")) for o in env.sim.effects()["orders"])
    for payment in traffic.payments:
        receipt = receipt_for_gateway(payment.request_id)
        at_cashfree = _exists(env, "cashfree", order_id_for(receipt))
        count = razorpay[receipt] + int(at_cashfree)
        if count == 0:
            tally.lost += 1
            tally.notes.append(f"no order for {payment.request_id}")
        elif count > 1:
            tally.duplicated += 1
            tally.notes.append(f"{count} orders for {payment.request_id}: chargeable twice")
    return tally


def _exists(env: Environment, gateway: str, order_id: str) -> bool:
    try:
        env.sim.gateway_order(gateway, order_id)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return True
