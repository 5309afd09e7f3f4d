"""Typed domain errors: each names one broken rule."""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""

    code = "domain-error"


class ValidationFailed(DomainError):
    """A value given to a command is not acceptable."""

    code = "validation-error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AlreadyExists(DomainError):
    """Something with this identity is already recorded."""

    code = "already-exists"


class NotFound(DomainError):
    """Nothing with this identity is recorded."""

    code = "not-found"


class ConcurrencyConflict(DomainError):
    """Another writer changed the same stream first; the command may be retried."""

    code = "concurrency-conflict"
