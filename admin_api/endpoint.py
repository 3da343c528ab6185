"""One route = one `Endpoint` row; `serve` turns a row into a Starlette endpoint.

Everything a route must do before and after its handler happens here, in one
order, for every route: authenticate (401), check the role (403), parse the
body and the query (422), run the handler, map the catalog's errors (404,
409, 422), log the action. A handler only calls the service and builds its
answer, so no route can forget a check. The same rows build the OpenAPI
document (admin_api/openapi.py), so the document cannot drift from the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.auth import CHALLENGE, Principal, allows, presented_key
from admin_api.errors import ApiError, one_field, validation_failed
from admin_api.models import Role
from catalog.errors import CatalogValidationError, ConflictError, NotFoundError
from core.audit import AuditSink
from core.settings import Settings
from schemas.events import ProviderCallAudit

if TYPE_CHECKING:
    from catalog.service import CatalogService

log = structlog.get_logger("admin_api")

T = TypeVar("T")
B = TypeVar("B", bound=BaseModel)

Reply = BaseModel | Mapping[str, Any] | None

# Account bodies are a few hundred bytes; a service-account JSON key a few KiB.
MAX_BODY_BYTES = 64 * 1024


class AuditReader(Protocol):
    """Where GET /v1/audit reads from: core.audit.read_audit in production."""

    def __call__(
        self,
        settings: Settings,
        *,
        tenant: str | None,
        provider: str | None,
        status: str | None,
        since: datetime | None,
        limit: int,
    ) -> Sequence[ProviderCallAudit]: ...


@dataclass(frozen=True)
class Deps:
    settings: Settings
    service: CatalogService
    audit_reader: AuditReader
    # Where test-connection calls are recorded (hub.audit.v1 under `hub admin serve`).
    audit_sink: AuditSink | None = None


@dataclass(frozen=True)
class Call:
    """What a handler gets: the caller, the parsed input, the dependencies."""

    request: Request
    deps: Deps
    principal: Principal | None
    body: BaseModel | None
    query: BaseModel | None

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def body_as(self, model: type[B]) -> B:
        assert isinstance(self.body, model), "the route's Endpoint.body declares this model"
        return self.body

    def query_as(self, model: type[B]) -> B:
        assert isinstance(self.query, model), "the route's Endpoint.query declares this model"
        return self.query

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking call (SQL, Kafka) off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    name: str  # operationId, and the action name in logs: "tenants.create"
    summary: str
    handler: Handler
    role: Role | None  # the lowest role allowed; None: open to anyone (health, the document)
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # statuses besides 401/403/422 the route can answer (404, 409)
    tag: str = "admin"
    description: str = ""

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def acts(self) -> bool:
        """Changes something or calls out (test-connection): worth a line in the log."""
        return self.method != "GET"


def serve(endpoint: Endpoint, deps: Deps) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        principal: Principal | None = None
        try:
            if endpoint.role is not None:
                principal = await _authenticate(request, deps)
                _require(principal, endpoint.role)
            call = Call(
                request,
                deps,
                principal,
                await _body(request, endpoint.body),
                _query(request, endpoint.query),
            )
            reply = await _run(endpoint, call)
        except ApiError as exc:
            _log_refusal(endpoint, request, principal, exc)
            return exc.response()
        _log_action(endpoint, request, principal)
        return _render(endpoint.status, reply)

    return handle


async def _authenticate(request: Request, deps: Deps) -> Principal:
    key = presented_key(request.headers)
    info = await run_in_threadpool(deps.service.authenticate, key) if key else None
    if info is None:
        raise ApiError(401, "missing or invalid API key", headers=CHALLENGE)
    return Principal(key_id=info.id, name=info.name, role=info.role)


def _require(principal: Principal, role: Role) -> None:
    if not allows(principal.role, role):
        raise ApiError(403, f"requires role {role}")


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # chunked bodies have no Content-Length to check
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, model: type[BaseModel] | None) -> BaseModel | None:
    if model is None:
        return None
    raw = await _read_limited(request, MAX_BODY_BYTES)
    if not raw.strip():
        raise one_field("body", "a JSON object is required")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failed(exc, _submitted_strings(raw)) from None


def _query(request: Request, model: type[BaseModel] | None) -> BaseModel | None:
    if model is None:
        return None
    params = dict(request.query_params)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_failed(exc, params.values()) from None


async def _run(endpoint: Endpoint, call: Call) -> Reply:
    try:
        return await endpoint.handler(call)
    except NotFoundError as exc:
        raise ApiError(404, f"{exc.what} {exc.id!r} not found") from None
    except ConflictError as exc:
        raise ApiError(409, str(exc)) from None
    except CatalogValidationError as exc:
        raise one_field(exc.field, exc.message, _submitted(call.body)) from None


def _render(status: int, reply: Reply) -> Response:
    if status == 204 or reply is None:
        return Response(status_code=204)
    content = reply.model_dump(mode="json") if isinstance(reply, BaseModel) else dict(reply)
    return JSONResponse(content, status)


def _submitted(body: BaseModel | None) -> list[str]:
    """Every string the caller sent, to scrub from error messages."""
    return [] if body is None else _strings(body.model_dump())


def _submitted_strings(raw: bytes) -> list[str]:
    try:
        return _strings(json.loads(raw))
    except ValueError:
        return []


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _actor(principal: Principal | None) -> dict[str, str]:
    if principal is None:
        return {}
    return {"actor": principal.name, "actor_id": principal.key_id, "actor_role": principal.role}


def _log_action(endpoint: Endpoint, request: Request, principal: Principal | None) -> None:
    # Reads are not actions; who changed what (and who probed which account) is the point.
    if endpoint.acts:
        log.info(
            "admin.action",
            action=endpoint.name,
            **dict(request.path_params),
            **_actor(principal),
        )


def _log_refusal(
    endpoint: Endpoint, request: Request, principal: Principal | None, exc: ApiError
) -> None:
    security = exc.status in (401, 403)
    (log.warning if security else log.info)(
        "admin.refused",
        action=endpoint.name,
        status=exc.status,
        reason=exc.message,
        fields=[f.field for f in exc.fields or []],  # names only: values may be secrets
        remote_addr=request.client.host if request.client else None,
        security_event=security,
        **dict(request.path_params),
        **_actor(principal),
    )
