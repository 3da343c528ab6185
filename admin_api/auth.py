"""Who is calling, and whether their role may: API keys and the role ladder.

Roles are a ladder, not sets: a viewer reads everything, an operator also
tests connections, an admin also changes things (API keys included). A route
declares the lowest role it needs; `allows` is the whole policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from admin_api.models import Role

ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")  # lowest first
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

# RFC 6750: a 401 names the scheme the caller should use.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hub-admin"'}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the key's id and name (what logs show), never the key."""

    key_id: str
    name: str
    role: Role


def allows(role: str, required: Role) -> bool:
    rank = _RANK.get(role)
    return rank is not None and rank >= _RANK[required]


def roles_at_least(required: Role) -> tuple[Role, ...]:
    return tuple(role for role in ROLES if allows(role, required))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer <key>`, else from `X-API-Key`; None if neither."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None
