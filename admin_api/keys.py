"""The admin API's own keys: /v1/api-keys. Admin only, listing included: who holds
which role is itself worth protecting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from admin_api.endpoint import Call, Endpoint
from admin_api.models import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut

if TYPE_CHECKING:
    from catalog.service import CatalogService


async def list_keys(call: Call) -> ApiKeyList:
    infos = await call.run(call.deps.service.list_api_keys)
    return ApiKeyList(
        api_keys=[ApiKeyOut.model_validate(info, from_attributes=True) for info in infos]
    )


async def create_key(call: Call) -> ApiKeyCreated:
    body = call.body_as(ApiKeyCreate)
    info, token = await call.run(call.deps.service.create_api_key, body.name, body.role)
    out = ApiKeyOut.model_validate(info, from_attributes=True)
    return ApiKeyCreated(**out.model_dump(), token=token)


async def revoke_key(call: Call) -> None:
    await call.run(call.deps.service.revoke_api_key, call.param("key_id"))


ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/api-keys",
        "api_keys.list",
        "List API keys (never the keys)",
        list_keys,
        "admin",
        response=ApiKeyList,
        tag="api-keys",
    ),
    Endpoint(
        "POST",
        "/v1/api-keys",
        "api_keys.create",
        "Create an API key",
        create_key,
        "admin",
        status=201,
        body=ApiKeyCreate,
        response=ApiKeyCreated,
        tag="api-keys",
        description="The answer holds the key itself, once: the hub stores only its hash.",
    ),
    Endpoint(
        "DELETE",
        "/v1/api-keys/{key_id}",
        "api_keys.revoke",
        "Revoke an API key",
        revoke_key,
        "admin",
        status=204,
        errors=(404,),
        tag="api-keys",
        description="A revoked key authenticates nothing from the next request on.",
    ),
)


FIRST_ADMIN = "first-admin"


def ensure_first_admin_key(service: CatalogService) -> str | None:
    """A first admin key when the catalog has none (`hub run`, `hub admin serve`): the
    token, to print once; None when an admin key exists already."""
    if service.has_admin_key():
        return None
    _info, token = service.create_api_key(FIRST_ADMIN, "admin")
    return token
