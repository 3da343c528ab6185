"""The school's own mobile app backend: PUT /api/v1/students/{student_id}/profile.

A bearer API key per tenant. PUT replaces the profile, so a retry is harmless;
the command's key still travels as `Idempotency-Key` so the backend can dedupe
and log retries. Errors are `{"error": "<code>", "message": "..."}`.

Test connection: GET /api/v1/health with the same bearer key. The backend is the
school's own, so the hub defines it: 200 `{"status": "ok", ...}` for a valid key,
401 `{"error": "unauthorized", ...}` otherwise; it reads nothing about any student.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

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
from schemas.events import ConnectorCommand, UpdateAppProfile


class MobileAppAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr


class MobileApp:
    name = "mobileapp"
    category: Category = "profile"
    payload_type = UpdateAppProfile

    def build_request(
        self, command: ConnectorCommand, payload: UpdateAppProfile, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.account("mobileapp", MobileAppAccount, command.account)
        student = quote(payload.student_id, safe="")
        headers = {
            "Authorization": f"Bearer {account.api_key.get_secret_value()}",
            "Idempotency-Key": command.idempotency_key,
        }
        return httpx.Request(
            "PUT",
            f"{base_url.rstrip('/')}/api/v1/students/{student}/profile",
            json=dict(payload.profile),
            headers=headers,
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The backend's authenticated health check (no student data)."""
        account = tenant.account("mobileapp", MobileAppAccount, label)
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}/api/v1/health",
            headers={"Authorization": f"Bearer {account.api_key.get_secret_value()}"},
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code in (200, 201, 204):  # what a PUT may answer (RFC 9110)
            student_id = body.get("student_id") or _student_of(response)
            return Delivered(
                str(student_id) if student_id else None,
                response.status_code,
                {"updated_at": str(body.get("updated_at") or "")},
            )
        code = body.get("error")
        message = str(body.get("message") or response.reason_phrase or "error")
        return classify_failure(response, message, str(code) if code else None)


def _student_of(response: httpx.Response) -> str | None:
    """The student id from the request's path (/api/v1/students/{id}/profile)."""
    try:
        path = response.request.url.raw_path.decode("ascii").partition("?")[0]
    except RuntimeError:  # a response without its request
        return None
    parts = path.rstrip("/").split("/")  # split before unquoting: an id may hold a "/"
    return unquote(parts[-2]) if len(parts) >= 2 and parts[-1] == "profile" else None


PROVIDER = Provider(
    name="mobileapp",
    title="School mobile app",
    category=MobileApp.category,
    account_model=MobileAppAccount,
    adapter=MobileApp(),
    base_urls={API: "https://app.school.example"},
    simulator_paths={API: "/mobileapp"},
    summary="The school's own app backend: student profiles (seed 003)",
    docs_url="",
)
