"""SES v2 against independent implementations, both ways (no Kafka, no hub stack):

- our adapter (build_request + its SigV4 auth flow + httpx) against moto's server, an
  SES implementation of its own, which must accept the mail from a verified identity
  and refuse an unverified one;
- boto3's own sesv2 client (botocore signs, botocore parses) against our simulator,
  which must verify botocore's signature and answer in a shape botocore reads.
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.ports import free_port
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from providers.base import Delivered, Rejected
from providers.ses import Ses, SesAccount
from schemas.events import ConnectorCommand, EventHeader, SendEmail
from simulators import create_app
from simulators.ses import outbox

ADAPTER = Ses()
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture(scope="module")
def tenants() -> TenantDirectory:
    return parse_tenants(tomllib.loads(demo_tenant_config("t1", "School One")))


@pytest.fixture(scope="module")
def t1(tenants: TenantDirectory) -> Tenant:
    found = tenants.get("t1")
    assert found is not None
    return found


def client(service: str, account: SesAccount, endpoint: str, secret: str | None = None) -> Any:
    return boto3.client(
        service,
        region_name=account.region,
        endpoint_url=endpoint,
        aws_access_key_id=account.access_key_id,
        aws_secret_access_key=secret or account.secret_access_key.get_secret_value(),
        config=NO_RETRIES,
    )


def send_command(t: Tenant, subject: str) -> tuple[ConnectorCommand, SendEmail]:
    payload = SendEmail(
        to="parent@example.com", subject=subject, text="Thank you", html="<p>ok</p>"
    )
    cmd = ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, t.id, source="test"),
        idempotency_key=f"fee:{subject}",
        provider="ses",
        payload=payload,
    )
    return cmd, payload


# --- our adapter against moto -----------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def send_to_moto(t: Tenant, moto_url: str, subject: str) -> httpx.Response:
    cmd, payload = send_command(t, subject)
    request = ADAPTER.build_request(cmd, payload, t, moto_url)
    with httpx.Client(timeout=10) as http:
        return http.send(request, auth=ADAPTER.auth(t, Settings()))


def test_moto_accepts_our_signed_sendemail_from_a_verified_identity(
    t1: Tenant, moto_url: str
) -> None:
    account = primary(t1, SesAccount)
    client("sesv2", account, moto_url).create_email_identity(EmailIdentity=account.from_email)
    backend = ses_backends[DEFAULT_ACCOUNT_ID][account.region]
    before = len(backend.sent_messages)
    outcome = ADAPTER.classify(send_to_moto(t1, moto_url, "moto-accepts"))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref
    sent = backend.sent_messages[before:]
    assert [(m.id, m.source, m.destinations, m.subject) for m in sent] == [
        (
            outcome.provider_ref,
            "notices@t1.school.example",
            {"ToAddresses": ["parent@example.com"]},
            "moto-accepts",
        )
    ]


def test_moto_refuses_an_unverified_sender_and_we_read_its_error(
    tenants: TenantDirectory, moto_url: str
) -> None:
    raw = tomllib.loads(demo_tenant_config("t7", "School Seven"))
    t7 = parse_tenants(raw).get("t7")
    assert t7 is not None  # its identity was never verified at moto
    outcome = ADAPTER.classify(send_to_moto(t7, moto_url, "moto-refuses"))
    assert isinstance(outcome, Rejected)
    assert (outcome.http_status, outcome.error_code) == (400, "MessageRejected")
    assert "notices@t7.school.example" in outcome.reason


# --- boto3 against our simulator ---------------------------------------------------------


@pytest.fixture(scope="module")
def sim(tenants: TenantDirectory) -> Iterator[tuple[str, Any]]:
    app = create_app(
        tenants,
        webhook_url_template="http://127.0.0.1:9/webhooks/{provider}/{tenant}",
        webhook_transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/ses", app.state.sim
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_boto3_sends_through_our_simulator(t1: Tenant, sim: tuple[str, Any]) -> None:
    url, ctx = sim
    account = primary(t1, SesAccount)
    answer = client("sesv2", account, url).send_email(
        FromEmailAddress=account.from_email,
        Destination={"ToAddresses": ["parent@example.com"]},
        Content={
            "Simple": {
                "Subject": {"Data": "From boto3"},
                "Body": {"Text": {"Data": "Thank you"}},
            }
        },
        EmailTags=[{"Name": "idempotency_key", "Value": "boto3-1"}],
    )
    message_id = answer["MessageId"]
    (mail,) = [m for m in outbox(ctx).list("t1") if m.message_id == message_id]
    assert (mail.subject, mail.to, mail.tags) == (
        "From boto3",
        ("parent@example.com",),
        {"idempotency_key": "boto3-1"},
    )


def test_boto3_reads_our_refusals(t1: Tenant, sim: tuple[str, Any]) -> None:
    url, _ctx = sim
    account = primary(t1, SesAccount)
    wrong = client("sesv2", account, url, secret="W" * 40)
    with pytest.raises(ClientError) as refused:
        wrong.get_account()
    error = refused.value.response["Error"]
    assert error["Code"] == "SignatureDoesNotMatch"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as unverified:
        client("sesv2", account, url).send_email(
            FromEmailAddress="someone@elsewhere.example",
            Destination={"ToAddresses": ["parent@example.com"]},
            Content={"Simple": {"Subject": {"Data": "x"}, "Body": {"Text": {"Data": "x"}}}},
        )
    assert unverified.value.response["Error"]["Code"] == "MessageRejected"


def test_boto3_reads_our_account(t1: Tenant, sim: tuple[str, Any]) -> None:
    url, _ctx = sim
    answer = client("sesv2", primary(t1, SesAccount), url).get_account()
    assert answer["SendQuota"]["MaxSendRate"] == 14.0
    assert answer["SendingEnabled"] is True
