"""Amazon SES API v2 SendEmail: POST /v2/email/outbound-emails on email.<region>.amazonaws.com.

Facts (../shared/providers.md section 10, read from botocore's sesv2 service model):

- rest-json, JSON body `FromEmailAddress`, `Destination.ToAddresses`,
  `Content.Simple{Subject{Data,Charset}, Body{Text{Data,Charset}, Html{Data,Charset}}}`,
  `ConfigurationSetName`, `EmailTags[{Name, Value}]`; success is 200 `{"MessageId": ...}`.
- Signature Version 4 with the signing name **"ses"** (not "sesv2"), done here by botocore's
  own signer (`SigV4Auth`) as an httpx auth flow: every try is signed anew, so a retry
  after minutes never carries a stale X-Amz-Date.
- Errors: the code is in the `x-amzn-ErrorType` header (anything after ':' dropped), else
  the body's `code`/`Code`/`__type` (anything before '#' dropped), the text in
  `message`/`Message` (botocore's RestJSONParser reads them in that order).
  TooManyRequestsException (429) and LimitExceededException (400) are throttling: retried.
  SES publishes no Retry-After.
- No idempotency key: the command's key rides along as an `EmailTags` entry (tag values
  allow only [A-Za-z0-9_-], so other characters become '_'), which SES puts on the
  message's events; the ledger is what keeps a command from being sent twice.
- Test connection: `GET /v2/email/account` (GetAccount), a read of the account's own
  sending status and quota.

Delivery events (bounces, complaints) reach a customer through SNS or EventBridge, with
SNS's own certificate signatures: not covered. An accepted message is final for the hub.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from email.utils import formataddr
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    Rejected,
    RetryLater,
    classify_failure,
    json_or_empty,
)
from providers.spec import API, Messaging, Provider
from schemas.events import ConnectorCommand, SendEmail

SIGNING_NAME = "ses"
SEND_PATH = "/v2/email/outbound-emails"
ACCOUNT_PATH = "/v2/email/account"
# The declared base URL names the account's region; a configured one (the simulator) need not.
REGION_PLACEHOLDER = "{region}"
CHARSET = "UTF-8"
IDEMPOTENCY_TAG = "idempotency_key"
TAG_VALUE_LIMIT = 256
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# What botocore signs besides the date: the host and the body's type (never the user agent).
_SIGNED = ("host", "content-type")

# Throttling and transient request errors (botocore/retries/standard.py retries these).
RETRY_CODES = frozenset(
    {
        "TooManyRequestsException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)
# Permanent failures of the account, not of the message: the backup provider is tried.
# Suspension and paused sending are SendEmail's own errors (botocore model); refused
# credentials and a key whose IAM policy lacks ses:SendEmail are AWS's common ones.
ACCOUNT_ERRORS = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AccessDeniedException",
    }
)


class SesAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # IAM access key ids are 16-128 word characters (AKIA... for a user's long-term key).
    access_key_id: str = Field(min_length=16, max_length=128, pattern=r"^\w+$")
    secret_access_key: SecretStr
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")  # "ap-south-1"
    from_email: str  # a verified identity (the address or its domain)
    configuration_set: str = ""  # ConfigurationSetName; "" sends without one


def tag_value(value: str) -> str:
    """A string as an SES tag value: only [A-Za-z0-9_-], at most 256 characters."""
    return _TAG_UNSAFE.sub("_", value)[:TAG_VALUE_LIMIT] or "_"


def error_code(response: httpx.Response) -> str | None:
    """The AWS error code, as botocore's RestJSONParser finds it."""
    header = response.headers.get("x-amzn-errortype")
    if header:
        return header.split(":", 1)[0].strip() or None
    body = json_or_empty(response)
    for key in ("code", "Code", "__type"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value.rsplit("#", 1)[-1] or None
    return None


def error_message(response: httpx.Response) -> str:
    body = json_or_empty(response)
    found = body.get("message", body.get("Message"))
    return str(found) if found else (response.reason_phrase or "error")


def sign(
    request: httpx.Request,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str = SIGNING_NAME,
) -> None:
    """Sign `request` in place with SigV4 (botocore's signer): X-Amz-Date and Authorization."""
    headers = {name: request.headers[name] for name in _SIGNED if name in request.headers}
    aws = AWSRequest(
        method=request.method, url=str(request.url), data=request.content, headers=headers
    )
    SigV4Auth(Credentials(access_key_id, secret_access_key), service, region).add_auth(aws)
    for name in ("X-Amz-Date", "Authorization"):
        request.headers[name] = aws.headers[name]


class SigV4(httpx.Auth):
    """An httpx auth flow signing each try with the account's key (service "ses")."""

    requires_request_body = True

    def __init__(self, account: SesAccount, service: str = SIGNING_NAME) -> None:
        self.account = account
        self.service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        account = self.account
        secret = account.secret_access_key.get_secret_value()
        sign(request, account.access_key_id, secret, account.region, self.service)
        yield request


def _account(tenant: Tenant, label: str | None) -> SesAccount:
    return tenant.account("ses", SesAccount, label)


def endpoint(base_url: str, account: SesAccount) -> str:
    return base_url.replace(REGION_PLACEHOLDER, account.region).rstrip("/")


class Ses:
    name = "ses"
    category: Category = "email"
    payload_type = SendEmail

    def build_request(
        self, command: ConnectorCommand, payload: SendEmail, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = _account(tenant, command.account)
        to = formataddr((payload.to_name, payload.to)) if payload.to_name else payload.to
        body_parts: dict[str, Any] = {"Text": {"Data": payload.text, "Charset": CHARSET}}
        if payload.html:
            body_parts["Html"] = {"Data": payload.html, "Charset": CHARSET}
        body: dict[str, Any] = {
            "FromEmailAddress": account.from_email,
            "Destination": {"ToAddresses": [to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": payload.subject, "Charset": CHARSET},
                    "Body": body_parts,
                }
            },
            "EmailTags": [{"Name": IDEMPOTENCY_TAG, "Value": tag_value(command.idempotency_key)}],
        }
        if account.configuration_set:
            body["ConfigurationSetName"] = account.configuration_set
        return httpx.Request("POST", endpoint(base_url, account) + SEND_PATH, json=body)

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """GetAccount: the account's own sending status, readable by any key that may send."""
        return httpx.Request("GET", endpoint(base_url, _account(tenant, label)) + ACCOUNT_PATH)

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return SigV4(_account(tenant, label))

    def classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        message_id = json_or_empty(response).get("MessageId")
        if status == 200 and isinstance(message_id, str) and message_id:
            return Delivered(message_id, 200, {"message_id": message_id})
        if status == 200:
            # Accepted or not, SES did not say: sending again might send twice.
            return Rejected("SES answered 200 without a MessageId", 200)
        code = error_code(response)
        reason = error_message(response)
        if code in RETRY_CODES:
            return RetryLater(reason, status, code)
        return classify_failure(response, reason, code)


PROVIDER = Provider(
    name="ses",
    title="Amazon SES",
    category=Ses.category,
    account_model=SesAccount,
    adapter=Ses(),
    base_urls={API: f"https://email.{REGION_PLACEHOLDER}.amazonaws.com"},
    simulator_paths={API: "/ses"},
    summary="Email: SES API v2 SendEmail, SigV4-signed (botocore)",
    docs_url="https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html",
    messaging=Messaging(
        # SES's maximum send rate is per account and region and varies (AWS raises it
        # with the quota; "14/s" is a common production starting value, unconfirmed as
        # a default); the sandbox allows 1/s. A tenant policy can set the account's own.
        rate_per_second=14.0,
        # Bounce and delivery events come through SNS/EventBridge (not covered).
        receipts=False,
        account_errors=ACCOUNT_ERRORS,
    ),
)
