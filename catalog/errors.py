"""What the catalog refuses, in terms an operator (or the admin API's status codes) can act on."""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every catalog refusal."""


class NotFoundError(CatalogError, LookupError):
    def __init__(self, what: str, id: str) -> None:
        super().__init__(f"no {what} {id!r}")
        self.what = what
        self.id = id


class ConflictError(CatalogError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CatalogValidationError(CatalogError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PublishError(CatalogError):
    """Kafka did not acknowledge every snapshot in time: the outbox keeps them for the next try."""
