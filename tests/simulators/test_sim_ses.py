"""The SES v2 simulator against the adapter: SendEmail and GetAccount, its SigV4 check
(wrong secret, unknown key, tampering, scope, stale date), identity checks, no receipts."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from tenant_accounts import primary

from core.settings import Settings
from core.tenants import ProviderAccount, Tenant
from providers import probe
from providers.base import Delivered, Rejected
from providers.ses import Ses, SesAccount, SigV4, sign
from schemas.events import ConnectorCommand, EventHeader, SendEmail
from simulators.common import SimContext
from simulators.ses import outbox

pytestmark = pytest.mark.anyio

ADAPTER = Ses()
BASE = "http://sim/ses"
MESSAGE_ID = re.compile(r"[0-9a-f]{16}-[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}-000000")


def ctx_of(app: Starlette) -> SimContext:
    found = app.state.sim
    assert isinstance(found, SimContext)
    return found


def send_command(t: Tenant, to: str = "parent@example.com", key: str = "fee:1") -> ConnectorCommand:
    payload = SendEmail(to=to, subject="Fee receipt", text="Thank you", html="<p>Thank you</p>")
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, t.id, source="test"),
        idempotency_key=key,
        provider="ses",
        payload=payload,
    )


def request_for(t: Tenant, **kw: str) -> httpx.Request:
    cmd = send_command(t, **kw)
    assert isinstance(cmd.payload, SendEmail)
    return ADAPTER.build_request(cmd, cmd.payload, t, BASE)


def key_of(t: Tenant, **overrides: str) -> SigV4:
    fields = {**primary(t, SesAccount).model_dump(), **overrides}
    return SigV4(SesAccount.model_validate(fields))


def assert_aws_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status
    assert response.headers["x-amzn-errortype"] == code
    assert response.headers["content-type"] == "application/json"
    message = response.json()["message"]
    assert isinstance(message, str)
    return message


async def test_a_send_is_200_with_a_message_id_and_the_mail_is_kept(
    client: httpx.AsyncClient, app: Starlette, t1: Tenant
) -> None:
    response = await client.send(request_for(t1), auth=ADAPTER.auth(t1, Settings()))
    outcome = ADAPTER.classify(response)
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref is not None
    assert MESSAGE_ID.fullmatch(outcome.provider_ref)
    (mail,) = outbox(ctx_of(app)).list("t1")
    assert (mail.message_id, mail.tenant, mail.from_email, mail.to) == (
        outcome.provider_ref,
        "t1",
        "notices@t1.school.example",
        ("parent@example.com",),
    )
    assert (mail.subject, mail.text, mail.html) == ("Fee receipt", "Thank you", "<p>Thank you</p>")
    assert mail.tags == {"idempotency_key": "fee_1"}


async def test_message_ids_differ(client: httpx.AsyncClient, t1: Tenant) -> None:
    auth = ADAPTER.auth(t1, Settings())
    ids = {(await client.send(request_for(t1), auth=auth)).json()["MessageId"] for _ in range(3)}
    assert len(ids) == 3


async def test_a_wrong_secret_is_signature_does_not_match(
    client: httpx.AsyncClient, app: Starlette, t1: Tenant
) -> None:
    response = await client.send(request_for(t1), auth=key_of(t1, secret_access_key="x" * 40))
    message = assert_aws_error(response, 403, "SignatureDoesNotMatch")
    assert message.startswith("The request signature we calculated does not match")
    assert ADAPTER.classify(response) == Rejected(message, 403, "SignatureDoesNotMatch")
    assert outbox(ctx_of(app)).list() == []


async def test_an_unknown_key_is_unrecognized(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.send(request_for(t1), auth=key_of(t1, access_key_id="AKIA" + "0" * 16))
    message = assert_aws_error(response, 403, "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


async def test_an_unsigned_request_is_missing_the_token(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response = await client.send(request_for(t1))
    assert assert_aws_error(response, 403, "MissingAuthenticationTokenException") == (
        "Missing Authentication Token"
    )


async def test_a_body_changed_after_signing_is_refused(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    signed = request_for(t1)
    account = primary(t1, SesAccount)
    sign(signed, account.access_key_id, account.secret_access_key.get_secret_value(), "ap-south-1")
    tampered = json.loads(signed.content)
    tampered["Destination"]["ToAddresses"] = ["someone-else@example.com"]
    forged = httpx.Request(
        "POST",
        signed.url,
        json=tampered,
        headers={
            k: v
            for k, v in signed.headers.items()
            if k in ("authorization", "x-amz-date", "content-type")
        },
    )
    assert_aws_error(await client.send(forged), 403, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    ("service", "region", "message"),
    [
        ("sesv2", "ap-south-1", "Credential should be scoped to correct service: 'ses'."),
        ("ses", "us-east-1", "Credential should be scoped to a valid region."),
    ],
)
async def test_a_signature_for_another_scope_is_refused(
    client: httpx.AsyncClient, t1: Tenant, service: str, region: str, message: str
) -> None:
    request = request_for(t1)
    account = primary(t1, SesAccount)
    secret = account.secret_access_key.get_secret_value()
    sign(request, account.access_key_id, secret, region, service)
    response = await client.send(request)
    assert assert_aws_error(response, 403, "SignatureDoesNotMatch") == message


async def test_a_stale_signature_is_expired(
    client: httpx.AsyncClient, app: Starlette, t1: Tenant
) -> None:
    ctx_of(app).state.clock = lambda: datetime.now(UTC).timestamp() + 600
    response = await client.send(request_for(t1), auth=ADAPTER.auth(t1, Settings()))
    message = assert_aws_error(response, 403, "SignatureDoesNotMatch")
    assert message.startswith("Signature expired: ")


async def test_another_tenants_key_cannot_read_this_one(
    client: httpx.AsyncClient, app: Starlette, t1: Tenant, t2: Tenant
) -> None:
    response = await client.send(request_for(t1), auth=ADAPTER.auth(t2, Settings()))
    # t2's key may send, but only from t2's identity: t1's sender is not verified for it.
    message = assert_aws_error(response, 400, "MessageRejected")
    assert message == (
        "Email address is not verified. The following identities failed the check in "
        "region AP-SOUTH-1: notices@t1.school.example"
    )
    assert ADAPTER.classify(response) == Rejected(message, 400, "MessageRejected")


async def test_any_address_of_the_verified_domain_may_send(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    fields = {**primary(t1, SesAccount).model_dump(), "from_email": "office@t1.school.example"}
    other = Tenant(
        id="t1",
        accounts=(
            ProviderAccount(
                label="ses-x", provider="ses", config=SesAccount.model_validate(fields)
            ),
        ),
    )
    response = await client.send(request_for(other), auth=ADAPTER.auth(t1, Settings()))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "Request body must be a JSON object."),
        (
            {"Destination": {"ToAddresses": ["a@b.example"]}},
            "Missing required parameter FromEmailAddress.",
        ),
        (
            {"FromEmailAddress": "notices@t1.school.example", "Destination": {}},
            "Destination.ToAddresses must hold at least one address.",
        ),
        (
            {
                "FromEmailAddress": "notices@t1.school.example",
                "Destination": {"ToAddresses": ["a@b.example"]},
                "Content": {"Simple": {"Body": {"Text": {"Data": "x"}}}},
            },
            "Content.Simple needs a Subject and a Text or Html Body.",
        ),
    ],
)
async def test_malformed_bodies_are_bad_requests(
    client: httpx.AsyncClient, t1: Tenant, body: object, message: str
) -> None:
    request = httpx.Request("POST", f"{BASE}/v2/email/outbound-emails", json=body)
    response = await client.send(request, auth=ADAPTER.auth(t1, Settings()))
    assert assert_aws_error(response, 400, "BadRequestException") == message


async def test_the_probe_is_ok_with_the_right_key_and_refused_with_a_wrong_one(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    settings = Settings(provider_base_urls={"ses": BASE})
    account = t1.accounts_for("ses")[0]
    result = await probe(account, settings, http=client)
    assert (result.status, result.http_status) == ("ok", 200)
    fields = {**account.config.model_dump(), "secret_access_key": "y" * 40}
    wrong = account.model_copy(update={"config": SesAccount.model_validate(fields)})
    result = await probe(wrong, settings, http=client)
    assert (result.status, result.http_status) == ("auth_failed", 403)


async def test_get_account_reports_the_quota_and_todays_count(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    auth = ADAPTER.auth(t1, Settings())
    await client.send(request_for(t1), auth=auth)
    response = await client.send(ADAPTER.probe_request(t1, None, BASE), auth=auth)
    assert response.status_code == 200
    assert response.json()["SendQuota"] == {
        "Max24HourSend": 50000.0,
        "MaxSendRate": 14.0,
        "SentLast24Hours": 1.0,
    }
    assert response.json()["SendingEnabled"] is True


async def test_no_receipt_is_ever_posted(
    client: httpx.AsyncClient, app: Starlette, t1: Tenant
) -> None:
    await client.post("/_sim/messages/undeliverable", json={"addresses": ["gone@example.com"]})
    auth = ADAPTER.auth(t1, Settings())
    for to in ("parent@example.com", "gone@example.com"):
        assert (await client.send(request_for(t1, to=to), auth=auth)).status_code == 200
    await asyncio.sleep(0.4)  # twice the receipt delay of the messaging simulators
    assert ctx_of(app).receipts.sent == []


async def test_a_reset_empties_the_outbox(
    client: httpx.AsyncClient, app: Starlette, t1: Tenant
) -> None:
    await client.send(request_for(t1), auth=ADAPTER.auth(t1, Settings()))
    assert len(outbox(ctx_of(app)).list()) == 1
    assert (await client.post("/_sim/reset")).status_code == 200
    assert outbox(ctx_of(app)).list() == []


async def test_an_unknown_operation_is_404(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.get("/ses/v2/email/nothing-here")
    assert_aws_error(response, 404, "UnknownOperationException")
