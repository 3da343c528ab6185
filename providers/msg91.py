"""MSG91 (India): SMS through the Flow API v5, DLT-registered templates only.

Facts (../shared/providers.md section 8; control.msg91.com/apidoc/textsms/send-sms-flow.php,
msg91.com/help/dlt-registration-in-india):

- Send: `POST https://control.msg91.com/api/v5/flow/`, header `authkey: <auth key>`, JSON
  `{"template_id": "<MSG91 template id>", "short_url": "0", "recipients": [{"mobiles":
  "919XXXXXXXXX", "VAR1": "...", ...}]}`: mobile numbers are digits with the country code
  and no "+", each recipient's template variables sit beside its number. The legacy docs
  also take `sender` (sent here when the account names one; otherwise the template's).
- DLT (TRAI): the DLT content template id is mapped to the MSG91 template in MSG91's panel
  ("Map SMS Content Template on MSG91"), so a Flow call carries `template_id` only; the
  command's `dlt_template_id`/`dlt_entity_id` are not sent. Plain text cannot be sent: a
  SendSms without `template_id` is rejected before any call (`payload.text` is the rendered
  text for the message's story; MSG91 renders its own template).
- Answers: `{"type": "success", "message": "<request id>"}`: the request id is the
  message's reference and reappears in delivery reports. Errors are `{"type": "error",
  "message": ..., "code": ...}`; the HTTP status of an error is unconfirmed, so the body
  decides even under HTTP 200 (non-2xx goes through classify_failure: 5xx/429 retried).
- Error codes (msg91.com/help "Billing and Tech Alerts"; the v2 sample for 106; 302/303
  from the same code list as published by an MSG91 white-label reseller): 106 missing
  authentication key, 207 invalid authentication key, 301 insufficient balance, 302
  expired account, 303 banned account, 418 IP not whitelisted. That the Flow API answers
  with these same codes is unconfirmed.
- No rate limit is documented and there is no idempotency mechanism (the connector's
  ledger sends once).
- Test connection: `GET /api/balance.php?type=4`, the transactional route's balance as
  text (api.msg91.com/apidoc/basic/route-balance.php; MSG91 notes it works only with IP
  security enabled). Its docs put the key in the query (`?authkey=`); the hub sends the
  `authkey` header, as every v5 call does, to keep the key out of URLs and logs: that
  this legacy endpoint honours the header is unconfirmed.
- Delivery reports: see providers.msg91_receipts.
"""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    Rejected,
    classify_failure,
    json_or_empty,
)
from providers.msg91_receipts import (
    Msg91Verifier,
    event_id,
    event_type,
    normalize_msg91,
)
from providers.payments import UnsupportedOperationError
from providers.spec import API, Messaging, Provider, Webhooks
from schemas.events import ConnectorCommand, SendSms

FLOW_PATH = "/api/v5/flow/"
BALANCE_PATH = "/api/balance.php"
TRANSACTIONAL_ROUTE = "4"
NO_TEMPLATE = "MSG91 sends DLT-registered templates only: the message names no MSG91 template"
_NOT_DIGITS = re.compile(r"\D")

# Codes whose failure is the account's, not the message's (see the module docstring).
MISSING_AUTHKEY, INVALID_AUTHKEY = "106", "207"
INSUFFICIENT_BALANCE, EXPIRED_ACCOUNT, BANNED_ACCOUNT = "301", "302", "303"
IP_NOT_WHITELISTED = "418"
ACCOUNT_ERRORS = frozenset(
    {
        MISSING_AUTHKEY,
        INVALID_AUTHKEY,
        INSUFFICIENT_BALANCE,
        EXPIRED_ACCOUNT,
        BANNED_ACCOUNT,
        IP_NOT_WHITELISTED,
    }
)


class Msg91Account(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    authkey: SecretStr
    # A DLT-approved sender id (6 letters); "": the one the template is mapped to.
    sender: str = ""
    # The secret `token` of the delivery-report webhook URL set in MSG91's panel
    # (https://hub.example/webhooks/msg91/<tenant>?token=...): MSG91 signs nothing.
    webhook_token: SecretStr


def _account(tenant: Tenant, command: ConnectorCommand) -> Msg91Account:
    return tenant.account("msg91", Msg91Account, command.account)


def mobiles_of(number: str) -> str:
    """MSG91's form of a number: its digits, country code first, no "+" ("919876543210")."""
    return _NOT_DIGITS.sub("", number)


class Msg91:
    name = "msg91"
    category: Category = "sms"
    payload_type = SendSms

    def build_request(
        self, command: ConnectorCommand, payload: SendSms, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        if not payload.template_id:
            raise UnsupportedOperationError(NO_TEMPLATE)
        account = _account(tenant, command)
        recipient = {"mobiles": mobiles_of(payload.to)}
        recipient.update({k: v for k, v in payload.variables.items() if k != "mobiles"})
        body: dict[str, object] = {
            "template_id": payload.template_id,
            "short_url": "0",
            "recipients": [recipient],
        }
        if account.sender:
            body["sender"] = account.sender
        return httpx.Request(
            "POST",
            f"{base_url.rstrip('/')}{FLOW_PATH}",
            json=body,
            headers={"authkey": account.authkey.get_secret_value()},
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The transactional route's balance: a read only the account's own key may make."""
        account = tenant.account("msg91", Msg91Account, label)
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}{BALANCE_PATH}",
            params={"type": TRANSACTIONAL_ROUTE},
            headers={"authkey": account.authkey.get_secret_value()},
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # the authkey travels in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        status = response.status_code
        message = str(body.get("message") or "")
        code = body.get("code")
        error_code = str(code) if code not in (None, "") else None
        if 200 <= status < 300:
            if body.get("type") == "success" and message:
                return Delivered(message, status, {"request_id": message})
            if body.get("type") == "error":  # MSG91's "HTTP 200 but failed"
                return Rejected(message or "MSG91 refused the message", status, error_code)
            return Rejected(f"MSG91 answered {status} without a request id", status, None)
        return classify_failure(response, message or response.reason_phrase or "error", error_code)


PROVIDER = Provider(
    name="msg91",
    title="MSG91",
    category=Msg91.category,
    account_model=Msg91Account,
    adapter=Msg91(),
    base_urls={API: "https://control.msg91.com"},
    simulator_paths={API: "/msg91"},
    summary="SMS (India): Flow API v5 with DLT templates; delivery reports by URL token",
    docs_url="https://control.msg91.com/apidoc/textsms/send-sms-flow.php",
    webhooks=Webhooks(
        Msg91Verifier(),
        normalize_msg91,
        secret_field="webhook_token",  # noqa: S106 - a field name
        body_format="json",
        event_type=event_type,
        event_id=event_id,
    ),
    # No per-account rate limit is documented (providers.md section 8).
    # Flow sends DLT-registered templates only: a free-text SMS goes to another provider.
    messaging=Messaging(
        rate_per_second=None, receipts=True, account_errors=ACCOUNT_ERRORS, templates_only=True
    ),
)
