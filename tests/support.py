"""Helpers for tests that drive the running hub: a fee module, a parent, a provider."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx

from catalog.tenant_file import parse_tenants
from core.observe import TopicWatcher
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import (
    INVOICE_STATUS,
    PAYMENT_ORDERS,
    PAYMENTS_RECORDED,
    RAW_WEBHOOKS,
    results_topic,
)
from hub.stack import child_env
from producers import EventProducer
from providers.razorpay import RazorpayAccount
from schemas.events import (
    Contact,
    EventHeader,
    Invoice,
    OrderStatus,
    PaymentOrderResult,
    PaymentRequested,
)
from simulators.client import SimulatorClient

TENANT = "greenwood"
DUAL_TENANT = "sunrise"  # seed 004: Cashfree first, Razorpay behind it


def unique_phone() -> str:
    return f"+9198{secrets.randbelow(10**8):08d}"


def unique_email() -> str:
    return f"parent.{secrets.token_hex(4)}@parents.example"


def tenants(settings: Settings) -> TenantDirectory:
    """The tenants the catalog was seeded with (conftest keeps their file in HUB_HOME)."""
    return parse_tenants(tomllib.loads(Path(settings.home / "tenants.toml").read_text()))


def webhook_secret(settings: Settings, tenant: str = TENANT) -> str:
    known = tenants(settings).get(tenant)
    assert known is not None
    return known.account("razorpay", RazorpayAccount).webhook_secret.get_secret_value()


def razorpay_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def watch_all(settings: Settings) -> TopicWatcher:
    topics = [PAYMENT_ORDERS, INVOICE_STATUS, PAYMENTS_RECORDED, RAW_WEBHOOKS]
    topics += [results_topic(p) for p in ("razorpay", "twilio", "sendgrid")]
    return TopicWatcher(settings, topics)


@dataclass
class OpenInvoice:
    invoice: Invoice
    order: PaymentOrderResult
    phone: str
    email: str

    @property
    def order_id(self) -> str:
        assert self.order.order_id
        return self.order.order_id


def open_invoice(
    settings: Settings,
    watch: TopicWatcher,
    *,
    amount_minor: int = 50_000_00,
    email: bool = True,
    tenant: str = TENANT,
    gateway: str = "",
    currency: str = "INR",
    phone: str | None = None,
) -> OpenInvoice:
    """The fee module's side of the story: an invoice, then Pay Now; returns the order
    (`gateway` "": the school's payment routing picks, failing over if it must)."""
    tag = secrets.token_hex(4).upper()
    phone, address = phone or unique_phone(), unique_email() if email else None
    invoice = Invoice(
        header=EventHeader.new(Invoice.EVENT_TYPE, tenant, source="fee-module-test"),
        invoice_id=f"INV-{tag}",
        student_id=f"STU-{tag}",
        student_name="Rohan Sharma",
        description="Term 1 fees",
        amount_minor=amount_minor,
        currency=currency,
        parent=Contact(name="Mrs. Sharma", phone=phone, email=address),
    )
    request = PaymentRequested.for_invoice(invoice, source="fee-module-test", gateway=gateway)
    with EventProducer(settings, client_id="fee-module-test") as producer:
        producer.publish(invoice)
        producer.publish(request)
    order = watch.wait_for(
        PaymentOrderResult,
        lambda r: r.request_id == request.request_id and r.status is not OrderStatus.FAILING_OVER,
        timeout=30,
    )[0]
    assert order.status is OrderStatus.CREATED, order
    return OpenInvoice(invoice, order, phone, address or "")


def post_webhook(
    settings: Settings,
    body: bytes,
    *,
    signature: str | None,
    event_id: str | None = None,
    content_type: str = "application/json",
    tenant: str = TENANT,
    provider: str = "razorpay",
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Razorpay-Signature"] = signature
    if event_id is not None:
        headers["X-Razorpay-Event-Id"] = event_id
    return httpx.post(
        f"{settings.ingress_url}/webhooks/{provider}/{tenant}",
        content=body,
        headers=headers,
        timeout=30,
    )


def sms_to(sim: SimulatorClient, phone: str) -> list[dict[str, object]]:
    return sim.requests("twilio", To=phone)


def delivered(requests: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in requests if r.get("response_status") in (200, 201, 202)]


def hub_env(settings: Settings) -> dict[str, str]:
    return {**child_env(settings), "COLUMNS": "200"}


def hub_cli(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `hub ARGS` as an operator would, against the session's cluster."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=hub_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
