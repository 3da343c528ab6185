"""Pure in-memory state of the simulators: recorded requests, faults, orders, webhooks.

Everything here is plain data plus a few methods that never await, so a single
asyncio loop can mutate it without further coordination; a lock still guards
the recorder and the fault queue because tests read them from other threads.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from simulators.sync_state import SyncState

Provider = Literal[
    "razorpay", "twilio", "sendgrid", "google", "gworkspace", "fcm", "mobileapp", "smsgateway"
]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)

FaultMode = Literal["status", "timeout", "slow"]
FAULT_MODES: tuple[FaultMode, ...] = ("status", "timeout", "slow")

_ALNUM = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 14) -> str:
    """Razorpay-style id: prefix plus `length` random alphanumeric characters."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def body_matches(body: Any, match: Mapping[str, Any]) -> bool:
    """True when every `key=value` pair matches the body.

    A key matches a top-level body key whose value, as text, equals the wanted
    value. `to` also matches any SendGrid personalization's recipient address.
    """
    for key, wanted in match.items():
        text = _as_text(wanted)
        if isinstance(body, Mapping) and key in body and _as_text(body[key]) == text:
            continue
        if key == "to" and text.lower() in sendgrid_recipients(body):
            continue
        return False
    return True


def sendgrid_recipients(body: Any) -> set[str]:
    """Lower-cased `to` addresses of every personalization of a SendGrid mail body."""
    found: set[str] = set()
    if not isinstance(body, Mapping):
        return found
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list):
        return found
    for item in personalizations:
        recipients = item.get("to") if isinstance(item, Mapping) else None
        for recipient in recipients if isinstance(recipients, list) else []:
            if isinstance(recipient, Mapping) and isinstance(recipient.get("email"), str):
                found.add(recipient["email"].lower())
    return found


@dataclass
class RecordedRequest:
    id: int
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    # None only while the request is still being answered (e.g. a "timeout" fault).
    response_status: int | None = None
    tenant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """Every request a provider route received, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_id = 1
        self._items: list[RecordedRequest] = []

    def record(
        self,
        *,
        provider: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        tenant: str | None,
    ) -> RecordedRequest:
        with self._lock:
            entry = RecordedRequest(
                id=self._next_id,
                provider=provider,
                method=method,
                path=path,
                headers=headers,
                body=body,
                received_at=time.time(),
                tenant=tenant,
            )
            self._next_id += 1
            self._items.append(entry)
            return entry

    def list(
        self,
        provider: str | None = None,
        *,
        since_id: int = 0,
        match: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> list[RecordedRequest]:
        """Requests after `since_id`, of `provider`, whose path contains `path`, body `match`."""
        with self._lock:
            items = list(self._items)
        return [
            r
            for r in items
            if r.id > since_id
            and (provider is None or r.provider == provider)
            and (not path or path in r.path)
            and body_matches(r.body, match or {})
        ]

    def clear(self) -> int:
        """Forget every request (ids keep increasing); returns how many were dropped."""
        with self._lock:
            dropped = len(self._items)
            self._items.clear()
            return dropped


@dataclass
class Fault:
    provider: str
    mode: FaultMode = "status"
    status: int = 503
    times: int = 1
    retry_after: float | None = None
    delay_seconds: float = 0.0
    match: dict[str, Any] = field(default_factory=dict)
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultQueue:
    """Faults consumed first-in first-out per provider, one per matching request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_id = 1
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, provider: str, body: Any) -> Fault | None:
        """Consume one use of the oldest fault for `provider` that matches `body`."""
        with self._lock:
            for fault in self._faults:
                if fault.provider == provider and body_matches(body, fault.match):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass
class Order:
    id: str
    key_id: str
    tenant: str
    amount: int
    currency: str
    receipt: str | None
    notes: dict[str, str]
    created_at: int
    partial_payment: bool = False
    amount_paid: int = 0
    status: str = "created"
    attempts: int = 0

    def entity(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": "order",
            "amount": self.amount,
            "amount_paid": self.amount_paid,
            "amount_due": self.amount - self.amount_paid,
            "currency": self.currency,
            "receipt": self.receipt,
            "offer_id": None,
            "status": self.status,
            "attempts": self.attempts,
            # Razorpay serializes empty notes as a JSON array.
            "notes": dict(self.notes) if self.notes else [],
            "created_at": self.created_at,
        }


@dataclass
class Payment:
    id: str
    order_id: str
    key_id: str
    tenant: str
    entity: dict[str, Any]


@dataclass
class WebhookDelivery:
    url: str
    status: int | None
    error: str | None
    sent_at: float


@dataclass
class SentWebhook:
    event_id: str
    event: str
    tenant: str
    order_id: str
    payment_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    deliveries: list[WebhookDelivery] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event": self.event,
            "tenant": self.tenant,
            "order_id": self.order_id,
            "payment_id": self.payment_id,
            "url": self.url,
            "body": self.body.decode(),
            "headers": dict(self.headers),
            "deliveries": [asdict(d) for d in self.deliveries],
        }


@dataclass
class SimState:
    recorder: Recorder = field(default_factory=Recorder)
    faults: FaultQueue = field(default_factory=FaultQueue)
    orders: dict[str, Order] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    webhooks: dict[str, SentWebhook] = field(default_factory=dict)
    sync: SyncState = field(default_factory=SyncState)

    def order_by_receipt(self, key_id: str, receipt: str) -> Order | None:
        return next(
            (o for o in self.orders.values() if o.key_id == key_id and o.receipt == receipt), None
        )

    def reset(self) -> None:
        self.recorder.clear()
        self.faults.clear()
        self.orders.clear()
        self.payments.clear()
        self.webhooks.clear()
        self.sync.clear()


def lowercase_headers(items: Iterable[tuple[str, str]], *, masked: Iterable[str]) -> dict[str, str]:
    hidden = {m.lower() for m in masked}
    return {k.lower(): ("***" if k.lower() in hidden else v) for k, v in items}
