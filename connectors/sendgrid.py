"""SendGrid v3 Mail Send: POST /v3/mail/send with a bearer API key; 202 + X-Message-Id.

SendGrid has no idempotency key either; the command's key travels in
`custom_args`, so SendGrid's event webhooks can be tied back to the command.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import (
    Category,
    Delivered,
    MissingCredentialsError,
    Outcome,
    classify_failure,
    json_or_empty,
)
from hub.settings import Settings
from hub.tenants import Tenant
from schemas.events import ConnectorCommand, SendEmail


class SendGrid:
    name = "sendgrid"
    category: Category = "email"
    payload_type = SendEmail

    def build_request(
        self, command: ConnectorCommand, payload: SendEmail, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.sendgrid
        if account is None:
            raise MissingCredentialsError(f"tenant {tenant.id!r} has no SendGrid account")
        recipient: dict[str, str] = {"email": payload.to}
        if payload.to_name:
            recipient["name"] = payload.to_name
        sender = {
            "email": account.from_email,
            **({"name": account.from_name} if account.from_name else {}),
        }
        content: list[dict[str, Any]] = [{"type": "text/plain", "value": payload.text}]
        if payload.html:
            content.append({"type": "text/html", "value": payload.html})
        body = {
            "personalizations": [{"to": [recipient]}],
            "from": sender,
            "subject": payload.subject,
            "content": content,
            "custom_args": {
                "idempotency_key": command.idempotency_key,
                "command_id": command.command_id,
            },
        }
        headers = {"Authorization": f"Bearer {account.api_key.get_secret_value()}"}
        return httpx.Request(
            "POST", f"{base_url.rstrip('/')}/v3/mail/send", json=body, headers=headers
        )

    def auth(self, tenant: Tenant, settings: Settings) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        if response.status_code == 202:
            message_id = response.headers.get("x-message-id")
            return Delivered(message_id, 202, {"message_id": message_id or ""})
        errors = json_or_empty(response).get("errors")
        first = (
            errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        )
        reason = str(first.get("message") or response.reason_phrase or "error")
        field = first.get("field")
        return classify_failure(response, reason, f"field:{field}" if field else None)
