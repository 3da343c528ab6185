"""What the admin API's tests share: a real SQLite catalog, one key per role, and a
client that records every body it receives so a test can look for leaked secrets."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; httpx (what the project
    # uses) still works, and the notice would repeat in every run.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import providers
from admin_api import create_app
from admin_api.endpoint import AuditReader
from catalog.service import CatalogService
from core.audit import AuditFilter, AuditSink
from core.ports import free_port
from core.settings import Settings
from schemas.events import AuditDirection, AuditOutcome, EventHeader, ProviderCallAudit

# Secrets the tests send; none may ever come back (TWILIO_FIELDS and friends hold them).
TWILIO_TOKEN = "twilio-auth-token-7f3a91c2"
TWILIO_TOKEN_2 = "twilio-auth-token-rotated-55e0"
SENDGRID_KEY = "SG.sendgrid-api-key-0b4d7e"
SECRETS = (TWILIO_TOKEN, TWILIO_TOKEN_2, SENDGRID_KEY)

TWILIO_FIELDS = {
    "account_sid": "AC0123456789abcdef",
    "auth_token": TWILIO_TOKEN,
    "from_number": "+15005550006",
}


def make_settings(home: Path, **overrides: object) -> Settings:
    # No test reaches a real provider: unless told otherwise, every base URL is a
    # local port nothing listens on.
    nowhere = providers.simulator_base_urls(f"http://127.0.0.1:{free_port()}")
    return Settings(home=home, **{"provider_base_urls": nowhere, **overrides})


@dataclass
class Recorder:
    """Every response body the client saw, to search for secrets afterwards."""

    bodies: list[str] = field(default_factory=list)

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")

    def leaks(self, secrets: Sequence[str] = SECRETS) -> list[str]:
        return [body for body in self.bodies if any(s in body for s in secrets)]


@dataclass
class Api:
    client: TestClient
    service: CatalogService
    settings: Settings
    tokens: dict[str, str]  # role -> token
    recorder: Recorder
    audit: list[ProviderCallAudit]

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def call(
        self, method: str, path: str, role: str | None = "admin", **kwargs: object
    ) -> httpx.Response:
        return self.client.request(method, path, headers=self.headers(role), **kwargs)


def list_reader(records: list[ProviderCallAudit]) -> AuditReader:
    """An audit reader over an in-process list, with read_audit's filter and order."""

    def read(
        settings: Settings,
        *,
        tenant: str | None,
        provider: str | None,
        status: str | None,
        since: datetime | None,
        limit: int,
    ) -> list[ProviderCallAudit]:
        chosen = AuditFilter(tenant, provider, status, since)
        found = sorted((r for r in records if chosen.matches(r)), key=lambda r: r.at)
        return found[-limit:]

    return read


def open_api(home: Path, audit_sink: AuditSink | None = None, **overrides: object) -> Iterator[Api]:
    settings = make_settings(home, **overrides)
    service = CatalogService.open(settings)
    tokens = {
        role: service.create_api_key(f"{role}-key", role)[1]
        for role in ("admin", "operator", "viewer")
    }
    records: list[ProviderCallAudit] = []
    recorder = Recorder()
    app = create_app(settings, service, audit_reader=list_reader(records), audit_sink=audit_sink)
    with TestClient(app) as client:
        client.event_hooks = {"response": [recorder.hook]}
        yield Api(client, service, settings, tokens, recorder, records)


def audit_record(
    tenant: str,
    provider: str,
    status: int | None,
    outcome: AuditOutcome,
    at: datetime,
) -> ProviderCallAudit:
    return ProviderCallAudit(
        header=EventHeader.new(ProviderCallAudit.EVENT_TYPE, tenant, source="test"),
        provider=provider,
        account="primary",
        operation="send_sms",
        direction=AuditDirection.OUTBOUND,
        method="POST",
        url=f"https://api.example/{provider}",
        http_status=status,
        duration_ms=12.5,
        outcome=outcome,
        at=at,
    )


def at(minute: int) -> datetime:
    return datetime(2026, 3, 1, 10, minute, tzinfo=UTC)
