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

Test connection: the same send with `"validate_only": true` to a topic nobody
subscribes to. FCM checks the token, the project and the message and answers as
for a send, but delivers nothing (FCM has no read-only call to test with).
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote

import httpx

import providers
from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    classify_failure,
    json_or_empty,
)
from providers.google_auth import TOKEN, TOKEN_URL, Clock, GoogleServiceAccount, ServiceAccountAuths
from providers.spec import API, Provider
from schemas.events import ConnectorCommand, SendPush

SCOPES = ("https://www.googleapis.com/auth/firebase.messaging",)
PROBE_TOPIC = "hub-connection-test"


def collapse_tag(idempotency_key: str) -> str:
    """The same for every send of one command; apns-collapse-id allows 64 bytes."""
    return "hub-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


class FcmAccount(GoogleServiceAccount):
    project_id: str


class Fcm:
    name = "fcm"
    category: Category = "push"
    payload_type = SendPush

    def __init__(self, clock: Clock = time.time) -> None:
        self._auths = ServiceAccountAuths(SCOPES, clock)

    def build_request(
        self, command: ConnectorCommand, payload: SendPush, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
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

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """A validate-only send: checked by FCM like a real one, delivered to nobody."""
        project = quote(self._account(tenant, label).project_id, safe="")
        body = {
            "validate_only": True,
            "message": {
                "topic": PROBE_TOPIC,
                "notification": {"title": "Connection test", "body": "Not delivered"},
            },
        }
        return httpx.Request(
            "POST", f"{base_url.rstrip('/')}/v1/projects/{project}/messages:send", json=body
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        token_url = providers.base_url(settings, self.name, TOKEN)
        return self._auths.get(tenant.id, self._account(tenant, label), token_url)

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
    def _account(tenant: Tenant, label: str | None) -> FcmAccount:
        return tenant.account("fcm", FcmAccount, label)


PROVIDER = Provider(
    name="fcm",
    title="Firebase Cloud Messaging",
    category=Fcm.category,
    account_model=FcmAccount,
    adapter=Fcm(),
    base_urls={API: "https://fcm.googleapis.com", TOKEN: TOKEN_URL},
    simulator_paths={API: "/fcm", TOKEN: "/google/oauth2/token"},
    summary="Push: FCM HTTP v1 to a topic, with a collapse tag per command",
    docs_url="https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages",
)
