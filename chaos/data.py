"""Scenarios about data rather than processes: change data capture with its relay
killed, and poison records on every input."""

from __future__ import annotations

import secrets
import time
from collections import Counter

from confluent_kafka import Producer

from chaos import faults
from chaos.check import Tally, events, judge_fees, judge_settled, wait_for_fees
from chaos.env import Environment, environment
from chaos.faults import Injector
from chaos.fees import FeeTraffic, Payment, fee_events, new_payments
from chaos.scenarios import Row, Size
from chaos.sync import SyncTraffic, wait_for_sync
from core.kafka import producer_config, read_to_end
from core.topics import (
    INVOICES,
    NOTIFICATION_REQUESTS,
    ORDER_LINKS,
    PAYMENT_EVENTS,
    PAYMENT_MATCHES,
    PAYMENT_ORDERS,
    PAYMENT_REQUESTS,
    RAW_WEBHOOKS,
    cdc_topic,
    commands_topic,
    connector_stage,
    dlq_topic,
    results_topic,
    retry_topic,
)
from hub import erp
from providers import names as provider_names
from schemas.codec import make_codec
from schemas.events import DeadLetter, OrderStatus, PaymentOrderResult, decode_as


def cdc_and_relay_killed(size: Size) -> Row:
    """A bulk update of students and invoices issued through the outbox, while the CDC
    consumer and the Debezium worker (the CDC source and the outbox relay) are killed."""
    count = max(10, size.payments // 5)
    with environment("cdc", cdc=True) as env:
        started, since_ms = time.monotonic(), int(time.time() * 1000)
        sync = SyncTraffic(env, count)
        sync.insert_all()
        kills = [faults.kill(env, "cdc-consumer"), faults.kill(env, "cdc-source")]
        plan = [(1.0 + i * 6.0, kills[i % 2]) for i in range(max(2, size.kills - 1))]
        injector = Injector(plan).start()
        outboxed = new_payments(count, ("greenwood",), secrets.token_hex(3))
        for round_ in range(3):
            if round_ == 1:
                sync.bulk_round()
            else:
                sync.update_round(rate=20.0)
            _issue_through_outbox(env, sync, outboxed[round_::3])
        injector.join()
        tally = wait_for_sync(env, sync.students, 240.0)
        tally = tally.add(_judge_outboxed(env, outboxed, 120.0)).add(judge_settled(env, since_ms))
        tally.notes += injector.errors
        traffic = (
            f"{count} students × 4 changes (one a bulk update), {count} invoices through the outbox"
        )
        return Row(
            "CDC consumer and Debezium (relay) killed",
            traffic,
            injector.done,
            tally,
            time.monotonic() - started,
        )


def _issue_through_outbox(env: Environment, sync: SyncTraffic, payments: list[Payment]) -> None:
    for payment, student in zip(payments, sync.students, strict=False):
        invoice, request = fee_events(payment)
        invoice = invoice.model_copy(update={"student_id": student.id})
        erp.issue_invoice(sync.engine, invoice, request)


def _judge_outboxed(env: Environment, payments: list[Payment], timeout: float) -> Tally:
    """Each invoice issued through the outbox: its event on Kafka, one order for it."""
    wanted = {p.request_id for p in payments}
    deadline = time.monotonic() + timeout
    while True:
        created: Counter[str] = Counter()
        for order in events(env.settings, PAYMENT_ORDERS):
            if not isinstance(order, PaymentOrderResult) or order.status is not OrderStatus.CREATED:
                continue
            if order.request_id in wanted:
                created[order.request_id] += 1
        if len(created) == len(wanted) or time.monotonic() >= deadline:
            break
        time.sleep(2.0)
    receipts = Counter(o["receipt"] for o in env.sim.effects()["orders"])
    tally = Tally(lost=len(wanted - set(created)))
    tally.duplicated = sum(1 for r in wanted if receipts[f"rcpt_{r}"] > 1 or created[r] > 1)
    if tally.lost:
        tally.notes.append(f"{tally.lost} outboxed invoices never got their order")
    return tally


def _poison_targets(env: Environment) -> dict[str, str]:
    """Every input topic of every stage -> the stage whose dead-letter topic it ends in."""
    targets = {RAW_WEBHOOKS: "normalizer", NOTIFICATION_REQUESTS: "messenger"}
    for topic in (
        PAYMENT_EVENTS,
        ORDER_LINKS,
        INVOICES,
        PAYMENT_REQUESTS,
        PAYMENT_ORDERS,
        PAYMENT_MATCHES,
        results_topic("razorpay"),
    ):
        targets[topic] = "reconciler"
    for provider in provider_names():
        targets[commands_topic(provider)] = connector_stage(provider)
        targets[retry_topic(provider, 1)] = connector_stage(provider)
    for table in env.settings.tables:
        targets[cdc_topic(env.settings.cdc_source_name, table)] = "cdc"
    return targets


def poison_everywhere(size: Size) -> Row:
    """Undecodable records on every input topic, between valid payments: each ends in its
    stage's dead-letter topic with the reason, and the valid traffic flows on."""
    with environment("poison", cdc=True) as env:
        started, since_ms = time.monotonic(), int(time.time() * 1000)
        targets = _poison_targets(env)
        traffic = FeeTraffic(env, min(size.payments, 50))
        traffic.open()
        poisons = _send_poison(env, targets)
        traffic.pay(10.0)
        poisons.update(_send_poison(env, targets))
        traffic.acknowledge_all()
        effects = wait_for_fees(env, traffic.payments, 180.0)
        tally = judge_fees(effects, traffic.payments)
        tally = tally.add(_judge_poison(env, poisons, 120.0))
        tally = tally.add(judge_settled(env, since_ms, expected_dead=len(poisons)))
        return Row(
            "poison records on every input topic",
            f"{len(traffic.payments)} payments, {len(poisons)} poison records on "
            f"{len(targets)} topics",
            [f"poison on {len(targets)} topics"],
            tally,
            time.monotonic() - started,
        )


def _send_poison(env: Environment, targets: dict[str, str]) -> dict[bytes, str]:
    producer = Producer(producer_config(env.settings, "chaos-poison"))
    sent = {}
    for topic, stage in targets.items():
        key = f"poison-{secrets.token_hex(6)}".encode()
        producer.produce(topic, key=key, value=b"\x00\xffnot a record " + key)
        sent[key] = stage
    producer.flush(30)
    return sent


def _judge_poison(env: Environment, poisons: dict[bytes, str], timeout: float) -> Tally:
    codec = make_codec(env.settings.schema_registry_url)
    deadline = time.monotonic() + timeout
    while True:
        found: Counter[bytes] = Counter()
        for stage in set(poisons.values()):
            for msg in read_to_end(env.settings, dlq_topic(stage)):
                letter = decode_as(codec, msg.value(), DeadLetter)
                key = letter.original_key or b""
                if poisons.get(key) == stage and letter.error_message:
                    found[key] += 1
        if len(found) == len(poisons) or time.monotonic() >= deadline:
            break
        time.sleep(2.0)
    tally = Tally(lost=len(poisons) - len(found))
    tally.duplicated = sum(n - 1 for n in found.values())
    missing = sorted({poisons[k] for k in poisons if k not in found})
    if missing:
        tally.notes.append(f"poison never dead-lettered by: {missing}")
    return tally
