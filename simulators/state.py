"""Pure in-memory state of the simulators: requests, faults, held answers, messages, orders...

Everything here is plain data plus a few methods that never await, so a single
asyncio loop can mutate it without further coordination; a lock still guards
the recorder and the fault queue because tests read them from other threads.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from simulators.sync_state import SyncState

Provider = Literal[
    "razorpay",
    "twilio",
    "sendgrid",
    "google",
    "gworkspace",
    "fcm",
    "mobileapp",
    "smsgateway",
    "cashfree",
    "flutterwave",
    "pesapal",
    "paypal",
    "paytm",
    "stripe",
    "mpesa",
    "msg91",
    "africastalking",
    "ses",
    "smtp",
    "mailgun",
    "whatsapp",
]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)

# "hold": the handler runs (the provider acts), then the answer waits for a release.
FaultMode = Literal["status", "timeout", "slow", "hold"]
FAULT_MODES: tuple[FaultMode, ...] = get_args(FaultMode)

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
    query: str = ""
    # When the answer left (None while it is held or still being computed).
    answered_at: float | None = None
    # When the client went away before a held answer was sent (the effect stays).
    disconnected_at: float | None = None

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
        query: str = "",
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
                query=query,
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
        method: str | None = None,
    ) -> list[RecordedRequest]:
        """Requests after `since_id`, of `provider`, whose path contains `path`, body `match`
        (and whose HTTP method is `method`: lookups are GETs on the same paths as sends)."""
        with self._lock:
            items = list(self._items)
        return [
            r
            for r in items
            if r.id > since_id
            and (provider is None or r.provider == provider)
            and (not path or path in r.path)
            and (not method or r.method == method.upper())
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
    # Only requests with this HTTP method (None: any), e.g. hold the POST, not the lookup GET.
    method: str | None = None
    # Only requests carrying this tenant's credentials (None: any tenant).
    tenant: str | None = None
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

    def take(
        self, provider: str, body: Any, method: str | None = None, tenant: str | None = None
    ) -> Fault | None:
        """Consume one use of the oldest fault for `provider` that matches the request."""
        with self._lock:
            for fault in self._faults:
                if (
                    fault.provider == provider
                    and (fault.method is None or method is None or fault.method == method)
                    and (fault.tenant is None or fault.tenant == tenant)
                    and body_matches(body, fault.match)
                ):
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
class HeldResponse:
    """A "hold" fault's answer, computed (the provider acted) but not yet sent."""

    entry: RecordedRequest
    status: int
    release_at: float
    released: threading.Event = field(default_factory=threading.Event)

    def summary(self) -> dict[str, Any]:
        keys = ("id", "provider", "method", "path", "query", "body", "tenant", "received_at")
        found = {k: getattr(self.entry, k) for k in keys}
        return {**found, "status": self.status, "release_at": self.release_at}


class HeldResponses:
    """Answers held by "hold" faults, by recorder id; a test releases them one by one.

    Threading primitives, not asyncio ones: the waiting endpoint polls, so a
    release from any thread or event loop is seen.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, HeldResponse] = {}

    def hold(self, entry: RecordedRequest, status: int, seconds: float) -> HeldResponse:
        held = HeldResponse(entry=entry, status=status, release_at=time.time() + seconds)
        with self._lock:
            self._held[entry.id] = held
        return held

    def release(self, request_id: int) -> bool:
        """Let a held answer go; False when that request is not (or no longer) held."""
        with self._lock:
            held = self._held.pop(request_id, None)
        if held is None:
            return False
        held.released.set()
        return True

    def list(self, provider: str | None = None) -> list[HeldResponse]:
        with self._lock:
            items = sorted(self._held.values(), key=lambda h: h.entry.id)
        return [h for h in items if provider is None or h.entry.provider == provider]

    def release_all(self) -> int:
        with self._lock:
            items, self._held = list(self._held.values()), {}
        for held in items:
            held.released.set()
        return len(items)


@dataclass
class StoredSms:
    """A Twilio Message as created; its status is derived from its age when read."""

    resource: dict[str, Any]
    created: float


@dataclass
class StoredMail:
    """One recipient of one accepted SendGrid mail, as the Email Activity feed lists it."""

    msg_id: str
    from_email: str
    to_email: str
    subject: str
    unique_args: dict[str, str]
    created: float


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
    held: HeldResponses = field(default_factory=HeldResponses)
    # Twilio messages by account SID, SendGrid mails by tenant id, oldest first.
    sms: dict[str, list[StoredSms]] = field(default_factory=dict)
    mails: dict[str, list[StoredMail]] = field(default_factory=dict)
    # Seconds since the epoch; tests replace it to freeze or advance message statuses.
    clock: Callable[[], float] = time.time
    # What else a reset clears (each payment gateway simulator's own store).
    on_reset: list[Callable[[], None]] = field(default_factory=list)

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
        self.held.release_all()  # nobody waits on a reset simulator
        self.sms.clear()
        self.mails.clear()
        for clear in self.on_reset:
            clear()


def lowercase_headers(items: Iterable[tuple[str, str]], *, masked: Iterable[str]) -> dict[str, str]:
    hidden = {m.lower() for m in masked}
    return {k.lower(): ("***" if k.lower() in hidden else v) for k, v in items}
