"""Tenants and their routing: /v1/tenants, /v1/tenants/{tenant_id}[/routing]."""

from __future__ import annotations

from admin_api.endpoint import Call, Endpoint
from admin_api.errors import one_field
from admin_api.models import (
    RoutingBody,
    RoutingOut,
    TenantCreate,
    TenantList,
    TenantOut,
    TenantPatch,
)
from catalog.errors import CatalogValidationError


def _tenant(info: object) -> TenantOut:
    return TenantOut.model_validate(info, from_attributes=True)


async def list_tenants(call: Call) -> TenantList:
    infos = await call.run(call.deps.service.list_tenants)
    return TenantList(tenants=[_tenant(info) for info in infos])


async def create_tenant(call: Call) -> TenantOut:
    body = call.body_as(TenantCreate)
    info = await call.run(call.deps.service.create_tenant, body.id, body.name, enabled=body.enabled)
    return _tenant(info)


async def get_tenant(call: Call) -> TenantOut:
    return _tenant(await call.run(call.deps.service.get_tenant, call.param("tenant_id")))


async def update_tenant(call: Call) -> TenantOut:
    body = call.body_as(TenantPatch)
    info = await call.run(
        call.deps.service.update_tenant,
        call.param("tenant_id"),
        name=body.name,
        enabled=body.enabled,
    )
    return _tenant(info)


async def delete_tenant(call: Call) -> None:
    await call.run(call.deps.service.delete_tenant, call.param("tenant_id"))


async def get_routing(call: Call) -> RoutingOut:
    tenant_id = call.param("tenant_id")
    routing = await call.run(call.deps.service.get_routing, tenant_id)
    return RoutingOut(tenant_id=tenant_id, routing=routing)


async def set_routing(call: Call) -> RoutingOut:
    tenant_id = call.param("tenant_id")
    body = call.body_as(RoutingBody)
    try:
        routing = await call.run(call.deps.service.set_routing, tenant_id, body.routing)
    except CatalogValidationError as exc:
        # The catalog names a bad channel name "channel"; in the body it is a key of routing.
        field = "routing" if exc.field == "channel" else exc.field
        raise one_field(field, exc.message) from None
    return RoutingOut(tenant_id=tenant_id, routing=routing)


_TENANT = "/v1/tenants/{tenant_id}"

ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/tenants",
        "tenants.list",
        "List tenants",
        list_tenants,
        "viewer",
        response=TenantList,
        tag="tenants",
    ),
    Endpoint(
        "POST",
        "/v1/tenants",
        "tenants.create",
        "Create a tenant",
        create_tenant,
        "admin",
        status=201,
        body=TenantCreate,
        response=TenantOut,
        errors=(409,),
        tag="tenants",
    ),
    Endpoint(
        "GET",
        _TENANT,
        "tenants.get",
        "Get a tenant",
        get_tenant,
        "viewer",
        response=TenantOut,
        errors=(404,),
        tag="tenants",
    ),
    Endpoint(
        "PATCH",
        _TENANT,
        "tenants.update",
        "Rename, enable or disable a tenant",
        update_tenant,
        "admin",
        body=TenantPatch,
        response=TenantOut,
        errors=(404,),
        tag="tenants",
    ),
    Endpoint(
        "DELETE",
        _TENANT,
        "tenants.delete",
        "Delete a tenant with its accounts and routing",
        delete_tenant,
        "admin",
        status=204,
        errors=(404,),
        tag="tenants",
        description="Components drop the tenant when its tombstone reaches them.",
    ),
    Endpoint(
        "GET",
        f"{_TENANT}/routing",
        "routing.get",
        "Get a tenant's routing",
        get_routing,
        "viewer",
        response=RoutingOut,
        errors=(404,),
        tag="routing",
    ),
    Endpoint(
        "PUT",
        f"{_TENANT}/routing",
        "routing.set",
        "Replace a tenant's routing",
        set_routing,
        "admin",
        body=RoutingBody,
        response=RoutingOut,
        errors=(404,),
        tag="routing",
        description="Every label must name one of the tenant's accounts.",
    ),
)
