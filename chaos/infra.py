"""Scenarios where the ground moves: brokers restart or die, providers fail or crawl."""

from __future__ import annotations

import time

from chaos import faults
from chaos.check import Tally, fee_effects
from chaos.env import Environment, environment
from chaos.fees import FeeTraffic
from chaos.scenarios import Row, Size, fee_flow
from core.topics import PAYMENT_EVENTS, RAW_WEBHOOKS, commands_topic, table_topic


def broker_restarted(size: Size) -> Row:
    """The single broker stops and starts three times while payments flow."""

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        def restart() -> str:
            assert env.broker is not None
            env.broker.down()
            time.sleep(2.0)  # an outage, not a blink
            env.broker.up(timeout=120)
            return "broker restarted"

        gap = size.payments / size.rate / 3
        return [(gap * (i + 0.5), restart) for i in range(3 if size.kills > 2 else 1)]

    with environment("broker") as env:
        return fee_flow(env, "broker restarted", size, plan, settle_timeout=240)


def leader_killed(size: Size) -> Row:
    """Three brokers (RF 3, min.insync.replicas 2): the leader of the busiest partitions
    is SIGKILLed mid-flow and brought back."""

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        cluster = env.cluster
        assert cluster is not None
        busy = [RAW_WEBHOOKS, PAYMENT_EVENTS, commands_topic("twilio"), table_topic("invoices")]
        victim: list[int] = []

        def kill() -> str:
            victim.append(cluster.busiest_leader(busy))
            cluster.kill(victim[0])
            return f"SIGKILL leader broker {victim[0]}"

        def revive() -> str:
            cluster.start(victim[0], timeout=120)
            return f"broker {victim[0]} back in sync"

        duration = size.payments / size.rate
        return [(duration * 0.3, kill), (duration * 0.3 + 15.0, revive)]

    with environment("cluster", nodes=3) as env:
        return fee_flow(env, "leader of the busiest partitions killed (3 brokers)", size, plan)


def provider_outage(size: Size) -> Row:
    """Twilio and SendGrid answer 5xx and time out for two minutes, then recover."""
    outage = 120.0 if size.kills > 2 else 30.0

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        def fail() -> str:
            for provider in ("twilio", "sendgrid"):
                for _ in range(40):
                    env.sim.add_fault(provider, status=503, times=25)
                    env.sim.add_fault(provider, mode="timeout", delay_seconds=6.0, times=2)
            return f"twilio and sendgrid down for {outage:g}s (503s and timeouts)"

        def recover() -> str:
            env.sim.clear_faults()
            return "providers recovered"

        return [(0.0, fail), (outage, recover)]

    with environment("outage") as env:
        small = Size(payments=min(size.payments, 100), rate=10.0, kills=size.kills)
        return fee_flow(env, "provider outage", small, plan, settle_timeout=300)


def slow_provider(size: Size) -> Row:
    """One school's Twilio account takes 30 s per call; the other school's messages
    keep flowing and no consumer is evicted from its group."""
    overrides = {"http_read_timeout": 45.0}

    def plan(env: Environment) -> list[tuple[float, faults.Action]]:
        def crawl() -> str:
            env.sim.add_fault(
                "twilio",
                mode="slow",
                delay_seconds=30.0,
                times=100_000,
                tenant="riverside",
                method="POST",
            )
            return "riverside's Twilio at 30 s per call"

        return [(0.0, crawl)]

    with environment("slow", overrides=overrides) as env:
        small = Size(payments=min(size.payments, 80), rate=10.0, kills=size.kills)
        row = fee_flow(
            env,
            "slow provider for one tenant",
            small,
            plan,
            tenants=("greenwood", "riverside"),
            settle_timeout=240,
            after_pay=_others_keep_flowing,
        )
        row.tally = row.tally.add(_no_eviction(env))
        return row


def _others_keep_flowing(env: Environment, traffic: FeeTraffic) -> Tally:
    """While riverside's calls crawl, greenwood's messages are all out within seconds."""
    fast = [p for p in traffic.payments if p.tenant == "greenwood"]
    deadline = time.monotonic() + 15.0
    waiting = fast
    while waiting and time.monotonic() < deadline:
        time.sleep(1.0)
        sent = fee_effects(env).sms
        waiting = [p for p in fast if sent[p.phone] == 0]
    tally = Tally(stuck=len(waiting))
    if waiting:
        tally.notes.append(f"{len(waiting)} greenwood SMS held up behind riverside's slow calls")
    return tally


def _no_eviction(env: Environment) -> Tally:
    log = env.stack.supervisor.services["connectors"].log_file.read_text(errors="replace")
    # Partitions are assigned once at the start; any revocation after that is a
    # rebalance, i.e. a worker left (or was evicted from) its group.
    revoked = log.count('"partitions.revoked"')
    restarts = env.restarts("connectors")
    tally = Tally(stuck=revoked + restarts)
    if revoked or restarts:
        tally.notes.append(f"connectors rebalanced {revoked}x, restarted {restarts}x")
    return tally
