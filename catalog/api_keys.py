"""API keys for the admin API: "hubk_<id>_<secret>", shown once, stored as SHA-256 of the secret.

The id finds the row; the secret's hash is compared in constant time. The
token is 32 random bytes: a hash without salt or stretching is enough for a
secret nobody chose (unlike a password, there is nothing to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import select

from catalog.errors import CatalogValidationError, NotFoundError
from catalog.models import ROLES, ApiKeyInfo, Role
from catalog.store import CatalogStore
from catalog.tables import ApiKeyRow, utcnow

TOKEN_PREFIX = "hubk"  # noqa: S105 - the tokens' marker, not a secret
# last_used_at is a hint for operators; writing it on every request would make
# every authenticated read a write. Once a minute is precise enough.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token; the secret may itself contain '_'."""
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        role=cast(Role, row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked_at is not None,
    )


class ApiKeys(CatalogStore):
    def create_api_key(self, name: str, role: Role) -> tuple[ApiKeyInfo, str]:
        """The key's description and its token: the only time the token is seen."""
        if role not in ROLES:
            raise CatalogValidationError("role", f"{role!r} is not one of {', '.join(ROLES)}")
        if not name.strip():
            raise CatalogValidationError("name", "an API key needs a name (who or what uses it)")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        token = f"{TOKEN_PREFIX}_{key_id}_{secret}"
        row = ApiKeyRow(
            id=key_id,
            name=name.strip(),
            role=role,
            key_hash=_hash(secret),
            prefix=f"{TOKEN_PREFIX}_{key_id}_{secret[:4]}",
            created_at=utcnow(),
        )
        with self.write() as session:
            session.add(row)
        return _info(row), token

    def list_api_keys(self) -> list[ApiKeyInfo]:
        with self.read() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id))
            return [_info(r) for r in rows]

    def revoke_api_key(self, key_id: str) -> None:
        with self.write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError("API key", key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()

    def authenticate(self, presented: str) -> ApiKeyInfo | None:
        parsed = parse_token(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self.read() as session:
            row = session.get(ApiKeyRow, key_id)
        # The digest is computed and compared whatever was found, in constant time.
        expected = row.key_hash if row is not None else _hash(secrets.token_hex(16))
        if not hmac.compare_digest(_hash(secret), expected) or row is None:
            return None
        if row.revoked_at is not None:
            return None
        self._touch(row, utcnow())
        return _info(row)

    def _touch(self, row: ApiKeyRow, now: datetime) -> None:
        if row.last_used_at is not None and now - row.last_used_at < _LAST_USED_RESOLUTION:
            return
        with self.write() as session:
            live = session.get(ApiKeyRow, row.id)
            if live is not None:
                live.last_used_at = now
        row.last_used_at = now

    def has_admin_key(self) -> bool:
        with self.read() as session:
            query = select(ApiKeyRow.id).where(
                ApiKeyRow.role == "admin", ApiKeyRow.revoked_at.is_(None)
            )
            return session.execute(query.limit(1)).first() is not None
