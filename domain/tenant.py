"""The tenant: the unit of isolation, ordering and partitioning."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from eventsourcing.domain import Aggregate

from domain.access import (
    DEFAULT_ROLES,
    ApiKey,
    digest,
    matches,
    new_key,
    validate_key_name,
    validate_roles,
)
from domain.errors import NotFound, ValidationFailed
from domain.ids import tenant_id_for

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME_LENGTH = 200
MAX_TOLERANCE_PCT = Decimal(1000)
ZERO = Decimal(0)


def validate_slug(slug: str) -> str:
    """Slugs are 1-63 lowercase letters, digits and inner hyphens (DNS-label rules)."""
    if not SLUG_PATTERN.fullmatch(slug):
        raise ValidationFailed(
            "slug", f"{slug!r} must be 1-63 lowercase letters, digits or inner hyphens"
        )
    return slug


def validate_timezone(timezone: str) -> str:
    """A time zone is an IANA name such as ``Europe/Berlin``."""
    if timezone not in available_timezones():
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(
                "timezone", f"{timezone!r} is not an IANA time zone name"
            ) from None
    return timezone


def validate_name(name: str) -> str:
    """A display name is 1-200 printable characters."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME_LENGTH or not stripped.isprintable():
        raise ValidationFailed("name", f"must be 1-{MAX_NAME_LENGTH} printable characters")
    return stripped


class Tenant(Aggregate):
    """A customer of the ledger; its id is derived from its slug, so a slug is taken once."""

    #: Percent a purchase order line may be received beyond its ordered quantity.
    over_receipt_tolerance_pct = Decimal(0)

    class Created(Aggregate.Created):
        """A tenant was registered with its slug, display name and time zone."""

        slug: str
        name: str
        timezone: str

    @staticmethod
    def create_id(slug: str, **_: Any) -> UUID:
        return tenant_id_for(slug)

    class SettingsChanged(Aggregate.Event):
        """Some of the tenant's settings were changed."""

        changes: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            for name, value in self.changes.items():
                setattr(aggregate, name, value)

    class ApiKeyIssued(Aggregate.Event):
        """An API key was issued: its id, name, roles and the SHA-256 of its secret."""

        key_id: str
        name: str
        roles: list[str]
        secret_digest: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Tenant)
            aggregate.keys()[self.key_id] = {
                "name": self.name,
                "roles": list(self.roles),
                "secret_digest": self.secret_digest,
                "issued_at": self.timestamp,
                "revoked_at": None,
            }

    class ApiKeyRevoked(Aggregate.Event):
        """An API key was revoked: it authenticates nothing from now on."""

        key_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Tenant)
            aggregate.keys()[self.key_id]["revoked_at"] = self.timestamp

    def __init__(self, slug: str, name: str, timezone: str) -> None:
        self.slug = slug
        self.name = name
        self.timezone = timezone
        self.block_expired_issue = True
        self.period_lock_date: date | None = None

    def change_settings(
        self,
        *,
        block_expired_issue: bool | None = None,
        period_lock_date: date | None = None,
        over_receipt_tolerance_pct: Decimal | None = None,
    ) -> None:
        """Changes the rules stock and order commands follow in this tenant."""
        changes: dict[str, Any] = {}
        tolerance = over_receipt_tolerance_pct
        if tolerance is not None:
            if not tolerance.is_finite() or not ZERO <= tolerance <= MAX_TOLERANCE_PCT:
                raise ValidationFailed(
                    "over_receipt_tolerance_pct", f"must be from 0 to {MAX_TOLERANCE_PCT}"
                )
            if tolerance != self.over_receipt_tolerance_pct:
                changes["over_receipt_tolerance_pct"] = tolerance
        if block_expired_issue is not None and block_expired_issue != self.block_expired_issue:
            changes["block_expired_issue"] = block_expired_issue
        if period_lock_date is not None and period_lock_date != self.period_lock_date:
            changes["period_lock_date"] = period_lock_date
        if changes:
            self.trigger_event(self.SettingsChanged, changes=changes)

    def keys(self) -> dict[str, dict[str, Any]]:
        """The recorded API keys by id (a tenant from before keys existed has none)."""
        found: dict[str, dict[str, Any]] = self.__dict__.setdefault("issued_keys", {})
        return found

    def api_keys(self) -> list[ApiKey]:
        return [
            ApiKey(
                key_id,
                str(key["name"]),
                tuple(key["roles"]),
                key["issued_at"],
                key["revoked_at"],
            )
            for key_id, key in sorted(self.keys().items(), key=lambda item: item[1]["issued_at"])
        ]

    def issue_api_key(self, name: str, roles: list[str]) -> str:
        """Issues a key with these roles; returns the whole key (its secret is not kept)."""
        checked_name = validate_key_name(name)
        checked_roles = validate_roles(roles, DEFAULT_ROLES)
        key_id, secret, key = new_key(self.id)
        while key_id in self.keys():
            key_id, secret, key = new_key(self.id)
        self.trigger_event(
            self.ApiKeyIssued,
            key_id=key_id,
            name=checked_name,
            roles=checked_roles,
            secret_digest=digest(secret),
        )
        return key

    def revoke_api_key(self, key_id: str) -> None:
        """Revokes an active key (`NotFound` for an unknown one; a revoked one stays so)."""
        key = self.keys().get(key_id)
        if key is None:
            raise NotFound(f"API key {key_id!r} not found")
        if key["revoked_at"] is None:
            self.trigger_event(self.ApiKeyRevoked, key_id=key_id)

    def authenticate(self, key_id: str, secret: str) -> ApiKey | None:
        """The active key with this id and secret, else None."""
        key = self.keys().get(key_id)
        if (
            key is None
            or key["revoked_at"] is not None
            or not matches(secret, key["secret_digest"])
        ):
            return None
        return next(k for k in self.api_keys() if k.key_id == key_id)

    @classmethod
    def register(cls, slug: str, name: str | None = None, timezone: str = "UTC") -> Tenant:
        """Validates and registers a new tenant (its first event)."""
        validate_slug(slug)
        return cls(
            slug=slug,
            name=validate_name(slug if name is None else name),
            timezone=validate_timezone(timezone),
        )
