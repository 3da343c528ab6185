"""Twilio Programmable Messaging: POST /2010-04-01/Accounts/{sid}/Messages.json.

HTTP Basic with the account SID and auth token, form-encoded To/From/Body.
Twilio has no idempotency key for sending, so the connector's ledger (the
compacted results topic) is what keeps a redelivered command from sending twice.
"""

from __future__ import annotations

import httpx

from connectors.base import (
    Category,
    Delivered,
    MissingCredentialsError,
    Outcome,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from hub.settings import Settings
from hub.tenants import Tenant
from schemas.events import ConnectorCommand, SendSms


class Twilio:
    name = "twilio"
    category: Category = "sms"
    payload_type = SendSms

    def build_request(
        self, command: ConnectorCommand, payload: SendSms, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.twilio
        if account is None:
            raise MissingCredentialsError(f"tenant {tenant.id!r} has no Twilio account")
        url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account.account_sid}/Messages.json"
        form = {"To": payload.to, "From": account.from_number, "Body": payload.text}
        auth = basic_auth(account.account_sid, account.auth_token.get_secret_value())
        return httpx.Request("POST", url, data=form, headers=auth)

    def auth(self, tenant: Tenant, settings: Settings) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code in (200, 201) and isinstance(body.get("sid"), str):
            return Delivered(
                str(body["sid"]),
                response.status_code,
                {
                    "status": str(body.get("status") or ""),
                    "num_segments": str(body.get("num_segments") or ""),
                },
            )
        code = body.get("code")
        message = str(body.get("message") or response.reason_phrase or "error")
        return classify_failure(response, message, str(code) if code is not None else None)
