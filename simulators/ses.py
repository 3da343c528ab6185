"""Amazon SES API v2, SigV4-verified: SendEmail and GetAccount.

- `POST /v2/email/outbound-emails`: 200 `{"MessageId"}`; the mail is kept (`outbox(ctx)`).
- `GET /v2/email/account`: the account's sending status and quota (the hub's test connection).

Every request's Signature Version 4 is checked for real: the access key id in the
Authorization header names the tenant's account, and botocore's signer recomputes
the signature from that account's secret over the request as received (method, path,
query, the signed headers, the body). Errors are AWS's rest-json shape: the code in
`x-amzn-ErrorType`, `{"message": ...}` in the body.

- no Authorization: 403 MissingAuthenticationTokenException;
- a key id no tenant holds: 403 UnrecognizedClientException;
- a wrong signature, scope (service other than "ses", another region than the account's)
  or a date more than 5 minutes off: 403 SignatureDoesNotMatch. (AWS's JSON services
  also answer InvalidSignatureException for these: which one SES v2 uses is unconfirmed.)
- a sender that is not the account's verified identity (its address or its domain):
  400 MessageRejected "Email address is not verified. ...", SES's sandbox/identity check.

SES reports bounces and deliveries through SNS, not simulated: no receipts are sent.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import partial
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.ses import ACCOUNT_PATH, SEND_PATH, SIGNING_NAME, SesAccount
from simulators.common import Call, ProviderSpec, SimContext, provider_endpoint

MOUNT = "/ses"
ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
# How far a request's X-Amz-Date may be from the simulator's clock (AWS allows 5 minutes).
CLOCK_SKEW_SECONDS = 300
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
_AUTH_PART = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")
# What the simulated account reports (GetAccount): a production account's quota.
MAX_SEND_RATE = 14.0
MAX_24_HOUR_SEND = 50000.0


@dataclass(frozen=True)
class SentEmail:
    message_id: str
    tenant: str
    from_email: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    tags: dict[str, str]
    configuration_set: str
    sent_at: float


class Outbox:
    """Every mail the simulated SES accepted, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[SentEmail] = []

    def add(self, mail: SentEmail) -> None:
        with self._lock:
            self._items.append(mail)

    def list(self, tenant: str | None = None) -> list[SentEmail]:
        with self._lock:
            return [m for m in self._items if tenant in (None, m.tenant)]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_OUTBOXES: dict[int, Outbox] = {}


def outbox(ctx: SimContext) -> Outbox:
    """The outbox of this simulator app (cleared by its reset)."""
    key = id(ctx.state)
    found = _OUTBOXES.get(key)
    if found is None:
        found = _OUTBOXES[key] = Outbox()
        weakref.finalize(ctx.state, _OUTBOXES.pop, key, None)
        ctx.state.on_reset.append(found.clear)
    return found


def aws_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"message": message},
        status_code=status,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def error_for_status(status: int) -> Response:
    if status == 429:
        return aws_error(429, "TooManyRequestsException", "Too many requests")
    if status == 403:
        return aws_error(403, "UnrecognizedClientException", "The security token is invalid.")
    if status == 503:
        return aws_error(503, "ServiceUnavailable", "Service unavailable")
    if status >= 500:
        return aws_error(status, "InternalFailure", "The request processing has failed.")
    return aws_error(status, "BadRequestException", "Bad request")


def credential_parts(authorization: str) -> dict[str, str] | None:
    """Credential, SignedHeaders and Signature of a SigV4 Authorization header."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        return None
    parts = dict(_AUTH_PART.findall(rest))
    return parts if len(parts) == 3 else None


def _key_id(authorization: str) -> str | None:
    parts = credential_parts(authorization)
    return parts["Credential"].split("/", 1)[0] if parts else None


def find_account(ctx: SimContext, key_id: str) -> tuple[Tenant, SesAccount] | None:
    for tenant, account in ctx.accounts("ses", SesAccount):
        if hmac.compare_digest(account.access_key_id.encode(), key_id.encode()):
            return tenant, account
    return None


def authenticate(ctx: SimContext, headers: Mapping[str, str]) -> Tenant | None:
    """The tenant whose access key id signed the request (the signature is checked later)."""
    key_id = _key_id(headers.get("authorization", ""))
    found = find_account(ctx, key_id) if key_id else None
    return found[0] if found else None


SPEC = ProviderSpec(name="ses", authenticate=authenticate, error_for_status=error_for_status)


def expected_signature(
    call: Call, signed: list[str], *, secret: str, key_id: str, amz_date: str, region: str
) -> str:
    """The signature botocore computes over the request as it arrived."""
    headers = {name: call.request.headers.get(name, "") for name in signed}
    aws = AWSRequest(
        method=call.request.method, url=str(call.request.url), data=call.raw, headers=headers
    )
    aws.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key_id, secret), SIGNING_NAME, region)
    return str(signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws))


def _date_refusal(amz_date: str, scope_date: str, now: float) -> str | None:
    try:
        when = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return "X-Amz-Date is missing or malformed."
    if not amz_date.startswith(scope_date):
        return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date."
    if abs(now - when) > CLOCK_SKEW_SECONDS:
        return f"Signature expired: {amz_date} is now earlier or later than allowed."
    return None


def check_signature(ctx: SimContext, call: Call) -> tuple[Tenant, SesAccount] | Response:
    """The tenant and account that signed the request, or AWS's refusal."""
    authorization = call.request.headers.get("authorization")
    if not authorization:
        return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    parts = credential_parts(authorization)
    scope = parts["Credential"].split("/") if parts else []
    if parts is None or len(scope) != 5 or scope[4] != "aws4_request":
        return aws_error(403, "IncompleteSignatureException", "Authorization header is malformed.")
    key_id, scope_date, region, service, _ = scope
    found = find_account(ctx, key_id)
    if found is None:
        return aws_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    tenant, account = found
    if service != SIGNING_NAME:
        refusal: str | None = f"Credential should be scoped to correct service: '{SIGNING_NAME}'."
    elif region != account.region:
        refusal = "Credential should be scoped to a valid region."
    else:
        amz_date = call.request.headers.get("x-amz-date", "")
        refusal = _date_refusal(amz_date, scope_date, ctx.state.clock())
    if refusal is not None:
        return aws_error(403, "SignatureDoesNotMatch", refusal)
    signed = parts["SignedHeaders"].split(";")
    expected = expected_signature(
        call,
        signed,
        secret=account.secret_access_key.get_secret_value(),
        key_id=key_id,
        amz_date=call.request.headers["x-amz-date"],
        region=region,
    )
    if "host" not in signed or not hmac.compare_digest(expected, parts["Signature"]):
        return aws_error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    return tenant, account


def _text(part: Any, *path: str) -> str | None:
    for key in path:
        part = part.get(key) if isinstance(part, Mapping) else None
    return part if isinstance(part, str) else None


def _bad(message: str) -> JSONResponse:
    return aws_error(400, "BadRequestException", message)


def verified(sender: str, account: SesAccount) -> bool:
    """The account's identity: its own address, or any address of its domain."""
    address = parseaddr(sender)[1].lower()
    own = account.from_email.lower()
    return address == own or address.partition("@")[2] == own.partition("@")[2]


def read_mail(body: Any, account: SesAccount) -> dict[str, Any] | Response:
    """The fields of a SendEmail body SES would accept, or its refusal."""
    if not isinstance(body, Mapping):
        return _bad("Request body must be a JSON object.")
    sender = body.get("FromEmailAddress")
    destination = body.get("Destination")
    to = destination.get("ToAddresses") if isinstance(destination, Mapping) else None
    if not isinstance(sender, str) or not sender:
        return _bad("Missing required parameter FromEmailAddress.")
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and a for a in to):
        return _bad("Destination.ToAddresses must hold at least one address.")
    subject = _text(body, "Content", "Simple", "Subject", "Data")
    text = _text(body, "Content", "Simple", "Body", "Text", "Data")
    html = _text(body, "Content", "Simple", "Body", "Html", "Data")
    if subject is None or (text is None and html is None):
        return _bad("Content.Simple needs a Subject and a Text or Html Body.")
    if not verified(sender, account):
        return aws_error(
            400,
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in "
            f"region {account.region.upper()}: {parseaddr(sender)[1]}",
        )
    tags = body.get("EmailTags")
    return {
        "from_email": sender,
        "to": tuple(to),
        "subject": subject,
        "text": text or "",
        "html": html or "",
        "tags": {
            str(t.get("Name")): str(t.get("Value"))
            for t in (tags if isinstance(tags, list) else [])
            if isinstance(t, Mapping)
        },
        "configuration_set": str(body.get("ConfigurationSetName") or ""),
    }


def _send(ctx: SimContext, call: Call) -> Response:
    checked = check_signature(ctx, call)
    if isinstance(checked, Response):
        return checked
    tenant, account = checked
    fields = read_mail(call.body, account)
    if isinstance(fields, Response):
        return fields
    message_id = f"{int(time.time() * 1000):016x}-{uuid.uuid4()}-000000"
    mail = SentEmail(message_id=message_id, tenant=tenant.id, sent_at=ctx.state.clock(), **fields)
    outbox(ctx).add(mail)
    return JSONResponse({"MessageId": message_id}, headers={"x-amzn-RequestId": str(uuid.uuid4())})


def _get_account(ctx: SimContext, call: Call) -> Response:
    checked = check_signature(ctx, call)
    if isinstance(checked, Response):
        return checked
    tenant = checked[0]
    since = ctx.state.clock() - 86400
    sent = sum(len(m.to) for m in outbox(ctx).list(tenant.id) if m.sent_at >= since)
    return JSONResponse(
        {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendQuota": {
                "Max24HourSend": MAX_24_HOUR_SEND,
                "MaxSendRate": MAX_SEND_RATE,
                "SentLast24Hours": float(sent),
            },
            "SendingEnabled": True,
        }
    )


def _unknown(call: Call) -> Response:
    return aws_error(404, "UnknownOperationException", "Unknown operation")


def routes(ctx: SimContext) -> list[BaseRoute]:
    outbox(ctx)  # created with the app, so a reset clears it from the start
    return [
        Route(SEND_PATH, provider_endpoint(ctx, SPEC, partial(_send, ctx)), methods=["POST"]),
        Route(
            ACCOUNT_PATH,
            provider_endpoint(ctx, SPEC, partial(_get_account, ctx)),
            methods=["GET"],
        ),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _unknown, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
