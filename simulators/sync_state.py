"""State of the outbound-sync simulators: Google access tokens, directory users, profiles, contacts.

Plain data mutated only from the event loop (provider and `/_sim` routes), like
the orders in `state.py`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

GoogleService = Literal["gworkspace", "fcm"]

# Google access tokens live an hour; the token endpoint reports one second less.
TOKEN_LIFETIME = 3600.0


def iso_now() -> str:
    """The current UTC time as RFC 3339 with milliseconds, e.g. 2026-11-22T13:54:11.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stable_number(*parts: str, digits: int = 21) -> str:
    """A numeric id derived from `parts`: the same parts always give the same id."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    number = int.from_bytes(digest[:16], "big") % (9 * 10 ** (digits - 1))
    return str(10 ** (digits - 1) + number)


@dataclass
class AccessToken:
    value: str
    tenant: str
    service: GoogleService
    client_email: str
    scopes: frozenset[str]
    subject: str | None
    expires_at: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def summary(self) -> dict[str, Any]:
        """What `/_sim` shows: never the token itself, only its first characters."""
        return {
            "token_prefix": self.value[:12],
            "tenant": self.tenant,
            "service": self.service,
            "client_email": self.client_email,
            "scopes": sorted(self.scopes),
            "subject": self.subject,
            "expires_at": self.expires_at,
            "expired": self.expired(),
        }


class TokenStore:
    """Access tokens the simulated Google token endpoint issued."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}

    def issue(
        self,
        *,
        tenant: str,
        service: GoogleService,
        client_email: str,
        scopes: frozenset[str],
        subject: str | None,
    ) -> AccessToken:
        token = AccessToken(
            value="ya29." + secrets.token_urlsafe(64),
            tenant=tenant,
            service=service,
            client_email=client_email,
            scopes=scopes,
            subject=subject,
            expires_at=time.time() + TOKEN_LIFETIME,
        )
        self._tokens[token.value] = token
        return token

    def get(self, value: str | None) -> AccessToken | None:
        return self._tokens.get(value) if value else None

    def expire_all(self) -> int:
        """Expire every token (they stay known, so an API call answers 401); how many."""
        now = time.time()
        live = [t for t in self._tokens.values() if not t.expired(now)]
        for token in live:
            token.expires_at = now
        return len(live)

    def all(self) -> list[AccessToken]:
        return list(self._tokens.values())

    def clear(self) -> None:
        self._tokens.clear()


@dataclass
class SyncState:
    tokens: TokenStore = field(default_factory=TokenStore)
    # (tenant, lower-cased primary email) -> Directory user resource
    users: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (tenant, student id) -> {"student_id", "profile", "updated_at"}
    profiles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (tenant, studentId) -> the contact as last updated
    contacts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def clear(self) -> None:
        self.tokens.clear()
        self.users.clear()
        self.profiles.clear()
        self.contacts.clear()

    def view(self, table: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
        """A table's records, each with its tenant, for the `/_sim` state routes."""
        return [{"tenant": tenant, **record} for (tenant, _), record in table.items()]
