"""An auth flow's token exchange is a provider call too: the FCM adapter's OAuth token
request is audited under the try it served, its assertion and access token masked."""

from __future__ import annotations

import httpx
import pytest
from test_connector_audit import FakeTime, RecordingSink

import providers
from catalog.tenant_file import new_rsa_key_pem
from connectors.call_audit import TOKEN_OPERATION
from connectors.executor import CommandExecutor
from connectors.retry import RetryPolicy
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from schemas.events import (
    AuditOutcome,
    ConnectorCommand,
    EventHeader,
    ResultStatus,
    SendPush,
)

ACCESS_TOKEN = "ya29.a0AfH6SMBx-access-token-from-google"
SETTINGS = Settings(provider_base_urls={"fcm.token": "http://sim/google/oauth2/token"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/google/oauth2/token":
        return httpx.Response(200, json={"access_token": ACCESS_TOKEN, "expires_in": 3600})
    assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    return httpx.Response(200, json={"name": "projects/p/messages/1"})


@pytest.mark.anyio
async def test_the_token_exchange_is_audited_under_the_try_it_served() -> None:
    key = new_rsa_key_pem()
    account = providers.get("fcm").account_model(
        client_email="push@p.iam.gserviceaccount.com", private_key=key, project_id="p"
    )
    tenant = Tenant(
        id="greenwood",
        accounts=(ProviderAccount(label="fcm-primary", provider="fcm", config=account),),
    )
    command = ConnectorCommand(
        header=EventHeader.new("connector.command", "greenwood", source="t", correlation_id="c-7"),
        idempotency_key="k-7",
        provider="fcm",
        payload=SendPush(topic="class-7b", title="Fees", body="Due on 15 July."),
    )
    sink, time = RecordingSink(), FakeTime()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        executor = CommandExecutor(
            providers.get("fcm").adapter,
            settings=SETTINGS,
            base_url="http://sim/fcm",
            tenants=TenantDirectory({"greenwood": tenant}),
            http=http,
            policy=RetryPolicy(attempts=1),
            sleep=time.sleep,
            clock=time.clock,
            audit=sink,
        )
        result = await executor.attempt(command)

    assert result.status is ResultStatus.DELIVERED
    assert [(e.operation, e.http_status, e.attempt) for e in sink.entries] == [
        (TOKEN_OPERATION, 200, 1),
        ("push.send", 200, 1),
    ]
    token_entry = sink.entries[0]
    assert token_entry.header.correlation_id == "c-7"
    assert token_entry.account == "fcm-primary"
    assert token_entry.outcome is AuditOutcome.DELIVERED
    assert token_entry.url == "http://sim/google/oauth2/token"
    for entry in sink.entries:
        stored = entry.model_dump_json()
        assert ACCESS_TOKEN not in stored
        assert "BEGIN PRIVATE KEY" not in stored and key.splitlines()[1] not in stored
    assert "assertion=***" in (token_entry.request_body or "")
