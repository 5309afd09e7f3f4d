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


class UnknownReference(DomainError):
    """The command names a SKU, warehouse, bin, lot or reservation this tenant does not have."""

    code = "unknown-reference"


class InvalidQuantity(ValidationFailed):
    """A quantity is not positive, or has more decimals than the product's unit allows."""


class LotRequired(DomainError):
    """A lot-tracked product needs a lot here."""

    code = "lot-required"


class InsufficientStock(DomainError):
    """More was asked for than is available."""

    code = "insufficient-stock"

    def __init__(self, message: str, requested: object, available: object) -> None:
        super().__init__(message)
        self.requested = requested
        self.available = available


class LotExpired(DomainError):
    """An expired lot was named for an issue, reservation, move or shipment."""

    code = "lot-expired"


class LotUnavailable(DomainError):
    """The lot is on hold or in quarantine."""

    code = "lot-unavailable"


class LotConflict(DomainError):
    """A receipt names an existing lot with a different expiry."""

    code = "lot-conflict"


class CountMismatch(DomainError):
    """The ledger no longer holds what the scanner expected: stock moved since the scan."""

    code = "count-mismatch"


class PeriodLocked(DomainError):
    """The effective time lies before the tenant's period lock date."""

    code = "period-locked"


class IdempotencyKeyReused(DomainError):
    """The idempotency key was used before for a different request."""

    code = "idempotency-key-reused"


class StockOnHand(DomainError):
    """A product's unit decimals or tracking flags cannot change while it has stock on hand."""

    code = "invalid-state"


class InvalidState(DomainError):
    """The command is not allowed in the order's current status."""

    code = "invalid-state"

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class OverReceipt(DomainError):
    """A receipt would take a line beyond its ordered quantity plus the tenant's tolerance."""

    code = "over-receipt"

    def __init__(self, message: str, ordered: object, receivable: object) -> None:
        super().__init__(message)
        self.ordered = ordered
        self.receivable = receivable


class ProjectionLagging(DomainError):
    """A read model has not reached the position a reader asked for in time; a retry may."""

    code = "projection-lagging"
    retryable = True

    def __init__(self, message: str, wanted: int, reached: int, lagging: tuple[str, ...]) -> None:
        super().__init__(message)
        self.wanted = wanted
        self.reached = reached
        self.lagging = lagging


class ProjectionFailed(ProjectionLagging):
    """A read model stopped at an event it could not apply: it stays behind until an operator
    clears the failure, so waiting for it is pointless."""

    def __init__(
        self, message: str, wanted: int, reached: int, projection: str, failed_at: int, error: str
    ) -> None:
        super().__init__(message, wanted, reached, (projection,))
        self.projection = projection
        self.failed_at = failed_at
        self.error = error
