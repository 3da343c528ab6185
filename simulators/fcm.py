"""Firebase Cloud Messaging HTTP v1: `POST /v1/projects/{project_id}/messages:send`.

Bearer access tokens come from the simulated token endpoint, issued for the
tenant's FCM service account; errors are Google's shape with an FCM error code
in `details`.
"""

from __future__ import annotations

import re
import secrets
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from providers.fcm import FcmAccount
from simulators.common import Call, ProviderSpec, SimContext, json_payload, provider_endpoint
from simulators.google_api import (
    UNAUTHENTICATED,
    check_token,
    google_error,
    insufficient_scope,
    token_tenant,
    unauthenticated,
)
from simulators.sync_state import AccessToken

MESSAGING_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
TARGETS = ("token", "topic", "condition")
MESSAGE_FIELDS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options", *TARGETS}
)
NOTIFICATION_FIELDS = frozenset({"title", "body", "image"})
TOPIC = re.compile(r"^(/topics/)?[a-zA-Z0-9\-_.~%]{1,900}$")
RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})


def error(code: int, message: str, fcm_code: str | None) -> JSONResponse:
    details = [{"@type": FCM_ERROR, "errorCode": fcm_code}] if fcm_code else None
    return google_error(code, message, details=details)


def invalid(message: str) -> JSONResponse:
    return error(400, message, "INVALID_ARGUMENT")


def error_for_status(status: int) -> Response:
    known = {
        400: ("Request contains an invalid argument.", "INVALID_ARGUMENT"),
        403: ("SenderId mismatch", "SENDER_ID_MISMATCH"),
        404: ("Requested entity was not found.", "UNREGISTERED"),
        429: ("Quota exceeded for the Firebase Cloud Messaging API.", "QUOTA_EXCEEDED"),
        500: ("Internal error encountered.", "INTERNAL"),
        503: ("The service is currently unavailable.", "UNAVAILABLE"),
    }
    if status == 401:
        return google_error(401, UNAUTHENTICATED)
    if status in known:
        return error(status, *known[status])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, phrase, "UNAVAILABLE" if status >= 500 else "UNSPECIFIED_ERROR")


SPEC = ProviderSpec(name="fcm", authenticate=token_tenant, error_for_status=error_for_status)


def _target_problem(message: dict[str, Any]) -> str | None:
    targets = [t for t in TARGETS if message.get(t) is not None]
    if not targets:
        return "Recipient of the message is not set."
    if len(targets) > 1:
        return (
            "Invalid value at 'message' (oneof), oneof field 'target' is already set. "
            f"Cannot set '{targets[1]}'"
        )
    target = targets[0]
    value = message[target]
    if not isinstance(value, str) or not value.strip():
        return f"Invalid value at 'message.{target}' (TYPE_STRING), {value!r}"
    if target == "topic" and not TOPIC.match(value):
        return f"Invalid topic name: {value}"
    return None


def _notification_problem(message: dict[str, Any]) -> str | None:
    notification = message.get("notification")
    if notification is None:
        return None
    if not isinstance(notification, dict):
        return "Invalid value at 'message.notification' (type.googleapis.com/Notification)"
    for key, value in notification.items():
        if key not in NOTIFICATION_FIELDS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'message.notification': Cannot find field."
            )
        if not isinstance(value, str):
            return f"Invalid value at 'message.notification.{key}' (TYPE_STRING), {value!r}"
    return None


def _data_problem(message: dict[str, Any]) -> str | None:
    data = message.get("data")
    if data is None:
        return None
    if not isinstance(data, dict):
        return "Invalid value at 'message.data' (map<string, string>)"
    for i, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            return f"Invalid value at 'message.data[{i}].value' (TYPE_STRING), {value!r}"
        if key in RESERVED_DATA_KEYS or key.startswith(("google", "gcm")):
            return f"Invalid data payload key: {key}"
    return None


def validate(body: Any) -> str | None:
    """FCM's message for an invalid send body, or None when it is valid."""
    if not isinstance(body, dict):
        return 'Invalid JSON payload received. Unknown name "": Root element must be a message.'
    unknown = sorted(set(body) - {"message", "validate_only"})
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    message = body.get("message")
    if not isinstance(message, dict):
        return "Request contains an invalid argument: 'message' is required."
    extra = sorted(set(message) - MESSAGE_FIELDS)
    if extra:
        return (
            f"Invalid JSON payload received. Unknown name \"{extra[0]}\" at 'message': "
            "Cannot find field."
        )
    for check in (_target_problem, _notification_problem, _data_problem):
        problem = check(message)
        if problem is not None:
            return problem
    return None


def _authorize(ctx: SimContext, call: Call, project: str) -> Response | None:
    """401/403 unless the token is live, holds the scope and belongs to `project`'s account."""
    scopes = frozenset({MESSAGING_SCOPE, CLOUD_PLATFORM_SCOPE})
    checked = check_token(ctx, call.request.headers, scopes)
    if not isinstance(checked, AccessToken):
        if checked == "unauthenticated":
            return unauthenticated(call.request.headers, reason=None)
        return insufficient_scope(MESSAGING_SCOPE, reason=None)
    tenant = ctx.tenants.get(checked.tenant)
    projects = {a.project_id for t, a in ctx.accounts("fcm", FcmAccount) if t == tenant}
    if checked.service != "fcm" or project not in projects:
        return error(403, "SenderId mismatch", "SENDER_ID_MISMATCH")
    return None


def send(ctx: SimContext, call: Call) -> Response:
    project = call.request.path_params["project_id"]
    refused = _authorize(ctx, call, project)
    if refused is not None:
        return refused
    try:
        body = json_payload(call.raw)
    except (ValueError, UnicodeDecodeError):
        return invalid("Invalid JSON payload received. Unexpected token.")
    problem = validate(body)
    if problem is not None:
        return invalid(problem)
    if body.get("validate_only") is True:
        return JSONResponse({"name": f"projects/{project}/messages/fake_message_id"})
    message_id = 10**18 + secrets.randbelow(9 * 10**18)
    return JSONResponse({"name": f"projects/{project}/messages/{message_id}"})


def _not_found(call: Call) -> Response:
    return google_error(404, "Requested entity was not found.")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/fcm"


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route(
            "/v1/projects/{project_id}/messages:send",
            provider_endpoint(ctx, SPEC, lambda c: send(ctx, c)),
            methods=["POST"],
        ),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
