"""The invariants every scenario is judged by, counted from what the outside world saw.

- lost: a payment without its PAID invoice event, its SMS or its email; a
  database change a target never got; a record in a dead-letter topic that
  recovery could have delivered.
- duplicated: any of those more than once — at the provider (the SMS the
  simulator created, the mail it accepted), not in the hub's own records.
- out of order: a target that got an older value of a row after a newer one.
- stuck: records still unprocessed on any input of any hub consumer group
  once the traffic is over.

Provider effects come from the simulators' own records (`/_sim/effects`),
Kafka effects from read_committed reads of the topics.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from chaos.env import Environment
from chaos.fees import Payment
from core.kafka import admin_config, read_to_end
from core.settings import Settings
from core.topics import (
    CDC_GROUP,
    INVOICE_STATUS,
    PAYMENT_EVENTS,
    PROCESSORS_GROUP,
    RETRY_WORKER_GROUP,
    connector_group,
    dlq_topic,
)
from providers import names as provider_names
from providers import stages as all_stages
from schemas.codec import DecodeError, make_codec
from schemas.events import (
    Event,
    InvoiceStatus,
    InvoiceStatusChanged,
    PaymentEvent,
    decode_event,
)

SUCCESS_SMS = "Payment successful"


@dataclass
class Tally:
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    stuck: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> Tally:
        return Tally(
            self.lost + other.lost,
            self.duplicated + other.duplicated,
            self.out_of_order + other.out_of_order,
            self.stuck + other.stuck,
            self.notes + other.notes,
        )

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.stuck)


@dataclass(frozen=True)
class FeeEffects:
    paid: Counter[str]  # invoice id -> PAID events
    captured: Counter[str]  # order id -> CAPTURED payment events
    sms: Counter[str]  # phone -> "Payment successful" SMS created
    mails: Counter[str]  # address -> receipt mails accepted

    def of(self, p: Payment) -> tuple[int, int, int, int]:
        return (
            self.paid[p.invoice_id],
            self.captured[p.order_id or ""],
            self.sms[p.phone],
            self.mails[p.email],
        )


def events(settings: Settings, topic: str) -> list[Event]:
    """A topic's decodable events (a poison scenario puts undecodable ones beside them)."""
    codec = make_codec(settings.schema_registry_url)
    found = []
    for msg in read_to_end(settings, topic):
        try:
            found.append(decode_event(codec, msg.value()))
        except DecodeError:
            continue
    return found


def fee_effects(env: Environment) -> FeeEffects:
    paid: Counter[str] = Counter()
    for event in events(env.settings, INVOICE_STATUS):
        if isinstance(event, InvoiceStatusChanged) and event.status is InvoiceStatus.PAID:
            paid[event.invoice_id] += 1
    captured: Counter[str] = Counter()
    for event in events(env.settings, PAYMENT_EVENTS):
        # Webhooks only: a status query that found the same payment (a missed webhook,
        # processors.fees.due_polls) is a second report the ledger applies once.
        if (
            isinstance(event, PaymentEvent)
            and event.kind == "CAPTURED"
            and not event.provider_event_id.startswith("status:")
        ):
            captured[event.order_id] += 1
    effects = env.sim.effects()
    sms = Counter(m["to"] for m in effects["sms"] if str(m["body"]).startswith(SUCCESS_SMS))
    mails = Counter(m["to"] for m in effects["mails"])
    return FeeEffects(paid, captured, sms, mails)


def judge_fees(effects: FeeEffects, payments: Iterable[Payment]) -> Tally:
    tally = Tally()
    for payment in payments:
        counts = effects.of(payment)
        if min(counts) == 0:
            tally.lost += 1
            if len(tally.notes) < 5:
                tally.notes.append(f"lost {payment.invoice_id}: paid/captured/sms/email={counts}")
        if max(counts) > 1:
            tally.duplicated += 1
            if len(tally.notes) < 5:
                tally.notes.append(f"twice {payment.invoice_id}: paid/captured/sms/email={counts}")
    return tally


def wait_for_fees(env: Environment, payments: list[Payment], timeout: float) -> FeeEffects:
    """Until every payment's effects are in (or the time is up); then a last look."""
    deadline = time.monotonic() + timeout
    effects = fee_effects(env)
    while judge_fees(effects, payments).lost and time.monotonic() < deadline:
        time.sleep(2.0)
        effects = fee_effects(env)
    return effects


def hub_groups() -> list[str]:
    return [
        PROCESSORS_GROUP,
        RETRY_WORKER_GROUP,
        CDC_GROUP,
        *(connector_group(p) for p in provider_names()),
    ]


def unprocessed(settings: Settings, groups: Iterable[str]) -> dict[str, int]:
    """Records each group has not consumed yet, counted by reading them (a transactional
    topic's last offset is a commit marker, which a lag in offsets would count)."""
    admin = AdminClient(admin_config(settings))
    left: dict[str, int] = {}
    for group in groups:
        futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        offsets = futures[group].result(30).topic_partitions
        count = 0
        for tp in offsets:
            if tp.offset < 0:
                continue
            start = {tp.partition: tp.offset}
            count += sum(1 for _ in read_to_end(settings, tp.topic, [tp.partition], start=start))
        if count:
            left[group] = count
    return left


def dead_letters_since(settings: Settings, since_ms: int) -> Counter[str]:
    """Dead letters written after `since_ms`, by stage."""
    found: Counter[str] = Counter()
    for stage in all_stages():
        for msg in read_to_end(settings, dlq_topic(stage)):
            _kind, stamp = msg.timestamp()
            if stamp >= since_ms:
                found[stage] += 1
    return found


def judge_settled(env: Environment, since_ms: int, *, expected_dead: int = 0) -> Tally:
    """Once the traffic is over: nothing left unprocessed, no unexpected dead letter."""
    tally = Tally()
    deadline = time.monotonic() + 60
    left = unprocessed(env.settings, hub_groups())
    while left and time.monotonic() < deadline:
        time.sleep(2.0)
        left = unprocessed(env.settings, hub_groups())
    tally.stuck = sum(left.values())
    if left:
        tally.notes.append(f"unprocessed: {left}")
    dead = dead_letters_since(env.settings, since_ms)
    unexpected = sum(dead.values()) - expected_dead
    if unexpected > 0:
        tally.lost += unexpected
        tally.notes.append(f"dead letters: {dict(dead)}")
    return tally
