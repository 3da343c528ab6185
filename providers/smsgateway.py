"""The SMS gateway's contact book: POST /v1/contacts/update with an `authkey` header.

Keeps the gateway's copy of a student's contact number current, so bulk sends
reach the right parent. Updating a contact to the same number twice is
harmless, so retries are safe.

The gateway answers `{"type": "success", "message": ...}` or
`{"type": "error", "message": ...}`, and it sometimes reports an error with
HTTP 200: only `type: success` counts as delivered; a 200 with an error is
Rejected (a 200 is never worth retrying).

Test connection: GET /v1/account with the same `authkey`: the key's own account
(`{"type": "success", "account": {...}}`), changing no contact. The probe reads the
HTTP status: the gateway refuses a bad key with 401 `{"type": "error", ...}`.
"""

from __future__ import annotations

import json

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    classify_failure,
    json_or_empty,
)
from providers.spec import API, Provider
from schemas.events import ConnectorCommand, UpdateSmsContact


class SmsGatewayAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr


class SmsGateway:
    name = "smsgateway"
    category: Category = "contacts"
    payload_type = UpdateSmsContact

    def build_request(
        self, command: ConnectorCommand, payload: UpdateSmsContact, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.account("smsgateway", SmsGatewayAccount, command.account)
        return httpx.Request(
            "POST",
            f"{base_url.rstrip('/')}/v1/contacts/update",
            json={"phone": payload.phone, "studentId": payload.student_id},
            headers={"authkey": account.api_key.get_secret_value()},
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The key's own account: a read that changes no contact."""
        account = tenant.account("smsgateway", SmsGatewayAccount, label)
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}/v1/account",
            headers={"authkey": account.api_key.get_secret_value()},
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        message = str(body.get("message") or "")
        if response.status_code == 200 and body.get("type") == "success":
            return Delivered(_student_of(response), 200, {"message": message})
        code = body.get("code")
        reason = message or response.reason_phrase or "error"
        return classify_failure(response, reason, str(code) if code is not None else None)


def _student_of(response: httpx.Response) -> str | None:
    """The gateway echoes nothing useful back: the student id is the one the request sent."""
    try:
        sent = json.loads(response.request.content)
    except (RuntimeError, ValueError):  # a response without its request, or no JSON body
        return None
    student_id = sent.get("studentId") if isinstance(sent, dict) else None
    return str(student_id) if student_id is not None else None


PROVIDER = Provider(
    name="smsgateway",
    title="SMS gateway contact book",
    category=SmsGateway.category,
    account_model=SmsGatewayAccount,
    adapter=SmsGateway(),
    base_urls={API: "https://api.smsgateway.example"},
    simulator_paths={API: "/smsgateway"},
    summary="The SMS gateway's contact book: guardian phones (seed 003)",
    docs_url="",
)
