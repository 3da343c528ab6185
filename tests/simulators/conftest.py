from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sim_support import WEBHOOK_TEMPLATE, Receiver, make_tenants, tenant
from starlette.applications import Starlette

from core.tenants import Tenant, TenantDirectory
from simulators import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tenants() -> TenantDirectory:
    return make_tenants()


@pytest.fixture
def t1(tenants: TenantDirectory) -> Tenant:
    return tenant(tenants, "t1")


@pytest.fixture
def t2(tenants: TenantDirectory) -> Tenant:
    return tenant(tenants, "t2")


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def app(tenants: TenantDirectory, receiver: Receiver) -> Starlette:
    return create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
        yield c
