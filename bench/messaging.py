"""Notifications through the messenger (policy, rate limits, breaker checks, stories)
against the same stage runner routing each request straight to the primary account.

Both pipelines run the same `StageRunner`, over the same preloaded notification
requests (20,000 SMS to distinct parents of one school), and write connector
commands to `connector.twilio.commands.v1`; timed from the first record seen to the
last command committed (read_committed). The messenger also writes each
message's story (2 events), its state, the school's and the recipient's limit
counters, and consults the breaker view for every candidate account. Limits are
set so none binds: what is measured is their cost, not a wait. Pairs interleave
(baseline, messenger, ...) on fresh topics and tables; the ratio is the median.

The connector side of a call is the same in both pipelines but for the breaker
check; its cost per call is measured on its own (`FleetBreakers.admit` + the
outcome record), in microseconds: a provider call takes milliseconds.
"""

from __future__ import annotations

import statistics
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from bench.runner import _topics
from catalog.tenant_file import read_tenant_file
from core.breaker import BreakerConfig
from core.breaker_view import BreakerView, FleetBreakers
from core.kafka import Record, client_config, consume_batch, event_record, producer_config
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import commands_topic, table_topic
from processors.messaging import MessengerContext
from processors.messaging_config import parse_messaging
from processors.runner import Stage, StageRunner, StepContext
from processors.stages.messenger import Messenger
from schemas.codec import SingleObjectCodec
from schemas.events import (
    Channel,
    ConnectorCommand,
    EventHeader,
    NotificationRequest,
    SendSms,
    decode_as,
)

REQUESTS = 20_000
TENANT = "greenwood"
COMMANDS = commands_topic("twilio")
# Limits high enough never to bind: their arithmetic is in the path, no wait is.
POLICY = f"""
[defaults.limits]
per_recipient_per_hour = 100
per_minute = 10000000
per_day = 100000000
[tenants.{TENANT}.policy.sms.accounts.twilio-primary]
cost_minor = 20
rate_per_second = 1000000
"""
CODEC = SingleObjectCodec()


def _preload(settings: Settings, topic: str) -> None:
    producer = Producer(producer_config(settings, "bench-load", **{"linger.ms": 20}))
    run = uuid.uuid4().hex[:6]
    for n in range(REQUESTS):
        request = NotificationRequest(
            header=EventHeader.new(NotificationRequest.EVENT_TYPE, TENANT, source="bench"),
            idempotency_key=f"bench-{run}-{n}",
            channel=Channel.SMS,
            to=f"+9198{n:08d}",
            text="Your ward was absent today.",
        )
        record = event_record(CODEC, topic, request)
        while True:
            try:
                producer.produce(topic, key=record.key, value=record.value)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def _ends(settings: Settings) -> list[TopicPartition]:
    reader = Consumer({**client_config(settings), "group.id": "bench-ends"})
    try:
        parts = reader.list_topics(COMMANDS, timeout=10).topics[COMMANDS].partitions
        return [
            TopicPartition(
                COMMANDS, p, reader.get_watermark_offsets(TopicPartition(COMMANDS, p))[1]
            )
            for p in parts
        ]
    finally:
        reader.close()


def _count_from(settings: Settings, starts: list[TopicPartition], timeout: float = 600) -> float:
    reader = Consumer(
        {
            **client_config(settings),
            "group.id": f"bench-count-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
        }
    )
    reader.assign(starts)
    seen, deadline = 0, time.monotonic() + timeout
    while seen < REQUESTS and time.monotonic() < deadline:
        seen += sum(1 for m in consume_batch(reader, 1000, 0.5) if not m.error())
    reader.close()
    if seen < REQUESTS:
        raise TimeoutError(f"{seen}/{REQUESTS} commands")
    return time.monotonic()


Started = list[float]
StageFor = Callable[[Settings, TenantDirectory, str, Started], Stage]


def _direct(settings: Settings, tenants: TenantDirectory, source: str, started: Started) -> Stage:
    """The baseline: each request to the school's primary Twilio account, nothing else."""

    def step(_ctx: StepContext, msg: Message) -> list[Record]:
        if not started:
            started.append(time.monotonic())
        request = decode_as(CODEC, msg.value(), NotificationRequest)
        command = ConnectorCommand(
            header=request.header.caused("connector.sms.send", source="bench"),
            idempotency_key=f"{request.idempotency_key}#1",
            provider="twilio",
            account="twilio-primary",
            payload=SendSms(to=request.to, text=request.text),
            context={"message": request.idempotency_key, "attempt": "1"},
        )
        return [event_record(CODEC, COMMANDS, command)]

    return Stage("bench-direct", (source,), step)


def _messenger(
    settings: Settings, tenants: TenantDirectory, source: str, started: Started
) -> Stage:
    table = f"bench-{uuid.uuid4().hex[:8]}"
    _topics(settings, compact=table_topic(table))
    view = BreakerView(settings)  # followed by nobody here: every account closed, looked up
    ctx = MessengerContext(
        tenants=tenants,
        config=parse_messaging(tomllib.loads(POLICY)),
        is_open=lambda t, p, label: view.get(f"{t}:{p}:{label}") is not None,
        webhook_url_template=settings.webhook_url_template,
        receipt_deadline_seconds=600.0,
    )
    messenger = Messenger(ctx, CODEC, table=table)

    def step(ctx_: StepContext, msg: Message) -> list[Record]:
        if not started:
            started.append(time.monotonic())
        return messenger.step(ctx_, msg)

    return Stage("bench-messenger", (source,), step, tables=(table,))


def _one(settings: Settings, tenants: TenantDirectory, stage_for: StageFor) -> float:
    source = f"bench.requests-{uuid.uuid4().hex[:8]}.v1"
    _topics(settings, source)
    _preload(settings, source)
    starts = _ends(settings)
    started: Started = []
    stop = threading.Event()
    runner = StageRunner(
        settings.model_copy(update={"instance_id": uuid.uuid4().hex[:6]}),
        f"bench-msg-{uuid.uuid4().hex}",
        [stage_for(settings, tenants, source, started)],
        CODEC,
    )
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    done = _count_from(settings, starts)
    stop.set()
    thread.join(30)
    return REQUESTS / (done - started[0])


def _breaker_check_us(rounds: int = 100_000) -> float:
    """Microseconds a connector spends per call on its breaker: the admission and the
    outcome record (median of 5 rounds). A provider call takes milliseconds."""
    view = BreakerView(Settings())
    fleet = FleetBreakers(view, "bench", BreakerConfig())
    account = f"{TENANT}:twilio:twilio-primary"

    def one_round() -> float:
        began = time.perf_counter()
        for _ in range(rounds):
            fleet.outcome(account, True, fleet.admit(account))
        return (time.perf_counter() - began) / rounds * 1e6

    return statistics.median(one_round() for _ in range(5))


def run(settings: Settings, pairs: int = 3) -> dict[str, Any]:
    tenants = TenantDirectory({t.id: t for t in read_tenant_file(settings.home / "tenants.toml")})
    _one(settings, tenants, _direct)  # warm-up: coordinators, transaction log
    direct, guarded = [], []
    for _ in range(pairs):
        direct.append(_one(settings, tenants, _direct))
        guarded.append(_one(settings, tenants, _messenger))
    ratios = [g / d for g, d in zip(guarded, direct, strict=True)]
    return {
        "requests": REQUESTS,
        "direct_route_per_s": [round(r) for r in direct],
        "messenger_per_s": [round(r) for r in guarded],
        "median_direct_per_s": round(statistics.median(direct)),
        "median_messenger_per_s": round(statistics.median(guarded)),
        "median_ratio": round(statistics.median(ratios), 3),
        "breaker_check_us_per_call": round(_breaker_check_us(), 2),
    }
