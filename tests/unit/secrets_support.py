"""Helpers for the secrets-nowhere tests: canary tenants, what a leak looks like, capture.

A canary tenant has an account with every provider, each secret field holding a value
that appears nowhere else ("canary-<field>-<provider>-<random>"), so finding one in a log
line, a dead letter, a result or an audit record can only be a leak. A secret also leaks
encoded: URL-encoded, base64, inside a Basic-auth header (base64 of "user:secret") or an
SMTP AUTH PLAIN string; `needles` lists every such form.
"""

from __future__ import annotations

import base64
import io
import logging
import secrets
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, get_args
from urllib.parse import quote, quote_plus

import structlog
from pydantic import BaseModel, SecretStr

import providers
from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.logging import configure_logging
from core.masking import MASKER
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from schemas.events import (
    CapturePayment,
    CommandPayload,
    CreatePaymentOrder,
    FetchPaymentStatus,
    ProviderCallAudit,
    RefundPayment,
    SendEmail,
    SendPush,
    SendSms,
    SendWhatsApp,
    UpdateAppProfile,
    UpdateDirectoryUser,
    UpdateSmsContact,
)

CANARY_TENANT = "canary"
# Secret fields whose value must have a shape a canary string cannot have: declared here,
# each with the reason, so a new secret field gets a canary unless someone says why not.
SHAPED = {
    # An RSA key in PEM: it signs the OAuth JWT. Its own base64 lines are the canaries.
    ("fcm", "private_key"): "pem",
    ("gworkspace", "private_key"): "pem",
    # An AES key: 16, 24 or 32 bytes (providers.paytm).
    ("paytm", "merchant_key"): "aes32",
}


def _holds_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_holds_secret(a) for a in get_args(annotation))


def secret_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every SecretStr field of an account model, nested models' too ("outer.inner")."""
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _holds_secret(annotation):
            found.append(prefix + name)
        for inner in (annotation, *get_args(annotation)):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found += secret_fields(inner, f"{prefix}{name}.")
    return found


def _canary(provider: str, field: str) -> str:
    shape = SHAPED.get((provider, field))
    if shape == "aes32":
        return f"canary-{secrets.token_hex(8)}-{field}"[:32]
    return f"canary-{field}-{provider}-{secrets.token_hex(6)}"


def canary_directory(tenant_id: str = CANARY_TENANT) -> TenantDirectory:
    """The demo tenant (an account with every provider), every secret field a canary.
    Registered with the process's masker, as the catalog view does with each tenant it loads."""
    raw = tomllib.loads(demo_tenant_config(tenant_id, "Canary School"))
    for body in raw["tenants"][tenant_id]["accounts"].values():
        model = providers.get(body["provider"]).account_model
        for field in secret_fields(model):
            if SHAPED.get((body["provider"], field)) != "pem":
                body[field] = _canary(body["provider"], field)
    directory = parse_tenants(raw)
    for tenant in directory:
        MASKER.register(tenant.secret_values())
    return directory


def secret_values(account: ProviderAccount) -> list[str]:
    config = account.config
    values = []
    for field in secret_fields(type(config)):
        value: Any = config
        for part in field.split("."):
            value = getattr(value, part)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    return values


def _b64_forms(value: bytes) -> set[str]:
    std = base64.b64encode(value).decode()
    url = base64.urlsafe_b64encode(value).decode()
    # The whole groups only: what the encoding of a longer string starting so holds too.
    whole = len(value) // 3 * 4
    return {std, url, std[:whole], url[:whole]} - {""}


def _pem_lines(pem: str) -> set[str]:
    return {line for line in pem.splitlines() if line and not line.startswith("-----")}


def needles(tenant: Tenant) -> dict[str, str]:
    """Every form of every secret of the tenant that must appear nowhere -> what it is."""
    found: dict[str, str] = {}
    for account in tenant.accounts:
        public = [str(v) for v in vars(account.config).values() if isinstance(v, str) and v] + [
            "api",
            "",
        ]
        for secret in secret_values(account):
            what = f"{account.label} secret"
            if "PRIVATE KEY" in secret:
                found |= {line: f"{what} (PEM line)" for line in _pem_lines(secret)}
                continue
            found |= {secret: what, quote(secret, safe=""): f"{what} (URL-encoded)"}
            found[quote_plus(secret)] = f"{what} (form-encoded)"
            for form in _b64_forms(secret.encode()):
                found[form] = f"{what} (base64)"
            for user in public:
                for form in _b64_forms(f"{user}:{secret}".encode()):
                    found[form] = f"{what} (Basic auth as {user!r})"
                for form in _b64_forms(f"\0{user}\0{secret}".encode()):
                    found[form] = f"{what} (SMTP AUTH PLAIN as {user!r})"
    # Short fragments (a one-group base64 prefix) would match by chance: not a leak.
    return {k: v for k, v in found.items() if len(k) >= 8}


Found = tuple[str, str]  # (where it was found: "log", "audit", a topic ..., the text)


def leaks(texts: Iterable[Found], tenant_needles: dict[str, str]) -> list[str]:
    """What of the needles appears in any of the texts, and where (empty: no leak)."""
    hits = []
    for where, text in texts:
        for needle, what in tenant_needles.items():
            if needle in text:
                start = max(0, text.index(needle) - 80)
                hits.append(f"{what} in {where}: …{text[start : start + 200]}…")
    return hits


class RecordingSink:
    """An audit sink that keeps what it is handed (the records a KafkaAuditSink would send)."""

    def __init__(self) -> None:
        self.entries: list[ProviderCallAudit] = []

    def record(self, entry: ProviderCallAudit) -> None:
        self.entries.append(entry)

    def close(self) -> None:
        pass

    def texts(self) -> list[Found]:
        return [("audit record", entry.model_dump_json()) for entry in self.entries]


@contextmanager
def rendered_logs() -> Iterator[io.StringIO]:
    """Every log line as the hub renders it (core.logging's JSON, masking included), the
    standard library's (httpx, httpcore) too, at DEBUG: what would reach the log files."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    out = io.StringIO()
    configure_logging("DEBUG", "json", component="secrets-test")
    # Not cached: module-level loggers first used here must not keep this test's output.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(out), cache_logger_on_first_use=False
    )
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG)  # httpx logs every URL it calls
    try:
        yield out
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in quiet.items():
            logging.getLogger(name).setLevel(was)


EXAMPLE_PAYLOADS: list[CommandPayload] = [
    SendSms(to="+919876543210", text="Fee of Rs 1,500 received."),
    SendSms(to="+919876543210", text="Fee received.", template_id="tmpl-1", variables={"amt": "1"}),
    SendEmail(to="parent@example.com", to_name="Mrs. Sharma", subject="Receipt", text="Thanks"),
    SendWhatsApp(to="+919876543210", template="fee_receipt", parameters=["1,500"]),
    SendPush(topic="grade-5", title="Holiday", body="School is closed tomorrow"),
    UpdateDirectoryUser(
        user_email=f"student@{CANARY_TENANT}.school.example", mobile_phone="+919876543210"
    ),
    UpdateAppProfile(student_id="s-1", profile={"phone": "+919876543210"}),
    UpdateSmsContact(student_id="s-1", phone="+919876543210"),
    CreatePaymentOrder(amount_minor=150_000, currency="INR", receipt="rcpt-1"),
    FetchPaymentStatus(order_id="order_1", amount_minor=150_000, currency="INR"),
    CapturePayment(order_id="order_1"),
    RefundPayment(payment_id="pay_1", order_id="order_1", amount_minor=1_000, currency="INR"),
]


def payloads_for(payload_type: type[Any] | tuple[type[Any], ...]) -> list[CommandPayload]:
    return [p for p in EXAMPLE_PAYLOADS if isinstance(p, payload_type)]
