"""Africa's Talking SMS: POST /version1/messaging, form-encoded, `apiKey` header.

Facts (../shared/providers.md section 9; the official SDK, africastalking 2.0.3,
`Service.py` and `SMS.py`):

- Base URL `https://api.africastalking.com`; an app whose username is "sandbox" lives on
  `https://api.sandbox.africastalking.com` instead. The adapter uses the configured base
  URL, so a sandbox account is pointed there with
  `HUB_PROVIDER_BASE_URLS='{"africastalking": "https://api.sandbox.africastalking.com"}'`.
- Send: `POST /version1/messaging`, headers `apiKey: <key>` and `Accept: application/json`,
  form fields `username`, `to` (E.164), `message`, `from` (the account's sender id or
  shortcode, only when it has one) and `bulkSMSMode=1`, as the SDK sends them.
- Answer (HTTP 201, the SDK accepts any 2xx; the exact status is unconfirmed):
  `{"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000", "Recipients":
  [{"statusCode": 101, "number": "+254712345678", "status": "Success", "cost": "KES 0.8000",
  "messageId": "ATXid_..."}]}}`. `messageId` is the provider_ref. Per-recipient codes (the
  list is unconfirmed): 100 Processed, 101 Success, 102 Queued -> Delivered; 401 RiskHold,
  402 InvalidSenderId, 403 InvalidPhoneNumber, 405 InsufficientBalance, 406
  UserInBlacklist, 407 CouldNotRoute -> Rejected (error_code the code); 500, 501, 502
  (server and gateway errors) -> RetryLater. RiskHold and InsufficientBalance are the
  account's (account_errors).
- Errors outside the envelope (a wrong apiKey: HTTP 401 with a text body) go through
  classify_failure with no code (unconfirmed wording).
- No rate limit is documented and there is no idempotency mechanism.
- Test connection: `GET /version1/user?username=...`, the app's balance (the SDK's
  `Application.fetch_application_data`).
- Delivery reports: see providers.africastalking_receipts.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.africastalking_receipts import (
    AfricasTalkingVerifier,
    event_id,
    event_type,
    normalize_africastalking,
)
from providers.base import (
    Category,
    Delivered,
    Outcome,
    Rejected,
    RetryLater,
    classify_failure,
    json_or_empty,
)
from providers.spec import API, Messaging, Provider, Webhooks
from schemas.events import ConnectorCommand, SendSms

MESSAGING_PATH = "/version1/messaging"
USER_PATH = "/version1/user"
SENT_CODES = frozenset({100, 101, 102})  # Processed, Success, Queued
RETRY_CODES = frozenset({500, 501, 502})  # InternalServerError, InternalSandboxError, GatewayError
RISK_HOLD, INSUFFICIENT_BALANCE = "401", "405"
ACCOUNT_ERRORS = frozenset({RISK_HOLD, INSUFFICIENT_BALANCE})
REASON_LIMIT = 200


class AfricasTalkingAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str  # the app's username ("sandbox" for the sandbox app)
    api_key: SecretStr
    sender_id: str = ""  # a registered alphanumeric sender id or shortcode; "": the default
    # The secret `token` of the delivery-report callback URL set in the dashboard
    # (https://hub.example/webhooks/africastalking/<tenant>?token=...): nothing is signed.
    webhook_token: SecretStr


def _account(tenant: Tenant, command: ConnectorCommand) -> AfricasTalkingAccount:
    return tenant.account("africastalking", AfricasTalkingAccount, command.account)


def _headers(account: AfricasTalkingAccount) -> dict[str, str]:
    return {"apiKey": account.api_key.get_secret_value(), "Accept": "application/json"}


def _text_reason(response: httpx.Response) -> str:
    """Africa's Talking answers errors in plain text: its first line, short."""
    try:
        text = response.text.strip()
    except UnicodeDecodeError:
        text = ""
    line = text.splitlines()[0] if text else ""
    return line[:REASON_LIMIT] or response.reason_phrase or "error"


def _status_code(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


class AfricasTalking:
    name = "africastalking"
    category: Category = "sms"
    payload_type = SendSms

    def build_request(
        self, command: ConnectorCommand, payload: SendSms, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = _account(tenant, command)
        form = {
            "username": account.username,
            "to": payload.to,
            "message": payload.text,
            "bulkSMSMode": "1",
        }
        if account.sender_id:
            form["from"] = account.sender_id
        return httpx.Request(
            "POST",
            f"{base_url.rstrip('/')}{MESSAGING_PATH}",
            data=form,
            headers=_headers(account),
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The app's own data (its balance): a read only its key may make."""
        account = tenant.account("africastalking", AfricasTalkingAccount, label)
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}{USER_PATH}",
            params={"username": account.username},
            headers=_headers(account),
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # the apiKey travels in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if not 200 <= status < 300:
            return classify_failure(response, _text_reason(response), None)
        found = json_or_empty(response).get("SMSMessageData")
        data = found if isinstance(found, dict) else {}
        recipients = data.get("Recipients")
        first = recipients[0] if isinstance(recipients, list) and recipients else None
        if not isinstance(first, dict):
            # No recipient at all: the envelope's Message says why ("InvalidSenderId").
            message = str(data.get("Message") or "no SMSMessageData.Recipients")
            token = message if message.isalnum() else None
            return Rejected(f"Africa's Talking sent to no recipient: {message}", status, token)
        code = _status_code(first.get("statusCode"))
        word = str(first.get("status") or "")
        message_id = first.get("messageId")
        if code in SENT_CODES and isinstance(message_id, str) and message_id:
            details = {
                "status": word,
                "status_code": str(code),
                "cost": str(first.get("cost") or ""),
                "number": str(first.get("number") or ""),
            }
            return Delivered(message_id, status, details)
        reason = f"{word or 'failed'} (statusCode {code})"
        if code in RETRY_CODES:
            return RetryLater(reason, status, str(code))
        return Rejected(reason, status, str(code) if code is not None else None)


PROVIDER = Provider(
    name="africastalking",
    title="Africa's Talking",
    category=AfricasTalking.category,
    account_model=AfricasTalkingAccount,
    adapter=AfricasTalking(),
    base_urls={API: "https://api.africastalking.com"},
    simulator_paths={API: "/africastalking"},
    summary="SMS (Africa): bulk messaging API; delivery reports by URL token",
    docs_url="https://developers.africastalking.com/docs/sms/sending/bulk",
    webhooks=Webhooks(
        AfricasTalkingVerifier(),
        normalize_africastalking,
        secret_field="webhook_token",  # noqa: S106 - a field name
        body_format="form",
        event_type=event_type,
        event_id=event_id,
    ),
    # No per-account rate limit is documented (providers.md section 9).
    messaging=Messaging(rate_per_second=None, receipts=True, account_errors=ACCOUNT_ERRORS),
)
