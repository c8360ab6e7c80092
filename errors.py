"""Domain errors raised below the API; `api/errors.py` maps them to HTTP by type."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can cause or observe."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The entity does not exist, or belongs to another tenant."""


class Conflict(DomainError):
    """The request clashes with the current state (name taken, run in progress, pause decided)."""


class BadRequest(DomainError):
    """The request is well formed but not allowed in the current state."""


class InvalidDefinition(DomainError):
    """A workflow definition breaks a structural rule (cycle, dangling link, bad config, ...)."""


class InvalidInput(DomainError):
    """Run inputs do not match what the InputNode declares."""


class Unauthorized(DomainError):
    """Missing or invalid credentials."""


class Forbidden(DomainError):
    """Authenticated, but the role does not allow the action."""


class PayloadTooLarge(DomainError):
    """An upload exceeds the configured size limit."""


class Unavailable(DomainError):
    """A backing service (database, Temporal) cannot be reached."""
