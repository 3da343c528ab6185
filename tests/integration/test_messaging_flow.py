"""Messages that arrive, end to end on the running hub (seeds 000, 002, 004):

- SMS: Twilio accepts, its receipt says undelivered, MSG91 delivers (one resend);
- email: SendGrid answers 5xx, Amazon SES takes it;
- the bulk attendance SMS: 500 parents, 4 invalid numbers -> 496 / 4, the 4 retried
  on the alternate provider;
- circuit breakers shared by the fleet through Kafka: every view sees an account
  open, the half-open probes go to one worker, and an open account is not called.
"""

from __future__ import annotations

import secrets
import time

import pytest
from confluent_kafka import Producer
from support import TENANT, hub_cli, unique_email, unique_phone

from core.breaker import BreakerConfig, BreakerPhase, CallOutcome, Probe, Refuse
from core.breaker_view import BreakerView, FleetBreakers, event_record
from core.kafka import producer_config
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import BULK_REPORTS, MESSAGE_EVENTS, commands_topic, retry_topic
from producers import EventProducer, bulk_parts
from schemas.events import (
    BulkRecipient,
    BulkReport,
    Channel,
    ConnectorCommand,
    EventHeader,
    MessageEvent,
    MessageStep,
    NotificationRequest,
    SendSms,
)
from simulators.client import SimulatorClient

pytestmark = pytest.mark.usefixtures("stack")


def request(channel: Channel, to: str, **fields: object) -> NotificationRequest:
    return NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, TENANT, source="test"),
        idempotency_key=f"test-msg:{secrets.token_hex(6)}",
        channel=channel,
        to=to,
        text=str(fields.pop("text", "")),
        **fields,  # type: ignore[arg-type]  # the test passes NotificationRequest's fields
    )


def story_of(
    watch: TopicWatcher, message_id: str, until: MessageStep, timeout: float = 60
) -> list[MessageEvent]:
    watch.wait_for(
        MessageEvent,
        lambda e: e.message_id == message_id and e.step is until,
        topic=MESSAGE_EVENTS,
        timeout=timeout,
    )
    return watch.find(MessageEvent, lambda e: e.message_id == message_id)


def routed(story: list[MessageEvent]) -> list[str | None]:
    return [e.provider for e in story if e.step is MessageStep.ROUTED]


def attendance(phone: str, name: str = "Asha") -> dict[str, object]:
    return {
        "template": "attendance_alert",
        "variables": {"student_name": name, "date": "2026-12-02", "school": "Greenwood High"},
    }


def test_sms_fails_over_to_msg91_when_twilios_receipt_says_undelivered(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    phone = unique_phone()
    sim.undeliverable([phone], provider="twilio")
    message = request(Channel.SMS, phone, **attendance(phone))
    with TopicWatcher(hub_settings, [MESSAGE_EVENTS]) as watch:
        with EventProducer(hub_settings) as producer:
            producer.publish(message)
        story = story_of(watch, message.notification_id, MessageStep.DELIVERED)
    assert routed(story) == ["twilio", "msg91"]
    failover = [e for e in story if e.step is MessageStep.FAILING_OVER]
    assert len(failover) == 1
    assert failover[0].detail.startswith("receipt says undelivered (undelivered 30003")
    assert story[-1].provider == "msg91"
    assert len(sim.requests("twilio", To=phone)) == 1
    [msg91_call] = [r for r in sim.requests("msg91") if phone.lstrip("+") in str(r.get("body"))]
    assert msg91_call["response_status"] == 200
    # The operator's view of the same story.
    shown = hub_cli(hub_settings, "messages", "show", message.notification_id, "--tenant", TENANT)
    assert shown.returncode == 0, shown.stderr
    # Body rows of the table (a long detail wraps onto rows with an empty step cell).
    rows = [line.split("│") for line in shown.stdout.splitlines() if line.count("│") >= 6]
    steps = [row[2].strip() for row in rows if row[2].strip()]
    assert steps[0] == "REQUESTED"
    assert steps[-1] == "DELIVERED"
    assert "FAILING_OVER" in steps
    delivered = [row for row in rows if row[2].strip() == "DELIVERED"]
    assert delivered[0][4].strip() == "msg91 / msg91-primary"
    missing = hub_cli(hub_settings, "messages", "show", "no-such-message")
    assert missing.returncode == 1
    assert "no message 'no-such-message' on record" in missing.stdout + missing.stderr


def test_email_fails_over_to_ses_when_sendgrid_answers_5xx(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    email = unique_email()
    # Both of the connector's tries at SendGrid (HUB_FAILOVER_ATTEMPTS) fail.
    sim.add_fault("sendgrid", status=503, times=2, method="POST", tenant=TENANT)
    message = request(Channel.EMAIL, email, subject="Fee receipt", text="Thank you")
    with TopicWatcher(hub_settings, [MESSAGE_EVENTS]) as watch:
        with EventProducer(hub_settings) as producer:
            producer.publish(message)
        story = story_of(watch, message.notification_id, MessageStep.SENT)
    assert routed(story) == ["sendgrid", "ses"]
    assert [e.step for e in story if e.provider == "sendgrid"][:2] == [
        MessageStep.ROUTED,
        MessageStep.SEND_FAILED,
    ]
    sent = [e for e in story if e.step is MessageStep.SENT]
    assert sent[-1].provider == "ses"
    assert sent[-1].detail == "accepted (ses reports no delivery: final)"


def test_the_bulk_attendance_sms_to_500_parents_reports_496_delivered_and_4_failed(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    phones = [unique_phone() for _ in range(500)]
    invalid = [phones[7], phones[150], phones[333], phones[498]]
    sim.undeliverable(invalid)  # at every provider: a number that does not exist
    recipients = [
        BulkRecipient(
            to=p,
            reference=f"STU-{n:04d}",
            variables={
                "student_name": f"Student {n}",
                "date": "2026-12-02",
                "school": "Greenwood High",
            },
        )
        for n, p in enumerate(phones)
    ]
    parts = bulk_parts(
        TENANT, "attendance_alert", Channel.SMS, recipients, batch_size=100, part_size=200
    )
    assert len(parts) == 3
    with TopicWatcher(hub_settings, [BULK_REPORTS]) as watch:
        with EventProducer(hub_settings) as producer:
            for part in parts:
                producer.publish(part)
        [report] = watch.wait_for(
            BulkReport, lambda r: r.bulk_id == parts[0].bulk_id and r.complete, timeout=180
        )
        batches = sorted(
            {r.released for r in watch.find(BulkReport, lambda r: r.bulk_id == parts[0].bulk_id)}
        )
    assert (report.total, report.delivered, report.failed, report.pending) == (500, 496, 4, 0)
    assert report.retried_on_alternate == 4
    by_provider = {t.provider: (t.sent, t.delivered, t.failed) for t in report.by_provider}
    assert by_provider == {"twilio": (500, 496, 4), "msg91": (4, 0, 4)}
    assert sorted(f.split(" ")[0] for f in report.failures) == sorted(invalid)
    assert batches[:5] == [100, 200, 300, 400, 500]  # released batch by batch
    status = hub_cli(hub_settings, "bulk", "status", parts[0].bulk_id, "--tenant", TENANT)
    assert status.returncode == 0, status.stderr
    assert "complete" in status.stdout
    # The first table's body row: total, released, sent, delivered, failed, rejected,
    # pending, retried on alternate.
    first = next(line for line in status.stdout.splitlines() if line.count("│") == 9)
    counts = [cell.strip() for cell in first.split("│")[1:-1]]
    assert counts == ["500", "500", "0", "496", "4", "0", "0", "4"]


def test_breakers_are_shared_by_the_fleet_and_probes_go_to_one_worker(
    hub_settings: Settings,
) -> None:
    account = f"fleet{secrets.token_hex(3)}:twilio:twilio-primary"
    config = BreakerConfig.from_settings(hub_settings)
    views = [BreakerView.start(hub_settings), BreakerView.start(hub_settings)]
    workers = [
        FleetBreakers(views[0], "worker-a", config),
        FleetBreakers(views[1], "worker-b", config),
    ]
    producer = Producer(producer_config(hub_settings, "breaker-test"))
    try:
        started = time.monotonic()
        for n in range(10):
            failed = CallOutcome(
                account=account, ok=n % 2 == 0, at=time.time(), worker="worker-a", error="503"
            )
            record = event_record(failed)
            producer.produce(record.topic, key=record.key, value=record.value)
        producer.flush(10)
        for view in views:
            wait_until(lambda view=view: phase(view, account) is BreakerPhase.OPEN, 15)
        seen_open_after = time.monotonic() - started
        assert isinstance(workers[0].admit(account), Refuse)
        assert isinstance(workers[1].admit(account), Refuse)
        time.sleep(config.open_seconds)
        asks = [w.admit(account) for w in workers]
        for ask in asks:
            assert isinstance(ask, Refuse)
            assert ask.ask is not None
            record = event_record(ask.ask)
            producer.produce(record.topic, key=record.key, value=record.value)
        producer.flush(10)
        wait_until(lambda: all(phase(v, account) is BreakerPhase.HALF_OPEN for v in views), 15)
        holder = views[0].get(account)
        assert holder is not None
        assert holder.probe_holder == "worker-a"  # asked first, in the log's order
        probes = [workers[0].admit(account) for _ in range(4)]
        assert probes[:3] == [Probe(1), Probe(1), Probe(1)]
        assert isinstance(probes[3], Refuse)
        assert isinstance(workers[1].admit(account), Refuse)
        for probe in probes[:2]:
            record = workers[0].outcome(account, True, probe)
            producer.produce(record.topic, key=record.key, value=record.value)
        producer.flush(10)
        for view in views:
            wait_until(lambda view=view: phase(view, account) is BreakerPhase.CLOSED, 15)
        print(f"both views saw the breaker open {seen_open_after:.2f}s after the 10th outcome")
    finally:
        for view in views:
            view.close()


def test_an_open_account_is_not_called_and_its_command_waits_in_a_retry_tier(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    tenant = "riverside"
    account = f"{tenant}:twilio:twilio-primary"
    producer = Producer(producer_config(hub_settings, "breaker-test"))
    view = BreakerView.start(hub_settings)
    try:
        for _ in range(10):
            record = event_record(
                CallOutcome(account=account, ok=False, at=time.time(), worker="test", error="503")
            )
            producer.produce(record.topic, key=record.key, value=record.value)
        producer.flush(10)
        wait_until(lambda: phase(view, account) is BreakerPhase.OPEN, 15)
        time.sleep(1.0)  # the connector's own view follows the same topic
        phone = unique_phone()
        command = ConnectorCommand(
            header=EventHeader.new("connector.sms.send", tenant, source="test"),
            idempotency_key=f"breaker-test:{secrets.token_hex(6)}",
            provider="twilio",
            account="twilio-primary",
            payload=SendSms(to=phone, text="while the breaker is open"),
        )
        with TopicWatcher(hub_settings, [retry_topic("twilio", 1)]) as watch:
            with EventProducer(hub_settings) as events:
                events.publish(command, commands_topic("twilio"))
            watch.wait_for(
                ConnectorCommand, lambda c: c.idempotency_key == command.idempotency_key, timeout=30
            )
        assert sim.requests("twilio", To=phone) == []  # refused without calling Twilio
        # After the open time the connector probes with this very command: it is sent.
        wait_until(lambda: len(sim.requests("twilio", To=phone)) == 1, 60)
    finally:
        view.close()


def phase(view: BreakerView, account: str) -> BreakerPhase | None:
    state = view.get(account)
    return None if state is None else state.phase


def wait_until(check: object, timeout: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout:.0f}s")
        time.sleep(0.05)
