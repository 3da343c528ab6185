"""The seeds' messaging stories, played against a running hub, step by step:

- email failover (seed 002): SendGrid answers 503, Amazon SES takes the mail;
- SMS failover on a receipt (seed 000): Twilio accepts, its receipt says
  undelivered, MSG91 delivers the same message (its DLT template);
- the bulk attendance SMS (seed 000, use case 2): 500 parents in batches of
  100, 4 numbers that do not exist -> 496 delivered, 4 failed, the 4 retried
  on the alternate provider.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import BULK_REPORTS, MESSAGE_EVENTS
from hub.demo import Step
from producers import EventProducer, bulk_parts
from schemas.events import (
    BulkRecipient,
    BulkReport,
    Channel,
    EventHeader,
    MessageEvent,
    MessageStep,
    NotificationRequest,
)
from simulators.client import SimulatorClient

FINAL_STEPS = (MessageStep.DELIVERED, MessageStep.FAILED, MessageStep.REJECTED)


class StoryFailedError(RuntimeError):
    pass


def _phone() -> str:
    return f"+9198{secrets.randbelow(10**8):08d}"


class MessagingStories:
    def __init__(
        self,
        settings: Settings,
        tenant: str,
        sim: SimulatorClient,
        report: Callable[[Step], None] = lambda _s: None,
        timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.tenant = tenant
        self.sim = sim
        self.report = report
        self.timeout = timeout

    def _request(self, channel: Channel, to: str, **fields: object) -> NotificationRequest:
        return NotificationRequest(
            header=EventHeader.new(NotificationRequest.EVENT_TYPE, self.tenant, source="demo"),
            idempotency_key=f"demo:{secrets.token_hex(6)}",
            channel=channel,
            to=to,
            text=str(fields.pop("text", "")),
            **fields,
        )

    def _follow(self, request: NotificationRequest, until: tuple[MessageStep, ...]) -> None:
        """Publish the request; report each step of its story until one of `until`."""
        began = time.perf_counter()
        with TopicWatcher(self.settings, [MESSAGE_EVENTS]) as watch:
            with EventProducer(self.settings) as producer:
                producer.publish(request)
            shown = 0
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                watch.poll()
                story = watch.find(MessageEvent, lambda e: e.message_id == request.notification_id)
                for event in story[shown:]:
                    who = f" via {event.provider} ({event.account})" if event.provider else ""
                    self.report(
                        Step(
                            f"{event.step.value}{who}",
                            event.detail or "",
                            (time.perf_counter() - began) * 1000,
                        )
                    )
                shown = len(story)
                if any(e.step in until for e in story):
                    return
        raise StoryFailedError(
            f"message {request.notification_id} did not finish within {self.timeout:.0f}s"
        )

    def email_failover(self) -> None:
        # Both of the connector's tries at SendGrid fail (HUB_FAILOVER_ATTEMPTS).
        self.sim.add_fault("sendgrid", status=503, times=2, method="POST", tenant=self.tenant)
        email = f"parent.{secrets.token_hex(3)}@example.com"
        request = self._request(
            Channel.EMAIL, email, subject="Your fee receipt", text="Thank you for your payment."
        )
        self._follow(request, (MessageStep.SENT, *FINAL_STEPS))

    def sms_receipt_failover(self) -> None:
        phone = _phone()
        self.sim.undeliverable([phone], provider="twilio")
        request = self._request(
            Channel.SMS,
            phone,
            template="attendance_alert",
            variables={"student_name": "Aarav Sharma", "date": time.strftime("%d %b")},
        )
        self._follow(request, FINAL_STEPS)

    def bulk_attendance(self, parents: int = 500, invalid: int = 4) -> BulkReport:
        phones = [_phone() for _ in range(parents)]
        wrong = phones[:: max(1, parents // invalid)][:invalid]
        self.sim.undeliverable(wrong)
        people = [
            BulkRecipient(
                to=p,
                reference=f"STU-{n:04d}",
                variables={"student_name": f"Student {n + 1}", "date": time.strftime("%d %b")},
            )
            for n, p in enumerate(phones)
        ]
        parts = bulk_parts(
            self.tenant, "attendance_alert", Channel.SMS, people, batch_size=100, source="demo"
        )
        bulk_id = parts[0].bulk_id
        began = time.perf_counter()
        with TopicWatcher(self.settings, [BULK_REPORTS]) as watch:
            with EventProducer(self.settings) as producer:
                for part in parts:
                    producer.publish(part)
            last_released, deadline = 0, time.monotonic() + self.timeout * 3
            while time.monotonic() < deadline:
                watch.poll()
                reports = watch.find(BulkReport, lambda r: r.bulk_id == bulk_id)
                if not reports:
                    continue
                latest = reports[-1]
                if latest.released != last_released:
                    last_released = latest.released
                    self.report(
                        Step(
                            f"batch released: {latest.released}/{latest.total}",
                            f"sent {latest.sent}, delivered {latest.delivered}, "
                            f"failed {latest.failed}",
                            (time.perf_counter() - began) * 1000,
                        )
                    )
                if latest.complete:
                    providers = ", ".join(
                        f"{t.provider} {t.sent} sent / {t.delivered} delivered / {t.failed} failed"
                        for t in latest.by_provider
                    )
                    self.report(
                        Step(
                            f"report: {latest.delivered} delivered, {latest.failed} failed, "
                            f"{latest.retried_on_alternate} retried on the alternate provider",
                            providers,
                            (time.perf_counter() - began) * 1000,
                        )
                    )
                    return latest
        raise StoryFailedError(f"bulk {bulk_id} did not complete")
