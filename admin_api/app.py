"""The admin API's ASGI app: the route table served over a catalog service.

`create_app` wires; it holds no policy. Every route's checks live in
admin_api/endpoint.py, the routes in admin_api/routes.py.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from admin_api.endpoint import AuditReader, Deps, serve
from admin_api.routes import ENDPOINTS
from core.audit import AuditSink, read_audit
from core.settings import Settings

if TYPE_CHECKING:
    from catalog.service import CatalogService

log = structlog.get_logger("admin_api")


async def _http_error(_request: Request, exc: Exception) -> Response:
    # Unknown paths and methods: the same JSON shape as every other error.
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The type and where, not the message: an exception's text may quote input
    # (pydantic's does), and input here holds secrets.
    frames = traceback.extract_tb(exc.__traceback__)
    where = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-5:]]
    log.error("admin.error", path=request.url.path, error=type(exc).__name__, where=where)
    return JSONResponse({"error": "internal error"}, 500)


def create_app(
    settings: Settings,
    service: CatalogService,
    *,
    audit_reader: AuditReader | None = None,
    audit_sink: AuditSink | None = None,
) -> Starlette:
    """The app. GET /v1/audit reads through `audit_reader` (default core.audit.read_audit);
    test-connection calls are recorded to `audit_sink` (none: not recorded)."""
    deps = Deps(settings, service, audit_reader or read_audit, audit_sink)
    routes = [Route(e.path, serve(e, deps), methods=[e.method], name=e.name) for e in ENDPOINTS]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
