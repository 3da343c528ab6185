"""The school's own mobile app backend: `PUT /api/v1/students/{student_id}/profile`.

`Authorization: Bearer <api key>`; the body is an object of profile fields
(string or null) merged into the student's stored profile. A null is stored as
null (the field is cleared, not removed). Errors are
`{"error": "<code>", "message": "..."}`.

`GET /api/v1/health` is the authenticated health check the hub's test connection
calls: `{"status": "ok", "service": "mobileapp", "time": ...}` for a valid key, 401
otherwise.
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
from providers.mobileapp import MobileAppAccount
from simulators.common import (
    Call,
    ProviderSpec,
    SimContext,
    bearer_token,
    json_payload,
    provider_endpoint,
)
from simulators.sync_state import iso_now

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_FIELDS = 100


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="mobileapp"'} if status == 401 else None
    return JSONResponse(
        {"error": code, "message": message, **extra}, status_code=status, headers=headers
    )


def error_for_status(status: int) -> Response:
    if status == 401:
        return error(401, "unauthorized", "invalid API key")
    if status == 429:
        return error(429, "rate_limited", "too many requests, slow down")
    if status == 503:
        return error(503, "unavailable", "the service is temporarily unavailable")
    if status >= 500:
        return error(status, "internal_error", "something went wrong on our side")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return error(status, phrase.lower().replace(" ", "_").replace("-", "_"), phrase)


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    key = bearer_token(headers)
    if key is None:
        return None
    for tenant, account in ctx.accounts("mobileapp", MobileAppAccount):
        if hmac.compare_digest(account.api_key.get_secret_value().encode(), key.encode()):
            return tenant
    return None


SPEC = ProviderSpec(name="mobileapp", authenticate=authenticate, error_for_status=error_for_status)


def _problem(body: Any) -> JSONResponse | None:
    if not isinstance(body, dict):
        return error(400, "bad_request", "request body must be a JSON object of profile fields")
    if len(body) > MAX_FIELDS:
        return error(400, "bad_request", f"a profile has at most {MAX_FIELDS} fields")
    for key, value in body.items():
        if not key.strip():
            return error(400, "bad_request", "field names must not be empty")
        if value is not None and not isinstance(value, str):
            return error(400, "bad_request", f"field '{key}' must be a string or null")
    phone = body.get("phone")
    if phone is not None and not E164.match(phone):
        return error(
            422,
            "invalid_phone",
            "phone must be in E.164 format, e.g. +919876543210",
            field="phone",
        )
    return None


def put_profile(ctx: SimContext, call: Call) -> Response:
    tenant = call.tenant
    if tenant is None:
        return error(401, "unauthorized", "invalid API key")
    try:
        body = json_payload(call.raw)
    except (ValueError, UnicodeDecodeError):
        return error(400, "bad_request", "request body is not valid JSON")
    problem = _problem(body)
    if problem is not None:
        return problem
    student_id = call.request.path_params["student_id"]
    key = (tenant.id, student_id)
    stored = ctx.state.sync.profiles.get(key, {}).get("profile", {})
    record = {"student_id": student_id, "profile": {**stored, **body}, "updated_at": iso_now()}
    ctx.state.sync.profiles[key] = record
    return JSONResponse(record)


def get_profile(ctx: SimContext, call: Call) -> Response:
    if call.tenant is None:
        return error(401, "unauthorized", "invalid API key")
    student_id = call.request.path_params["student_id"]
    record = ctx.state.sync.profiles.get((call.tenant.id, student_id))
    if record is None:
        return error(404, "not_found", f"no profile for student {student_id}")
    return JSONResponse(record)


def health(call: Call) -> Response:
    if call.tenant is None:
        return error(401, "unauthorized", "invalid API key")
    return JSONResponse({"status": "ok", "service": "mobileapp", "time": iso_now()})


def _not_found(call: Call) -> Response:
    return error(404, "not_found", "no such endpoint")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/mobileapp"


def routes(ctx: SimContext) -> list[BaseRoute]:
    path = "/api/v1/students/{student_id}/profile"
    return [
        Route(path, provider_endpoint(ctx, SPEC, lambda c: put_profile(ctx, c)), methods=["PUT"]),
        Route(path, provider_endpoint(ctx, SPEC, lambda c: get_profile(ctx, c)), methods=["GET"]),
        Route("/api/v1/health", provider_endpoint(ctx, SPEC, health), methods=["GET"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
