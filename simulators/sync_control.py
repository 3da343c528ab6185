"""`/_sim` routes for the outbound-sync simulators: expire Google tokens, read their state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators.common import SimContext


def routes(ctx: SimContext) -> list[BaseRoute]:
    sync = ctx.state.sync

    async def expire_tokens(request: Request) -> Response:
        """Expire every issued access token: the next API call with one answers 401."""
        return JSONResponse({"expired": sync.tokens.expire_all()})

    async def tokens(request: Request) -> Response:
        return JSONResponse({"tokens": [t.summary() for t in sync.tokens.all()]})

    async def users(request: Request) -> Response:
        return JSONResponse({"users": sync.view(sync.users)})

    async def profiles(request: Request) -> Response:
        return JSONResponse({"profiles": sync.view(sync.profiles)})

    async def contacts(request: Request) -> Response:
        return JSONResponse({"contacts": sync.view(sync.contacts)})

    return [
        Route("/google/expire-tokens", expire_tokens, methods=["POST"]),
        Route("/google/tokens", tokens, methods=["GET"]),
        Route("/gworkspace/users", users, methods=["GET"]),
        Route("/mobileapp/profiles", profiles, methods=["GET"]),
        Route("/smsgateway/contacts", contacts, methods=["GET"]),
    ]
