"""Razorpay's error bodies and the key a request authenticated with (shared by its routes)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response

from simulators.common import Call, basic_credentials

AUTH_FAILED = "Authentication failed"

_VALIDATION = {"source": "business", "step": "payment_initiation"}


def error(
    status: int,
    description: str,
    *,
    code: str = "BAD_REQUEST_ERROR",
    field: str | None = None,
    source: str = "NA",
    step: str = "NA",
    reason: str = "NA",
) -> JSONResponse:
    body: dict[str, Any] = {
        "code": code,
        "description": description,
        "source": source,
        "step": step,
        "reason": reason,
        "metadata": {},
    }
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def invalid(description: str, field: str, reason: str = "input_validation_failed") -> JSONResponse:
    return error(400, description, field=field, reason=reason, **_VALIDATION)


def error_for_status(status: int) -> Response:
    if status >= 500:
        return error(
            status,
            "The server encountered an error. The incident has been reported to admins.",
            code="SERVER_ERROR",
        )
    if status == 401:
        return error(401, "Authentication failed")
    if status == 429:
        return error(429, "Too many requests")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, phrase)


def key_id_of(call: Call) -> str | None:
    """The key id the (already authenticated) request used: orders belong to it."""
    creds = basic_credentials(call.request.headers)
    return creds[0] if call.tenant is not None and creds is not None else None
