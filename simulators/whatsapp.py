"""WhatsApp Business Cloud API (Meta Graph): template sends and their status webhooks.

Served under Graph's versioned paths (`/whatsapp/v21.0/...`; any `vNN.N` is accepted):

- `POST /{version}/{phone_number_id}/messages` with `Authorization: Bearer <access
  token>`: a bad or missing token is 401 with Graph's code 190; a phone number id the
  token's business does not own is 400 with code 100 (subcode 33); a body without
  `messaging_product`, `to` or the template's name and language is 400 with code 100;
  free text (`"type": "text"`) is refused with 131047, as Meta does outside the 24 h
  window (the simulator keeps no conversations). Accepted: Meta's answer with the
  wamid, the message kept per tenant (cleared by a reset).
- `GET /{version}/{phone_number_id}`: the number's record (the hub's test connection).
- Any other path: Graph's 400 "Unknown path components" (code 2500).

Then, per `ctx.receipts.outcome("whatsapp", to)` (simulators.receipts): "delivered"
posts a `sent` and then a `delivered` status; "undelivered" posts one `failed` status
with error 131026 (Message undeliverable); "silent" posts nothing. Each status is its
own POST in Meta's `entry[].changes[].value.statuses[]` shape, with the message's
`biz_opaque_callback_data` echoed, to the tenant's receipt URL (the app dashboard's
callback URL), signed `X-Hub-Signature-256: sha256=<HMAC-SHA256(app secret, body)>`.

Not simulated: templates (any name is accepted; 132000/132001 are never answered),
media and interactive messages, `read` statuses, inbound messages, the 24 h window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.whatsapp import WhatsAppAccount
from simulators.common import Call, ProviderSpec, SimContext, bearer_token, provider_endpoint
from simulators.payments import SentCallback
from simulators.state import SimState

PROVIDER = "whatsapp"
VERSION = re.compile(r"^v\d{1,2}\.\d$")
PHONE = re.compile(r"^\+?\d{7,15}$")
MAX_CALLBACK_DATA = 512
GRAPH_DOCS = "https://developers.facebook.com/docs/graph-api"
NOT_PARSED = "Invalid OAuth access token - Cannot parse access token"
UNDELIVERABLE = 131026
UNDELIVERABLE_TITLE = "Message undeliverable"


@dataclass
class SentMessage:
    tenant: str
    phone_number_id: str
    wamid: str
    to: str  # digits, as Meta's wa_id
    body: dict[str, Any]


@dataclass
class Messages:
    """Every accepted message, oldest first (a reset forgets them)."""

    sent: list[SentMessage] = field(default_factory=list)

    def of(self, tenant: str) -> list[SentMessage]:
        return [m for m in self.sent if m.tenant == tenant]

    def clear(self) -> None:
        self.sent.clear()


_STORES: dict[int, Messages] = {}


def messages(state: SimState) -> Messages:
    """The messages accepted by the simulator serving `state` (tests read them here)."""
    found = _STORES.get(id(state))
    if found is None:
        found = _STORES[id(state)] = Messages()
        weakref.finalize(state, _STORES.pop, id(state), None)
        state.on_reset.append(found.clear)
    return found


# --- Graph's errors ---------------------------------------------------------------------


def graph_error(
    status: int,
    code: int,
    message: str,
    kind: str = "OAuthException",
    *,
    details: str | None = None,
    subcode: int | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return JSONResponse({"error": error}, status_code=status)


def bad_token() -> JSONResponse:
    response = graph_error(401, 190, NOT_PARSED)
    response.headers["WWW-Authenticate"] = (
        f'OAuth "Facebook Platform" "invalid_token" "{NOT_PARSED}"'
    )
    return response


def invalid(message: str, details: str | None = None) -> JSONResponse:
    return graph_error(400, 100, message, details=details)


def unsupported(method: str, object_id: str) -> JSONResponse:
    return graph_error(
        400,
        100,
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot "
        "be loaded due to missing permissions, or does not support this operation. Please "
        f"read the Graph API documentation at {GRAPH_DOCS}",
        "GraphMethodException",
        subcode=33,
    )


def error_for_status(status: int) -> Response:
    """Meta's answer for a queued fault's status (its error code table)."""
    if status == 401:
        return bad_token()
    if status == 429:
        return graph_error(
            429,
            130429,
            "(#130429) Rate limit hit",
            details="Cloud API message throughput has been reached.",
        )
    if status in (503, 504):
        return graph_error(status, 2, "Service temporarily unavailable")
    if status >= 500:
        return graph_error(status, 131000, "Something went wrong", details="Something went wrong")
    return invalid("(#100) Invalid parameter")


def _account(ctx: SimContext, headers: Headers) -> tuple[Tenant, WhatsAppAccount] | None:
    token = bearer_token(headers)
    if token is None:
        return None
    for tenant, account in ctx.accounts(PROVIDER, WhatsAppAccount):
        if hmac.compare_digest(account.access_token.get_secret_value().encode(), token.encode()):
            return tenant, account
    return None


def _authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    found = _account(ctx, headers)
    return found[0] if found else None


SPEC = ProviderSpec(name=PROVIDER, authenticate=_authenticate, error_for_status=error_for_status)


def _authorized(ctx: SimContext, call: Call, method: str) -> WhatsAppAccount | Response:
    """The token's account when the path's version and phone number id are its own."""
    params = call.request.path_params
    if not VERSION.match(params["version"]):
        return unknown_path(call)
    found = _account(ctx, call.request.headers)
    if found is None:
        return bad_token()
    account = found[1]
    if params["phone_number_id"] != account.phone_number_id:
        return unsupported(method, params["phone_number_id"])
    return account


# --- sending --------------------------------------------------------------------------


def _envelope_problem(body: Any) -> JSONResponse | None:
    if not isinstance(body, dict) or body.get("messaging_product") is None:
        return invalid("(#100) The parameter messaging_product is required.")
    if body["messaging_product"] != "whatsapp":
        got = body["messaging_product"]
        return invalid(f'(#100) Param messaging_product must be one of {{WHATSAPP}} - got "{got}".')
    to = body.get("to")
    if not isinstance(to, str) or not to:
        return invalid("(#100) The parameter to is required.")
    if not PHONE.match(to):
        return invalid("(#100) Invalid parameter", f"Invalid WhatsApp recipient {to!r}.")
    opaque = body.get("biz_opaque_callback_data")
    if opaque is not None and (not isinstance(opaque, str) or len(opaque) > MAX_CALLBACK_DATA):
        return invalid("(#100) Param biz_opaque_callback_data must be at most 512 characters long.")
    return None


def _template_problem(body: dict[str, Any]) -> JSONResponse | None:
    if body.get("type") == "text":
        return graph_error(
            400,
            131047,
            "(#131047) Re-engagement message",
            details="Message failed to send because more than 24 hours have passed since "
            "the customer last replied to this number.",
        )
    if body.get("type") != "template":
        return invalid("(#100) Invalid parameter", "Only template messages are simulated.")
    template = body.get("template")
    if not isinstance(template, dict) or not template.get("name"):
        return invalid("(#100) The parameter template['name'] is required.")
    language = template.get("language")
    if not isinstance(language, dict) or not language.get("code"):
        return invalid("(#100) The parameter template['language'] is required.")
    return None


def _problem(body: Any) -> JSONResponse | None:
    """What Meta refuses in a send body (the first problem, as Graph reports one)."""
    return _envelope_problem(body) or _template_problem(body)


def new_wamid(digits: str) -> str:
    """A wamid shaped like Meta's: "wamid." and base64 of the recipient and a random id."""
    raw = (
        b"\x18\x0c" + digits.encode() + b"\x15\x02\x00\x11\x18\x12" + secrets.token_hex(9).encode()
    )
    return "wamid." + base64.b64encode(raw).decode("ascii")


def _send(ctx: SimContext, store: Messages, call: Call) -> Response:
    account = _authorized(ctx, call, "post")
    if isinstance(account, Response):
        return account
    assert call.tenant is not None, "the token found the tenant"
    problem = _problem(call.body)
    if problem is not None:
        return problem
    to = str(call.body["to"])
    digits = to.removeprefix("+")
    message = SentMessage(
        call.tenant.id, account.phone_number_id, new_wamid(digits), digits, call.body
    )
    store.sent.append(message)
    _schedule_receipts(ctx, call.tenant, account, message)
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": digits}],
            "messages": [{"id": message.wamid}],
        }
    )


def _phone_number(ctx: SimContext, call: Call) -> Response:
    account = _authorized(ctx, call, "get")
    if isinstance(account, Response):
        return account
    assert call.tenant is not None, "the token found the tenant"
    return JSONResponse(
        {
            "verified_name": call.tenant.name or call.tenant.id,
            "code_verification_status": "VERIFIED",
            "display_phone_number": display_number(account),
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": account.phone_number_id,
        }
    )


def unknown_path(call: Call) -> Response:
    return graph_error(400, 2500, f"Unknown path components: {call.request.url.path}")


# --- the status webhooks ----------------------------------------------------------------


def display_number(account: WhatsAppAccount) -> str:
    """A stable test number for the phone number id (Meta's test numbers are +1 555...)."""
    return "1555" + account.phone_number_id[-7:].rjust(7, "0")


def status_body(
    account: WhatsAppAccount, message: SentMessage, status: str, at: float
) -> dict[str, Any]:
    """One status update as Meta posts it: one entry, one change, one status."""
    update: dict[str, Any] = {
        "id": message.wamid,
        "status": status,
        "timestamp": str(int(at)),
        "recipient_id": message.to,
    }
    opaque = message.body.get("biz_opaque_callback_data")
    if opaque:
        update["biz_opaque_callback_data"] = opaque
    if status == "failed":
        update["errors"] = [
            {
                "code": UNDELIVERABLE,
                "title": UNDELIVERABLE_TITLE,
                "message": UNDELIVERABLE_TITLE,
                "error_data": {"details": "Message Undeliverable."},
            }
        ]
    else:
        conversation_id = hashlib.sha256(message.wamid.encode()).hexdigest()[:32]
        update["conversation"] = {"id": conversation_id, "origin": {"type": "utility"}}
        update["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_number(account),
            "phone_number_id": account.phone_number_id,
        },
        "statuses": [update],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": account.waba_id or "0", "changes": [{"value": value, "field": "messages"}]}
        ],
    }


def signature(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _arrival(ctx: SimContext, digits: str) -> str:
    """The test's rule for the number, whether it was written with its "+" or without."""
    for address in (digits, "+" + digits):
        arrival = ctx.receipts.outcome(PROVIDER, address)
        if arrival != "delivered":
            return arrival
    return "delivered"


def _schedule_receipts(
    ctx: SimContext, tenant: Tenant, account: WhatsAppAccount, message: SentMessage
) -> None:
    arrival = _arrival(ctx, message.to)
    if arrival == "silent":
        return
    statuses = ("sent", "delivered") if arrival == "delivered" else ("failed",)
    ctx.receipts.later(partial(_post_statuses, ctx, tenant, account, message, statuses))


async def _post_statuses(
    ctx: SimContext,
    tenant: Tenant,
    account: WhatsAppAccount,
    message: SentMessage,
    statuses: tuple[str, ...],
) -> None:
    for status in statuses:
        body = json.dumps(status_body(account, message, status, ctx.state.clock())).encode()
        await ctx.receipts.post(
            SentCallback(
                provider=PROVIDER,
                tenant=tenant.id,
                order_id=message.wamid,
                payment_id="",
                event=status,
                url=ctx.receipts.default_url(PROVIDER, tenant.id),
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "facebookexternalua",
                    "X-Hub-Signature-256": signature(body, account.app_secret.get_secret_value()),
                },
            )
        )


# Where the simulator server serves this provider (its declaration's simulator path
# is this mount plus Graph's version).
MOUNT = "/whatsapp"


def routes(ctx: SimContext) -> list[BaseRoute]:
    store = messages(ctx.state)
    return [
        Route(
            "/{version}/{phone_number_id}/messages",
            provider_endpoint(ctx, SPEC, partial(_send, ctx, store)),
            methods=["POST"],
        ),
        Route(
            "/{version}/{phone_number_id}",
            provider_endpoint(ctx, SPEC, partial(_phone_number, ctx)),
            methods=["GET"],
        ),
        # Last: every other path is Graph's "Unknown path components".
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, unknown_path, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
