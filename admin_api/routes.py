"""The route table: every endpoint of the admin API, in the order the document lists them."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from admin_api import accounts, audit, keys, openapi, tenants
from admin_api.endpoint import Call, Endpoint
from admin_api.models import HealthOut


async def healthz(_call: Call) -> HealthOut:
    return HealthOut()


async def openapi_document(_call: Call) -> dict[str, Any]:
    return document()


META = (
    Endpoint(
        "GET",
        "/healthz",
        "health",
        "Liveness",
        healthz,
        None,
        response=HealthOut,
        tag="meta",
    ),
    Endpoint(
        "GET",
        "/openapi.json",
        "openapi",
        "This API's OpenAPI 3.1 document",
        openapi_document,
        None,
        tag="meta",
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    *tenants.ENDPOINTS,
    *accounts.ENDPOINTS,
    *keys.ENDPOINTS,
    *audit.ENDPOINTS,
    *META,
)


@cache
def document() -> dict[str, Any]:
    return openapi.build(ENDPOINTS)


def render() -> str:
    """The document as committed in deploy/openapi.json (`hub admin openapi` prints it)."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"
