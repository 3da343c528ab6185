"""Firebase Cloud Messaging HTTP v1: POST /v1/projects/{project_id}/messages:send.

Authenticated as a service account (scope `firebase.messaging`, no `sub`).
Push messages go to a topic the parent app subscribes to. FCM has no
idempotency key and no way to ask whether a message was sent, so a command in
doubt (its worker died during the call) is sent again. What keeps the parent
from seeing it twice is FCM's own collapsing: each message carries a tag
derived from the command's idempotency key (`android.notification.tag`,
`apns-collapse-id`), and a second message with the same tag replaces the
first on the device instead of adding another.

FCM's errors are Google's shape plus an FCM code in `details[].errorCode`
(UNREGISTERED, INVALID_ARGUMENT, QUOTA_EXCEEDED, UNAVAILABLE, ...). Whether to
retry follows the HTTP status (QUOTA_EXCEEDED comes as 429 with Retry-After,
UNAVAILABLE as 503); the code is kept for the result.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote

import httpx

from connectors.base import (
    Category,
    Delivered,
    MissingCredentialsError,
    Outcome,
    classify_failure,
    json_or_empty,
)
from connectors.google_auth import Clock, ServiceAccountAuths
from core.settings import Settings
from core.tenants import FcmAccount, Tenant
from schemas.events import ConnectorCommand, SendPush

SCOPES = ("https://www.googleapis.com/auth/firebase.messaging",)


def collapse_tag(idempotency_key: str) -> str:
    """The same for every send of one command; apns-collapse-id allows 64 bytes."""
    return "hub-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


class Fcm:
    name = "fcm"
    category: Category = "push"
    payload_type = SendPush

    def __init__(self, clock: Clock = time.time) -> None:
        self._auths = ServiceAccountAuths(SCOPES, clock)

    def build_request(
        self, command: ConnectorCommand, payload: SendPush, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = self._account(tenant)
        tag = collapse_tag(command.idempotency_key)
        body = {
            "message": {
                "topic": payload.topic,
                "notification": {"title": payload.title, "body": payload.body},
                "data": dict(payload.data),
                "android": {"collapse_key": tag, "notification": {"tag": tag}},
                "apns": {"headers": {"apns-collapse-id": tag}},
            }
        }
        project = quote(account.project_id, safe="")
        return httpx.Request(
            "POST", f"{base_url.rstrip('/')}/v1/projects/{project}/messages:send", json=body
        )

    def auth(self, tenant: Tenant, settings: Settings) -> httpx.Auth | None:
        return self._auths.get(tenant.id, self._account(tenant), settings.google_token_url)

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code == 200 and isinstance(body.get("name"), str):
            name = str(body["name"])
            return Delivered(name, 200, {"message_name": name})
        raw_error = body.get("error")
        error: dict[str, object] = raw_error if isinstance(raw_error, dict) else {}
        details = error.get("details")
        fcm_code = next(
            (
                str(d["errorCode"])
                for d in (details if isinstance(details, list) else [])
                if isinstance(d, dict) and d.get("errorCode")
            ),
            None,
        )
        message = str(error.get("message") or response.reason_phrase or "error")
        return classify_failure(
            response, message, fcm_code or str(error.get("status") or "") or None
        )

    @staticmethod
    def _account(tenant: Tenant) -> FcmAccount:
        if tenant.fcm is None:
            raise MissingCredentialsError(f"tenant {tenant.id!r} has no Firebase (FCM) account")
        return tenant.fcm
