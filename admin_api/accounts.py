"""A tenant's provider accounts: /v1/tenants/{tenant_id}/accounts[/{label}[/test]].

Secrets are write-only. They arrive in `fields` beside the public ones, the
catalog seals them, and what comes back is `settings` (the public fields) and
`secrets_set` (the names of the secrets that have a value), from the catalog's
AccountInfo, which never holds a secret. Only test-connection decrypts: in
memory, to call the provider, and its answer is scrubbed of the secrets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import providers
from admin_api.endpoint import Call, Endpoint
from admin_api.errors import ApiError, one_field, scrub
from admin_api.models import AccountCreate, AccountList, AccountOut, AccountPatch, ProbeOut
from catalog.errors import CatalogValidationError
from core.audit import AuditSink
from core.audited_http import audited_client
from core.settings import Settings
from core.tenants import ProviderAccount
from core.url_guard import literal_refusal, parse_allowance
from providers import smtp
from providers.probe import PROBE_TENANT
from providers.smtp_transport import smtp_mounts
from schemas.events import EventHeader

T = TypeVar("T")

# What the audit trail calls a test-connection call, and a token exchange on its way.
TEST_EVENT = "admin.connection_test"
TEST_OPERATION = "connection.test"
TOKEN_OP = "oauth.token"  # noqa: S105 - an operation's name

# Body fields an error may name as they are; any other field is a provider field.
_TOP_LEVEL = frozenset(AccountCreate.model_fields) | {"id"}
# Account fields naming a server the hub connects to: refused at save when they are a
# non-global address literal (no DNS here; every call checks what the name resolves to).
_DESTINATIONS = {smtp.PROVIDER.name: smtp.DESTINATION_FIELD}


async def probe_account(
    account: ProviderAccount,
    settings: Settings,
    *,
    tenant_id: str = PROBE_TENANT,
    sink: AuditSink | None = None,
) -> ProbeOut:
    """One cheap authenticated read through the provider's adapter; with a sink, each of its
    exchanges (a token request too) is on the audit trail like any provider call."""
    if sink is None:
        result = await providers.probe(account, settings)
    else:
        api = providers.base_url(settings, account.provider)
        cause = EventHeader.new(TEST_EVENT, tenant_id, source="admin-api")
        async with audited_client(
            sink,
            settings,
            cause,
            provider=account.provider,
            account=account.label,
            operation_of=lambda r: TEST_OPERATION if str(r.url).startswith(api) else TOKEN_OP,
            secrets=account.secret_values(),
            mounts=smtp_mounts(),  # an SMTP account's test goes through the SSRF guard too
        ) as http:
            result = await providers.probe(account, settings, http=http, tenant_id=tenant_id)
    return ProbeOut(
        status=result.status,
        # A provider's error text may quote what it was sent.
        detail=scrub(result.detail, account.secret_values()),
        http_status=result.http_status,
    )


def _account(info: object) -> AccountOut:
    return AccountOut.model_validate(info, from_attributes=True)


def _fields(body: AccountCreate | AccountPatch) -> list[str]:
    return list((body.fields or {}).values())


async def _checked(fn: Callable[[], Awaitable[T]], submitted: list[str]) -> T:
    """`fn()`, with the catalog's validation errors naming the body field they are about."""
    try:
        return await fn()
    except CatalogValidationError as exc:
        field = exc.field
        if field not in _TOP_LEVEL and not field.startswith("fields."):
            field = f"fields.{field}"
        raise one_field(field, exc.message, submitted) from None


def check_destination(
    provider: str, fields: Mapping[str, str] | None, settings: Settings, submitted: list[str]
) -> None:
    """422 for an account whose server is an address the hub may not call."""
    name = _DESTINATIONS.get(provider)
    value = (fields or {}).get(name) if name else None
    if not value:
        return
    kind = literal_refusal(value, parse_allowance(settings.url_guard_allow))
    if kind is not None:
        message = f"{kind}: the hub does not connect to it (HUB_URL_GUARD_ALLOW)"
        raise one_field(f"fields.{name}", message, submitted)


async def list_accounts(call: Call) -> AccountList:
    infos = await call.run(call.deps.service.list_accounts, call.param("tenant_id"))
    return AccountList(accounts=[_account(info) for info in infos])


async def add_account(call: Call) -> AccountOut:
    body = call.body_as(AccountCreate)
    check_destination(body.provider, body.fields, call.deps.settings, _fields(body))
    info = await _checked(
        lambda: call.run(
            call.deps.service.add_account,
            call.param("tenant_id"),
            body.label,
            body.provider,
            body.fields,
            priority=body.priority,
            enabled=body.enabled,
        ),
        _fields(body),
    )
    return _account(info)


async def get_account(call: Call) -> AccountOut:
    info = await call.run(
        call.deps.service.get_account, call.param("tenant_id"), call.param("label")
    )
    return _account(info)


async def update_account(call: Call) -> AccountOut:
    body = call.body_as(AccountPatch)
    if body.fields:
        tenant_id, label = call.param("tenant_id"), call.param("label")
        current = await call.run(call.deps.service.get_account, tenant_id, label)
        check_destination(current.provider, body.fields, call.deps.settings, _fields(body))
    info = await _checked(
        lambda: call.run(
            call.deps.service.update_account,
            call.param("tenant_id"),
            call.param("label"),
            fields=body.fields,
            priority=body.priority,
            enabled=body.enabled,
        ),
        _fields(body),
    )
    return _account(info)


async def remove_account(call: Call) -> None:
    await call.run(call.deps.service.remove_account, call.param("tenant_id"), call.param("label"))


async def test_account(call: Call) -> ProbeOut:
    tenant_id, label = call.param("tenant_id"), call.param("label")
    tenant = await call.run(call.deps.service.load_tenant, tenant_id)
    account = tenant.by_label(label)
    if account is None:
        raise ApiError(404, f"account {label!r} not found")
    return await probe_account(
        account, call.deps.settings, tenant_id=tenant_id, sink=call.deps.audit_sink
    )


_ACCOUNTS = "/v1/tenants/{tenant_id}/accounts"
_ACCOUNT = _ACCOUNTS + "/{label}"

ENDPOINTS = (
    Endpoint(
        "GET",
        _ACCOUNTS,
        "accounts.list",
        "List a tenant's provider accounts",
        list_accounts,
        "viewer",
        response=AccountList,
        errors=(404,),
        tag="accounts",
    ),
    Endpoint(
        "POST",
        _ACCOUNTS,
        "accounts.create",
        "Add a provider account",
        add_account,
        "admin",
        status=201,
        body=AccountCreate,
        response=AccountOut,
        errors=(404, 409),
        tag="accounts",
        description="Secret fields are sealed (AES-256-GCM under the primary master key) "
        "and never returned.",
    ),
    Endpoint(
        "GET",
        _ACCOUNT,
        "accounts.get",
        "Get a provider account (no secrets)",
        get_account,
        "viewer",
        response=AccountOut,
        errors=(404,),
        tag="accounts",
    ),
    Endpoint(
        "PATCH",
        _ACCOUNT,
        "accounts.update",
        "Change an account's fields, priority or state",
        update_account,
        "admin",
        body=AccountPatch,
        response=AccountOut,
        errors=(404,),
        tag="accounts",
    ),
    Endpoint(
        "DELETE",
        _ACCOUNT,
        "accounts.delete",
        "Remove a provider account",
        remove_account,
        "admin",
        status=204,
        errors=(404, 409),
        tag="accounts",
    ),
    Endpoint(
        "POST",
        _ACCOUNT + "/test",
        "accounts.test",
        "Test the connection to the provider",
        test_account,
        "operator",
        response=ProbeOut,
        errors=(404,),
        tag="accounts",
        description="One cheap authenticated read call through the provider's adapter: "
        "ok, auth_failed (the provider refused the credentials), unreachable, or "
        "unsupported (the provider has no such call).",
    ),
)
