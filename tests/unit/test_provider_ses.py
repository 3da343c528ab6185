"""Amazon SES v2: the SendEmail request, its SigV4 signature (checked against the published
AWS test vector and a signer written here from the spec), and every classify branch."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from urllib.parse import urlsplit

import botocore.auth
import httpx
import pytest
from connector_support import BARE, command, email, make_tenants, tenant
from tenant_accounts import primary

import providers
from core.settings import Settings
from core.tenants import MissingCredentialsError, ProviderAccount, Tenant
from providers.base import Delivered, Rejected, RetryLater
from providers.ses import Ses, SesAccount, SigV4, sign, tag_value

ADAPTER = Ses()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
BASE = "https://email.{region}.amazonaws.com"
MESSAGE_ID = "0100018c1f0e8a3b-4f6f6c5e-2a1b-4c3d-9e8f-0123456789ab-000000"


def account() -> SesAccount:
    return primary(T1, SesAccount)


def freeze(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)


# --- a SigV4 signer from the spec (docs.aws.amazon.com "Create a signed AWS API request") ---


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def reference_signature(
    request: httpx.Request, signed: list[str], secret: str, scope: str, amz_date: str
) -> str:
    """SigV4 by hand: canonical request, string to sign, derived key (no query strings)."""
    canonical_headers = "".join(f"{h}:{request.headers[h].strip()}\n" for h in signed)
    canonical = "\n".join(
        [
            request.method,
            urlsplit(str(request.url)).path,
            "",
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(request.content).hexdigest(),
        ]
    )
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    day, region, service, _ = scope.split("/")
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_sign_reproduces_the_published_get_vanilla_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    # aws-sig-v4-test-suite "get-vanilla" (../shared/providers.md section 10).
    freeze(monkeypatch, datetime(2015, 8, 30, 12, 36, 0))
    request = httpx.Request("GET", "https://example.amazonaws.com/")
    sign(request, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service")
    assert request.headers["x-amz-date"] == "20150830T123600Z"
    assert request.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    # The hand-written signer agrees with the published value too.
    assert reference_signature(
        request,
        ["host", "x-amz-date"],
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "20150830/us-east-1/service/aws4_request",
        "20150830T123600Z",
    ) == ("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


# --- the request ----------------------------------------------------------------------


def send_request(key: str = "key-1", to_name: str | None = "Mrs. Sharma") -> httpx.Request:
    payload = email(to_name=to_name)
    return ADAPTER.build_request(command("ses", payload, key=key), payload, T1, BASE)


def test_the_request_is_sendemail_v2_in_the_accounts_region() -> None:
    request = send_request()
    assert (request.method, str(request.url)) == (
        "POST",
        "https://email.ap-south-1.amazonaws.com/v2/email/outbound-emails",
    )
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # signed by the auth flow, per try
    assert json.loads(request.content) == {
        "FromEmailAddress": "notices@t1.school.example",
        # A display name with a period is quoted (RFC 5322 phrase).
        "Destination": {"ToAddresses": ['"Mrs. Sharma" <parent@example.com>']},
        "Content": {
            "Simple": {
                "Subject": {"Data": "Fee receipt", "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": "Thank you", "Charset": "UTF-8"},
                    "Html": {"Data": "<p>Thank you</p>", "Charset": "UTF-8"},
                },
            }
        },
        "EmailTags": [{"Name": "idempotency_key", "Value": "key-1"}],
    }


def test_a_text_only_mail_without_a_name_has_no_html_part() -> None:
    payload = email(to_name=None, html=None)
    request = ADAPTER.build_request(command("ses", payload), payload, T1, BASE)
    body = json.loads(request.content)
    assert body["Destination"] == {"ToAddresses": ["parent@example.com"]}
    assert body["Content"]["Simple"]["Body"] == {"Text": {"Data": "Thank you", "Charset": "UTF-8"}}


def test_a_non_ascii_display_name_is_mime_encoded() -> None:
    payload = email().model_copy(update={"to_name": "श्रीमती शर्मा"})
    request = ADAPTER.build_request(command("ses", payload), payload, T1, BASE)
    (to,) = json.loads(request.content)["Destination"]["ToAddresses"]
    assert to.startswith("=?utf-8?b?")
    assert to.endswith("?= <parent@example.com>")


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("fee:inv-1/2024.v1", "fee_inv-1_2024_v1"),
        ("plain_key-9", "plain_key-9"),
        ("x" * 300, "x" * 256),
        ("", "_"),
    ],
)
def test_the_idempotency_tag_keeps_only_what_ses_allows(key: str, tag: str) -> None:
    assert tag_value(key) == tag


def test_the_tag_of_a_request_is_sanitized() -> None:
    body = json.loads(send_request(key="sms:t1/inv 7").content)
    assert body["EmailTags"] == [{"Name": "idempotency_key", "Value": "sms_t1_inv_7"}]


def with_ses(**overrides: str) -> Tenant:
    fields = {**account().model_dump(), **overrides}
    config = SesAccount.model_validate(fields)
    return Tenant(
        id="t9", accounts=(ProviderAccount(label="ses-x", provider="ses", config=config),)
    )


def test_a_configuration_set_is_named_when_the_account_has_one() -> None:
    t9 = with_ses(configuration_set="school-events", region="eu-west-1")
    payload = email()
    request = ADAPTER.build_request(command("ses", payload, tenant_id="t9"), payload, t9, BASE)
    assert str(request.url) == "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
    assert json.loads(request.content)["ConfigurationSetName"] == "school-events"
    assert "ConfigurationSetName" not in json.loads(send_request().content)


def test_a_configured_base_url_without_a_region_is_used_as_it_is() -> None:
    payload = email()
    request = ADAPTER.build_request(command("ses", payload), payload, T1, "http://sim/ses/")
    assert str(request.url) == "http://sim/ses/v2/email/outbound-emails"


def test_a_tenant_without_an_ses_account_is_missing_credentials() -> None:
    bare = tenant(TENANTS, BARE)
    payload = email()
    with pytest.raises(MissingCredentialsError):
        ADAPTER.build_request(command("ses", payload, tenant_id=BARE), payload, bare, BASE)


@pytest.mark.parametrize(
    ("region", "valid"),
    [("ap-south-1", True), ("us-gov-west-1", True), ("eu-central-2", True), ("mumbai", False)],
)
def test_the_region_must_look_like_an_aws_region(region: str, valid: bool) -> None:
    fields = {**account().model_dump(), "region": region}
    if valid:
        assert SesAccount.model_validate(fields).region == region
    else:
        with pytest.raises(ValueError, match="region"):
            SesAccount.model_validate(fields)


# --- the signature ----------------------------------------------------------------------


async def signed_send(request: httpx.Request, auth: httpx.Auth) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handle(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        return httpx.Response(200, json={"MessageId": MESSAGE_ID})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        await client.send(request, auth=auth)
    (sent,) = seen
    return sent


@pytest.mark.anyio
async def test_the_auth_flow_signs_with_the_accounts_key_for_service_ses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    freeze(monkeypatch, datetime(2026, 3, 1, 9, 30, 5))
    auth = ADAPTER.auth(T1, Settings())
    assert isinstance(auth, SigV4)
    sent = await signed_send(send_request(), auth)
    key = account()
    assert sent.headers["x-amz-date"] == "20260301T093005Z"
    prefix = (
        f"AWS4-HMAC-SHA256 Credential={key.access_key_id}/20260301/ap-south-1/ses/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    authorization = sent.headers["authorization"]
    assert authorization.startswith(prefix)
    assert authorization.removeprefix(prefix) == reference_signature(
        sent,
        ["content-type", "host", "x-amz-date"],
        key.secret_access_key.get_secret_value(),
        "20260301/ap-south-1/ses/aws4_request",
        "20260301T093005Z",
    )


@pytest.mark.anyio
async def test_each_try_is_signed_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = ADAPTER.auth(T1, Settings())
    assert auth is not None
    request = send_request()  # the executor sends the same request object on every try
    freeze(monkeypatch, datetime(2026, 3, 1, 9, 30, 5))
    first = (await signed_send(request, auth)).headers["authorization"]
    freeze(monkeypatch, datetime(2026, 3, 1, 9, 45, 0))
    second = await signed_send(request, auth)
    assert second.headers["x-amz-date"] == "20260301T094500Z"
    assert second.headers.get_list("authorization") == [second.headers["authorization"]]
    assert second.headers["authorization"] != first


def test_the_probe_reads_the_account() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert (request.method, str(request.url)) == (
        "GET",
        "https://email.ap-south-1.amazonaws.com/v2/email/account",
    )


# --- classify ---------------------------------------------------------------------------


def aws_error(status: int, code: str, message: str = "nope") -> httpx.Response:
    return httpx.Response(status, headers={"x-amzn-ErrorType": code}, json={"message": message})


def test_200_with_a_message_id_is_delivered() -> None:
    outcome = ADAPTER.classify(httpx.Response(200, json={"MessageId": MESSAGE_ID}))
    assert outcome == Delivered(MESSAGE_ID, 200, {"message_id": MESSAGE_ID})


def test_200_without_a_message_id_is_not_sent_again() -> None:
    assert ADAPTER.classify(httpx.Response(200, json={})) == Rejected(
        "SES answered 200 without a MessageId", 200
    )


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "TooManyRequestsException", RetryLater),
        (400, "LimitExceededException", RetryLater),
        (400, "ThrottlingException", RetryLater),
        (400, "AccountSuspendedException", Rejected),
        (400, "SendingPausedException", Rejected),
        (400, "MessageRejected", Rejected),
        (400, "MailFromDomainNotVerifiedException", Rejected),
        (400, "BadRequestException", Rejected),
        (404, "NotFoundException", Rejected),
        (403, "SignatureDoesNotMatch", Rejected),
        (500, "InternalFailure", RetryLater),
        (503, "ServiceUnavailable", RetryLater),
    ],
)
def test_each_sendemail_error(status: int, code: str, kind: type) -> None:
    outcome = ADAPTER.classify(aws_error(status, code, "the reason"))
    assert type(outcome) is kind
    assert isinstance(outcome, RetryLater | Rejected)
    assert (outcome.http_status, outcome.error_code, outcome.reason) == (status, code, "the reason")


def test_the_error_type_header_loses_what_follows_a_colon() -> None:
    response = httpx.Response(
        400,
        headers={
            "x-amzn-ErrorType": "MessageRejected:http://internal.amazon.com/coral/com.amazon/"
        },
        json={"Message": "Email address is not verified."},
    )
    assert ADAPTER.classify(response) == Rejected(
        "Email address is not verified.", 400, "MessageRejected"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"__type": "com.amazonaws.sesv2#AccountSuspendedException", "message": "suspended"},
        {"code": "AccountSuspendedException", "message": "suspended"},
        {"Code": "AccountSuspendedException", "Message": "suspended"},
    ],
)
def test_without_the_header_the_code_comes_from_the_body(body: dict[str, str]) -> None:
    assert ADAPTER.classify(httpx.Response(400, json=body)) == Rejected(
        "suspended", 400, "AccountSuspendedException"
    )


def test_an_error_without_any_code_keeps_the_status_reason() -> None:
    outcome = ADAPTER.classify(httpx.Response(502, text="<html>bad gateway</html>"))
    assert outcome == RetryLater("Bad Gateway", 502, None, None)


def test_the_messaging_declaration() -> None:
    declared = providers.get("ses")
    assert declared.category == "email"
    assert declared.base_urls == {"api": "https://email.{region}.amazonaws.com"}
    assert declared.secret_fields == ("secret_access_key",)
    assert declared.messaging is not None
    assert declared.messaging.rate_per_second == 14.0
    assert declared.messaging.receipts is False
    assert declared.messaging.account_errors == frozenset(
        {
            "AccountSuspendedException",
            "SendingPausedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
            "AccessDeniedException",
        }
    )
