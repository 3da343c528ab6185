"""Cashfree's error bodies and the gate every API call passes (shared by its routes)."""

from __future__ import annotations

from http import HTTPStatus

from starlette.responses import JSONResponse, Response

from simulators.common import Call

INVALID = "invalid_request_error"


def error(status: int, message: str, code: str, kind: str = INVALID) -> JSONResponse:
    return JSONResponse({"message": message, "code": code, "type": kind}, status_code=status)


def error_for_status(status: int) -> Response:
    if status >= 500:
        return error(status, "internal server error", "internal_error", "api_error")
    if status == 401:
        return error(401, "authentication Failed", "request_failed", "authentication_error")
    if status == 429:
        return error(429, "Too many requests", "request_failed", "rate_limit_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return error(status, phrase, "request_failed")


def gate(call: Call) -> Response | str:
    """The client id of an authenticated, versioned request, or Cashfree's error."""
    if call.tenant is None:
        return error_for_status(401)
    if not call.request.headers.get("x-api-version"):
        return error(400, "x-api-version missing in the header", "request_failed")
    return call.request.headers["x-client-id"]
