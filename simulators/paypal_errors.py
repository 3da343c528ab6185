"""PayPal's error bodies: `{"name", "message", "debug_id", "details": [...], "links"}`."""

from __future__ import annotations

import secrets
from http import HTTPStatus

from starlette.responses import JSONResponse, Response

MESSAGES = {
    "INVALID_REQUEST": "Request is not well-formed, syntactically incorrect, or violates schema.",
    "AUTHENTICATION_FAILURE": (
        "Authentication failed due to invalid authentication credentials or a missing "
        "Authorization header."
    ),
    "NOT_AUTHORIZED": "Authorization failed due to insufficient permissions.",
    "RESOURCE_NOT_FOUND": "The specified resource does not exist.",
    "UNPROCESSABLE_ENTITY": (
        "The requested action could not be performed, semantically incorrect, or failed "
        "business validation."
    ),
    "RATE_LIMIT_REACHED": "Too many requests. Blocked due to rate limiting.",
    "INTERNAL_SERVER_ERROR": "An internal server error occurred.",
    "SERVICE_UNAVAILABLE": "Service Unavailable.",
}
NAMES = {
    400: "INVALID_REQUEST",
    401: "AUTHENTICATION_FAILURE",
    403: "NOT_AUTHORIZED",
    404: "RESOURCE_NOT_FOUND",
    422: "UNPROCESSABLE_ENTITY",
    429: "RATE_LIMIT_REACHED",
    503: "SERVICE_UNAVAILABLE",
}
DOCS = "https://developer.paypal.com/api/rest/reference/orders/v2/errors/"


def _body(name: str, message: str) -> dict[str, object]:
    return {"name": name, "message": message, "debug_id": secrets.token_hex(7)}


def error(
    status: int,
    issue: str,
    description: str,
    field: str = "",
    location: str = "body",
    *,
    name: str | None = None,
) -> JSONResponse:
    """PayPal's error with one detail (the fine-grained reason is `details[0].issue`)."""
    kind = name or NAMES.get(status, "INTERNAL_SERVER_ERROR")
    detail: dict[str, str] = {"issue": issue, "description": description}
    if field:
        detail |= {"field": field, "location": location}
    body = _body(kind, MESSAGES.get(kind, kind)) | {
        "details": [detail],
        "links": [{"href": f"{DOCS}#{issue}", "rel": "information_link", "method": "GET"}],
    }
    return JSONResponse(body, status_code=status)


def invalid(issue: str, field: str, description: str, location: str = "body") -> JSONResponse:
    return error(400, issue, description, field, location)


def error_for_status(status: int) -> Response:
    """PayPal's answer for a bare status (auth failures, queued faults)."""
    if status == 401:
        link = "https://developer.paypal.com/docs/api/overview/#error"
        body = _body("AUTHENTICATION_FAILURE", MESSAGES["AUTHENTICATION_FAILURE"])
        body["links"] = [{"href": link, "rel": "information_link"}]
        return JSONResponse(body, status_code=401)
    name = NAMES.get(status) or ("INTERNAL_SERVER_ERROR" if status >= 500 else "")
    if not name:
        try:
            name = HTTPStatus(status).phrase.upper().replace(" ", "_")
        except ValueError:
            name = "INTERNAL_SERVER_ERROR"
    return JSONResponse(_body(name, MESSAGES.get(name, name)), status_code=status)
