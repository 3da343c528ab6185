"""Error answers: one JSON shape per status, and no submitted value in any of them.

pydantic puts the rejected input into each error (`input`) and some messages
quote it; an account's body holds secrets, so every 422 is built here from the
error's location and message only, and messages are scrubbed of the values
the caller sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import ValidationError
from starlette.responses import JSONResponse

from admin_api.models import ErrorOut, FieldError, ValidationErrorOut

MASK = "***"
# Shorter values cannot be told apart from the words of a message; no
# provider's secret is this short.
_MIN_SCRUBBED = 4


class ApiError(Exception):
    """An answer other than success, raised anywhere below a route and rendered once."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = (
            ValidationErrorOut(fields=self.fields)
            if self.fields is not None
            else ErrorOut(error=self.message)
        )
        return JSONResponse(body.model_dump(mode="json"), self.status, headers=self.headers)


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of each value (a submitted secret) masked."""
    for value in sorted({v for v in values if len(v) >= _MIN_SCRUBBED}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the API names it: ("fields", "auth_token") -> "fields.auth_token"."""
    return ".".join(str(part) for part in loc) or "body"


def validation_failed(
    exc: ValidationError, submitted: Iterable[str] = (), *, prefix: str = ""
) -> ApiError:
    values = list(submitted)
    fields = [
        FieldError(
            field=prefix + field_name(tuple(error["loc"])),
            message=scrub(_message(error["type"], error["msg"]), values),
        )
        # include_input=False: the rejected value is exactly what must not be echoed.
        for error in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
    return ApiError(422, "validation failed", fields=fields)


def one_field(field: str, message: str, submitted: Iterable[str] = ()) -> ApiError:
    return ApiError(
        422,
        "validation failed",
        fields=[FieldError(field=field, message=scrub(message, submitted))],
    )


def _message(error_type: str, message: str) -> str:
    if error_type == "json_invalid":
        return "the body is not valid JSON"
    return message
