"""The SMS gateway's contact book: POST /v1/contacts/update with an `authkey` header.

Keeps the gateway's copy of a student's contact number current, so bulk sends
reach the right parent. Updating a contact to the same number twice is
harmless, so retries are safe.

The gateway answers `{"type": "success", "message": ...}` or
`{"type": "error", "message": ...}`, and it sometimes reports an error with
HTTP 200: only `type: success` counts as delivered; a 200 with an error is
Rejected (a 200 is never worth retrying).
"""

from __future__ import annotations

import json

import httpx

from connectors.base import (
    Category,
    Delivered,
    MissingCredentialsError,
    Outcome,
    classify_failure,
    json_or_empty,
)
from core.settings import Settings
from core.tenants import Tenant
from schemas.events import ConnectorCommand, UpdateSmsContact


class SmsGateway:
    name = "smsgateway"
    category: Category = "contacts"
    payload_type = UpdateSmsContact

    def build_request(
        self, command: ConnectorCommand, payload: UpdateSmsContact, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.smsgateway
        if account is None:
            raise MissingCredentialsError(f"tenant {tenant.id!r} has no SMS gateway API key")
        return httpx.Request(
            "POST",
            f"{base_url.rstrip('/')}/v1/contacts/update",
            json={"phone": payload.phone, "studentId": payload.student_id},
            headers={"authkey": account.api_key.get_secret_value()},
        )

    def auth(self, tenant: Tenant, settings: Settings) -> httpx.Auth | None:
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
