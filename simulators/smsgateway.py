"""An SMS gateway's contact book (MSG91 style): `POST /v1/contacts/update`.

`authkey: <api key>` header; body `{"phone": "+91...", "studentId": "..."}`.
One contact per (tenant, studentId): an update replaces its phone. Answers are
`{"type": "success" | "error", "message": ...}`.

`GET /v1/account` answers the key's own account (the hub's test connection):
`{"type": "success", "message": ..., "account": {"name", "contacts"}}`, or 401.
"""

from __future__ import annotations

import hmac
import re
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.smsgateway import SmsGatewayAccount
from simulators.common import Call, ProviderSpec, SimContext, json_payload, provider_endpoint
from simulators.sync_state import iso_now

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_STUDENT_ID = 64


def reply(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"type": kind, "message": message}, status_code=status)


def failure(status: int, message: str) -> JSONResponse:
    return reply(status, "error", message)


def error_for_status(status: int) -> Response:
    if status == 401:
        return failure(401, "Authentication failure")
    if status == 429:
        return failure(429, "Too many requests")
    if status >= 500:
        return failure(status, "Internal server error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return failure(status, phrase)


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    key = headers.get("authkey", "").strip()
    if not key:
        return None
    for tenant, account in ctx.accounts("smsgateway", SmsGatewayAccount):
        if hmac.compare_digest(account.api_key.get_secret_value().encode(), key.encode()):
            return tenant
    return None


SPEC = ProviderSpec(name="smsgateway", authenticate=authenticate, error_for_status=error_for_status)


def _problem(body: Any) -> JSONResponse | None:
    if not isinstance(body, dict):
        return failure(400, "Request body must be a JSON object")
    for field in ("phone", "studentId"):
        if body.get(field) in (None, ""):
            return failure(400, f"Missing required field: {field}")
    student_id = body["studentId"]
    if not isinstance(student_id, str) or len(student_id) > MAX_STUDENT_ID:
        return failure(400, f"Invalid studentId: a string of at most {MAX_STUDENT_ID} characters")
    phone = body["phone"]
    if not isinstance(phone, str) or not E164.match(phone):
        return failure(400, "Invalid phone number")
    return None


def update_contact(ctx: SimContext, call: Call) -> Response:
    tenant = call.tenant
    if tenant is None:
        return failure(401, "Authentication failure")
    try:
        body = json_payload(call.raw)
    except (ValueError, UnicodeDecodeError):
        return failure(400, "Invalid JSON")
    problem = _problem(body)
    if problem is not None:
        return problem
    contact = {"studentId": body["studentId"], "phone": body["phone"], "updated_at": iso_now()}
    ctx.state.sync.contacts[(tenant.id, body["studentId"])] = contact
    return reply(200, "success", "Contact updated")


def account(ctx: SimContext, call: Call) -> Response:
    tenant = call.tenant
    if tenant is None:
        return failure(401, "Authentication failure")
    contacts = sum(1 for tenant_id, _ in ctx.state.sync.contacts if tenant_id == tenant.id)
    body = {"name": tenant.name or tenant.id, "contacts": contacts}
    return JSONResponse({"type": "success", "message": "Account details", "account": body})


def _not_found(call: Call) -> Response:
    return failure(404, "Not found")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/smsgateway"


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route(
            "/v1/contacts/update",
            provider_endpoint(ctx, SPEC, lambda c: update_contact(ctx, c)),
            methods=["POST"],
        ),
        Route(
            "/v1/account", provider_endpoint(ctx, SPEC, lambda c: account(ctx, c)), methods=["GET"]
        ),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
