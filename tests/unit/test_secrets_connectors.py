"""No secret of a loaded tenant in any log line, result, dead letter or audit record of a
connector: every provider's adapter, its success and its error paths.

Each command runs through the executor (the logging, the result, the audit records of every
try, lookup and token exchange) and then `records_for` (the result, the retry tier's record or
the dead letter), exactly the code the connector worker runs around a call. The provider is the
simulators (success) or an adversary behind `httpx.MockTransport`: errors in every shape, a
provider that echoes the request (its Authorization header, URL and body) in its error, and
transport failures whose message quotes the request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from connector_support import FakeTime, Simulator, command
from secrets_support import (
    CANARY_TENANT,
    Found,
    RecordingSink,
    canary_directory,
    leaks,
    needles,
    payloads_for,
    rendered_logs,
    secret_fields,
)

import providers
from connectors.executor import CommandExecutor
from connectors.outcomes import OutcomeContext, records_for
from connectors.registry import adapter
from connectors.retry import RetryPolicy
from core.dead_letters import SourceRecord
from core.kafka import Record, event_record
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import commands_topic
from schemas.codec import make_codec
from schemas.events import ConnectorCommand, ConnectorResult, DeadLetter, ResultStatus, decode_as

CODEC = make_codec()
SIM = "http://sim"
PROVIDERS = list(providers.names())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tenants() -> TenantDirectory:
    return canary_directory()  # slow (it makes RSA keys); read-only, so shared


def _echo(request: httpx.Request) -> dict[str, Any]:
    """The request as a careless provider quotes it back: headers, URL, body."""
    quoted = (
        f"{request.method} {request.url} headers={dict(request.headers)} "
        f"body={request.content.decode(errors='replace')}"
    )
    return {
        "message": quoted,
        "error": {"message": quoted, "description": quoted, "code": quoted, "reason": quoted},
        "errors": [{"message": quoted, "code": quoted, "detail": quoted}],
        "error_description": quoted,
        "detail": quoted,
        "code": quoted,
        "status": quoted,
        "request": {"headers": dict(request.headers), "url": str(request.url)},
    }


def _flat_echo(request: httpx.Request) -> dict[str, Any]:
    """The same with `error` a string (OAuth's shape, Stripe's `error.message` elsewhere)."""
    echo = _echo(request)
    return {**echo, "error": echo["message"], "errorMessage": echo["message"]}


Responder = Callable[[httpx.Request], httpx.Response]


def answers(status: int, body: Callable[[httpx.Request], dict[str, Any]]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(status, json=body(request))

    return respond


def text_answer(status: int) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(status, text=json.dumps(_echo(request)), headers={"X-Echo": "1"})

    return respond


def raises(error: type[httpx.TransportError]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        request.read()
        raise error(
            f"{request.url} {dict(request.headers)} {request.content.decode(errors='replace')}",
            request=request,
        )

    return respond


# Providers whose secrets only sign (a JWT, SigV4, a checksum) and never travel: the one
# check that the adversary saw a canary cannot hold for them; the opposite does.
SIGNS_ONLY = {"fcm", "gworkspace", "paytm", "ses"}


class Recorded:
    """A responder that also keeps every request it saw (as text), to show it saw secrets."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.seen: list[Found] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        body = request.content.decode(errors="replace")
        self.seen.append(("request", f"{request.url} {dict(request.headers)} {body}"))
        return self.respond(request)


ADVERSARIES: dict[str, Responder] = {
    "400-echo": answers(400, _echo),
    "401-flat-echo": answers(401, _flat_echo),
    "422-echo": answers(422, _echo),
    "500-echo": answers(500, _echo),
    "503-flat-echo": answers(503, _flat_echo),
    "200-echo": answers(200, _echo),  # "success" that is nothing but the request quoted
    "502-text-echo": text_answer(502),
    "connect-error": raises(httpx.ConnectError),
    "read-timeout": raises(httpx.ReadTimeout),  # in doubt: the next try asks first
}


def _settings() -> Settings:
    return Settings(provider_base_urls=providers.simulator_base_urls(SIM))


def _source(cmd: ConnectorCommand) -> SourceRecord:
    record = event_record(CODEC, commands_topic(cmd.provider), cmd)
    key = record.key.encode() if isinstance(record.key, str) else record.key
    return SourceRecord(record.topic, 0, 7, None, key, record.value, list(record.headers))


def _texts(records: list[Record]) -> list[Found]:
    """Each record as it reaches Kafka: headers, and its decoded value (a dead letter whole)."""
    texts: list[Found] = []
    for record in records:
        texts += [(f"{record.topic} header", f"{k}={v!r}") for k, v in record.headers]
        if record.value is None:
            continue
        texts.append((record.topic, record.value.decode(errors="replace")))
        if record.topic.startswith("hub.dlq."):
            letter = decode_as(CODEC, record.value, DeadLetter)
            texts.append((record.topic, letter.model_dump_json()))
        elif record.topic.endswith(".results.v1"):
            result = decode_as(CODEC, record.value, ConnectorResult)
            texts.append((record.topic, result.model_dump_json()))
    return texts


async def run_all(
    provider: str, tenants: TenantDirectory, transport: httpx.AsyncBaseTransport
) -> tuple[list[ConnectorResult], list[Found]]:
    """Every operation of the provider's adapter, through the executor and records_for;
    the results, and everything they left: log lines, audit records, Kafka records."""
    sink = RecordingSink()
    fake = FakeTime()
    settings = _settings()
    results: list[ConnectorResult] = []
    texts: list[Found] = []
    with rendered_logs() as logs:
        async with httpx.AsyncClient(transport=transport) as http:
            executor = CommandExecutor(
                adapter(provider),
                settings=settings,
                base_url=providers.base_url(settings, provider),
                tenants=tenants,
                http=http,
                policy=RetryPolicy(attempts=2),
                sleep=fake.sleep,
                clock=fake.clock,
                audit=sink,
            )
            for payload in payloads_for(adapter(provider).payload_type):
                cmd = command(provider, payload, tenant_id=CANARY_TENANT)
                result = await executor.attempt(cmd)
                results.append(result)
                texts.append(("result", result.model_dump_json()))
                # The last tier's failure dead-letters; an earlier one goes to the next tier.
                for tiers in ([], [60.0]):
                    ctx = OutcomeContext(CODEC, provider, "worker-1", tiers)
                    texts += _texts(records_for(cmd, result, _source(cmd), ctx, 1_750_000_000_000))
    texts += [("log", logs.getvalue()), *sink.texts()]
    assert sink.entries, "no audit record: the adversary was never called"
    assert '"event": "command.' in logs.getvalue(), "the capture saw no connector log line"
    return results, texts


def test_every_provider_account_has_secrets_to_look_for(tenants: TenantDirectory) -> None:
    tenant = tenants.get(CANARY_TENANT)
    assert tenant is not None
    for provider in PROVIDERS:
        declared = providers.get(provider).account_model
        assert secret_fields(declared), f"{provider}'s account has no SecretStr field"
        assert tenant.has(provider), provider
    assert len(needles(tenant)) > 10 * len(PROVIDERS)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("adversary", list(ADVERSARIES))
async def test_no_secret_leaks_when_the_provider_misbehaves(
    provider: str, adversary: str, tenants: TenantDirectory
) -> None:
    tenant = tenants.get(CANARY_TENANT)
    assert tenant is not None
    adversary_saw = Recorded(ADVERSARIES[adversary])
    results, texts = await run_all(provider, tenants, httpx.MockTransport(adversary_saw))
    assert results
    assert leaks(texts, needles(tenant)) == []
    # Not vacuous: the requests did carry the canaries (the signing providers' never do).
    assert bool(leaks(adversary_saw.seen, needles(tenant))) is (provider not in SIGNS_ONLY)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "smtp"])
async def test_no_secret_leaks_when_the_provider_answers(
    provider: str, tenants: TenantDirectory
) -> None:
    # The simulators play each provider as it is: its success answers, its auth flows.
    tenant = tenants.get(CANARY_TENANT)
    assert tenant is not None
    sim = Simulator(tenants)
    results, texts = await run_all(provider, tenants, sim.transport())
    assert any(r.status is ResultStatus.DELIVERED for r in results), [
        r.error_message for r in results
    ]
    assert leaks(texts, needles(tenant)) == []


@pytest.mark.anyio
async def test_a_checkout_token_in_a_result_is_kept(tenants: TenantDirectory) -> None:
    # Masked by value, never by key: Paytm's txn_token is what the payer's page needs.
    results, _texts = await run_all("paytm", tenants, Simulator(tenants).transport())
    tokens = [r.details["txn_token"] for r in results if "txn_token" in r.details]
    assert tokens
    assert all(token and "***" not in token for token in tokens)
