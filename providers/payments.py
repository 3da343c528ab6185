"""What every payment gateway adapter shares: its operations and one shape for their answers.

A gateway adapter speaks up to four operations, each a command payload:

- `CreatePaymentOrder` -> the gateway's order, payment intent, checkout session,
  STK push or payment link; `Delivered.provider_ref` is the id its callbacks name.
- `FetchPaymentStatus` -> what became of that order (missed webhooks, Pesapal's IPN).
- `CapturePayment` -> capture an approved order (PayPal authorizes first).
- `RefundPayment` -> give a payment back.

`GatewayAdapter` dispatches `build_request` on the payload's type and `classify`
on the operation it tagged the request with, so a subclass writes one small
method per operation. Status and capture answers carry a `PaymentSnapshot` in
`Delivered.details`; the reconciler turns a settled snapshot into the same
`PaymentEvent` a webhook would have produced, so both paths share one flow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from core.settings import Settings
from core.tenants import Tenant
from providers.base import Category, Outcome, Rejected
from schemas.events import (
    CapturePayment,
    CommandPayload,
    ConnectorCommand,
    ConnectorResult,
    CreatePaymentOrder,
    FetchPaymentStatus,
    PaymentEvent,
    PaymentEventKind,
    RefundPayment,
    ResultStatus,
)

OPERATION_EXTENSION = "hub.operation"
GATEWAY_PAYLOADS: tuple[type[CommandPayload], ...] = (
    CreatePaymentOrder,
    FetchPaymentStatus,
    CapturePayment,
    RefundPayment,
)

# What a gateway says about an order, in the hub's words.
SnapshotStatus = Literal["CAPTURED", "FAILED", "PENDING", "AUTHORIZED", "NOT_FOUND"]
SETTLED: frozenset[str] = frozenset({"CAPTURED", "FAILED"})


@dataclass(frozen=True)
class PaymentSnapshot:
    """One order's state at the gateway, as a status query or a capture returned it."""

    status: SnapshotStatus
    order_id: str
    payment_id: str = ""
    amount_minor: int = 0
    currency: str = ""
    method: str = ""
    error_code: str = ""
    error_description: str = ""

    def to_details(self) -> dict[str, str]:
        return {f"payment.{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_details(cls, details: dict[str, str]) -> PaymentSnapshot | None:
        fields = {
            k.removeprefix("payment."): v for k, v in details.items() if k.startswith("payment.")
        }
        if "status" not in fields or "order_id" not in fields:
            return None
        amount = fields.get("amount_minor", "0")
        return cls(
            status=fields["status"],  # type: ignore[arg-type]  # checked by SETTLED below
            order_id=fields["order_id"],
            payment_id=fields.get("payment_id", ""),
            amount_minor=int(amount) if amount.lstrip("-").isdigit() else 0,
            currency=fields.get("currency", ""),
            method=fields.get("method", ""),
            error_code=fields.get("error_code", ""),
            error_description=fields.get("error_description", ""),
        )


@dataclass(frozen=True)
class FollowUp:
    """A webhook that cannot be trusted or acted on by itself: ask the gateway.

    Returned by a normalizer instead of a PaymentEvent (Pesapal's IPN carries only
    ids; PayPal's approval needs a capture). The normalizer stage sends the
    operation to the gateway's connector; its answer comes back as a PaymentEvent.
    """

    operation: Literal["fetch_status", "capture"]
    order_id: str
    reason: str = "ipn"

    def payload(self) -> FetchPaymentStatus | CapturePayment:
        if self.operation == "capture":
            return CapturePayment(order_id=self.order_id)
        return FetchPaymentStatus(order_id=self.order_id, reason=self.reason)


def tag(request: httpx.Request, operation: str) -> httpx.Request:
    request.extensions = {**request.extensions, OPERATION_EXTENSION: operation}
    return request


def operation_of(response: httpx.Response) -> str:
    return str(response.request.extensions.get(OPERATION_EXTENSION, CreatePaymentOrder.OPERATION))


class GatewayAdapter:
    """Base of payment adapters: one builder and one classifier per operation.

    Subclasses set `name`, implement `create_order` and `classify_order`, and
    whichever of the others their gateway has; an operation without one is
    rejected before any request is sent.
    """

    name: str  # set by each subclass (a class attribute, read like an instance one)
    category: Category = "payment"
    payload_type: tuple[type[CommandPayload], ...] = GATEWAY_PAYLOADS

    def build_request(
        self, command: ConnectorCommand, payload: Any, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        base = base_url.rstrip("/")
        if isinstance(payload, CreatePaymentOrder):
            request = self.create_order(command, payload, tenant, base)
        elif isinstance(payload, FetchPaymentStatus):
            request = self.fetch_status(command, payload, tenant, base)
        elif isinstance(payload, CapturePayment):
            request = self.capture(command, payload, tenant, base)
        elif isinstance(payload, RefundPayment):
            request = self.refund(command, payload, tenant, base)
        else:
            raise TypeError(f"{self.name} cannot do {command.operation}")
        return tag(request, command.operation)

    def classify(self, response: httpx.Response) -> Outcome:
        operation = operation_of(response)
        if operation == FetchPaymentStatus.OPERATION:
            return self.classify_status(response)
        if operation == CapturePayment.OPERATION:
            return self.classify_capture(response)
        if operation == RefundPayment.OPERATION:
            return self.classify_refund(response)
        return self.classify_order(response)

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # most gateways take their credentials in build_request's headers

    # --- one pair per operation; the defaults say the gateway has no such call --

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        raise NotImplementedError

    def classify_order(self, response: httpx.Response) -> Outcome:
        raise NotImplementedError

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        raise UnsupportedOperationError(f"{self.name} has no status query")

    def classify_status(self, response: httpx.Response) -> Outcome:
        return Rejected(f"{self.name} has no status query")

    def capture(
        self, command: ConnectorCommand, payload: CapturePayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        raise UnsupportedOperationError(f"{self.name} captures automatically")

    def classify_capture(self, response: httpx.Response) -> Outcome:
        return Rejected(f"{self.name} captures automatically")

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        raise UnsupportedOperationError(f"{self.name} has no refund API in the hub yet")

    def classify_refund(self, response: httpx.Response) -> Outcome:
        return Rejected(f"{self.name} has no refund API in the hub yet")


class UnsupportedOperationError(ValueError):
    """The gateway has no such call: the command is rejected, never retried."""


def snapshot_event(result: ConnectorResult) -> PaymentEvent | None:
    """A status or capture answer that settled the order, as the PaymentEvent a webhook
    would have carried (None: nothing settled yet, or not a gateway answer)."""
    if result.status is not ResultStatus.DELIVERED:
        return None
    if result.operation not in (FetchPaymentStatus.OPERATION, CapturePayment.OPERATION):
        return None
    snap = PaymentSnapshot.from_details(result.details)
    if snap is None or snap.status not in SETTLED or not snap.payment_id:
        return None
    kind = PaymentEventKind.CAPTURED if snap.status == "CAPTURED" else PaymentEventKind.FAILED
    return PaymentEvent(
        header=result.header.caused(f"payments.payment.{kind.lower()}", source="reconciler"),
        provider=result.provider,
        # One event per payment and outcome, whichever query found it first.
        provider_event_id=f"status:{snap.payment_id}:{kind}",
        kind=kind,
        payment_id=snap.payment_id,
        order_id=snap.order_id,
        amount_minor=snap.amount_minor,
        currency=snap.currency,
        method=snap.method or None,
        error_code=(snap.error_code or None) if kind is PaymentEventKind.FAILED else None,
        error_description=(
            (snap.error_description or None) if kind is PaymentEventKind.FAILED else None
        ),
    )
