"""Google Workspace Admin SDK Directory API: PATCH /admin/directory/v1/users/{userKey}.

Authenticated as a service account with domain-wide delegation: the JWT's `sub`
is the tenant's Workspace admin, the scope `admin.directory.user`. A PATCH sets
only the fields sent, so the command is naturally idempotent; note that `phones`
is a list and the PATCH replaces all of it with the one mobile number.

Google's errors: `{"error": {"code", "message", "status", "errors": [{"reason"}]}}`.
The Directory API answers rate limiting with 403 `rateLimitExceeded` /
`userRateLimitExceeded` (not 429), and Google asks callers to back off and retry
those, so they are RetryLater like a 429.

Test connection: GET /admin/directory/v1/users/{admin_email}, the admin the service
account acts for: it proves the key (token exchange), the delegation (`sub`) and the
scope at once, and changes nothing.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

import providers
from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    RetryLater,
    classify_failure,
    json_or_empty,
    parse_retry_after,
)
from providers.google_auth import TOKEN, TOKEN_URL, Clock, GoogleServiceAccount, ServiceAccountAuths
from providers.spec import API, Provider
from schemas.events import ConnectorCommand, UpdateDirectoryUser

SCOPES = ("https://www.googleapis.com/auth/admin.directory.user",)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


class GoogleWorkspaceAccount(GoogleServiceAccount):
    # Domain-wide delegation: the admin the service account acts for.
    admin_email: str


class GoogleWorkspace:
    name = "gworkspace"
    category: Category = "directory"
    payload_type = UpdateDirectoryUser

    def __init__(self, clock: Clock = time.time) -> None:
        self._auths = ServiceAccountAuths(SCOPES, clock)

    def build_request(
        self,
        command: ConnectorCommand,
        payload: UpdateDirectoryUser,
        tenant: Tenant,
        base_url: str,
    ) -> httpx.Request:
        self._account(tenant, command.account)
        phones: list[dict[str, Any]] = (
            [{"value": payload.mobile_phone, "type": "mobile", "primary": True}]
            if payload.mobile_phone
            else []
        )
        user_key = quote(payload.user_email, safe="@")
        return httpx.Request(
            "PATCH",
            f"{base_url.rstrip('/')}/admin/directory/v1/users/{user_key}",
            json={"phones": phones},
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """Read the delegated admin's own user: the token flow (auth) adds the credentials."""
        admin = quote(self._account(tenant, label).admin_email, safe="@")
        return httpx.Request("GET", f"{base_url.rstrip('/')}/admin/directory/v1/users/{admin}")

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        account = self._account(tenant, label)
        token_url = providers.base_url(settings, self.name, TOKEN)
        return self._auths.get(tenant.id, account, token_url, subject=account.admin_email)

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code == 200 and isinstance(body.get("id"), str):
            return Delivered(
                str(body["id"]),
                200,
                {
                    "etag": str(body.get("etag") or ""),
                    "primary_email": str(body.get("primaryEmail") or ""),
                },
            )
        raw_error = body.get("error")
        error: dict[str, object] = raw_error if isinstance(raw_error, dict) else {}
        errors = error.get("errors")
        first = (
            errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        )
        reason = str(first.get("reason") or "") or None
        message = str(error.get("message") or response.reason_phrase or "error")
        code = str(error.get("status") or "") or reason
        if response.status_code == 403 and reason in RATE_LIMIT_REASONS:
            return RetryLater(
                message, 403, code, parse_retry_after(response.headers.get("retry-after"))
            )
        return classify_failure(response, message, code)

    @staticmethod
    def _account(tenant: Tenant, label: str | None) -> GoogleWorkspaceAccount:
        return tenant.account("gworkspace", GoogleWorkspaceAccount, label)


PROVIDER = Provider(
    name="gworkspace",
    title="Google Workspace",
    category=GoogleWorkspace.category,
    account_model=GoogleWorkspaceAccount,
    adapter=GoogleWorkspace(),
    base_urls={API: "https://admin.googleapis.com", TOKEN: TOKEN_URL},
    simulator_paths={API: "/gworkspace", TOKEN: "/google/oauth2/token"},
    summary="Directory: Admin SDK users (phones), service account with domain-wide delegation",
    docs_url="https://developers.google.com/admin-sdk/directory/reference/rest/v1/users",
)
