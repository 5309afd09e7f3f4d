"""The tenant: the unit of isolation, ordering and partitioning, with its settings, role map,
API keys and webhooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.access import (
    DEFAULT_ROLES,
    ApiKey,
    digest,
    grants,
    matches,
    new_key,
    validate_key_name,
    validate_role_map,
    validate_roles,
    validate_webhook_events,
    validate_webhook_secret,
    validate_webhook_url,
)
from domain.errors import NotFound, ValidationFailed
from domain.ids import tenant_id_for
from domain.tenant_settings import (
    DEFAULT_CURRENCY,
    MAX_ACTIVE_WEBHOOKS,
    TenantSettings,
    Webhook,
    validate_name,
    validate_slug,
    validate_timezone,
    validate_tolerance,
)


class Tenant(Aggregate):
    """A customer of the ledger; its id is derived from its slug, so a slug is taken once."""

    # Class-level defaults: a tenant recorded before a setting existed loads with its default.
    #: Percent a purchase order line may be received beyond its ordered quantity.
    over_receipt_tolerance_pct = Decimal(0)
    currency = DEFAULT_CURRENCY
    default_removal_policy = "fifo"
    #: Requests per second; None: the service's default.
    rate_limit_per_second: int | None = None
    #: The recorded role -> permissions map; None: the default map.
    role_map: dict[str, list[str]] | None = None

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

    class RolesChanged(Aggregate.Event):
        """The tenant's role -> permissions map was replaced."""

        roles: dict[str, list[str]]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Tenant)
            aggregate.role_map = {name: list(perms) for name, perms in self.roles.items()}

    class WebhookRegistered(Aggregate.Event):
        """A webhook was registered: where to send which public events, and the secret that
        signs its deliveries, sealed with the service's key (the delivery worker opens it)."""

        webhook_id: str
        url: str
        events: list[str]
        sealed_secret: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Tenant)
            aggregate.webhook_records()[self.webhook_id] = {
                "url": self.url,
                "events": list(self.events),
                "sealed_secret": self.sealed_secret,
                "created_at": self.timestamp,
                "disabled_at": None,
            }

    class WebhookDisabled(Aggregate.Event):
        """A webhook was disabled: nothing is delivered to it from now on."""

        webhook_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Tenant)
            aggregate.webhook_records()[self.webhook_id]["disabled_at"] = self.timestamp

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
        """Changes the rules stock and order commands follow in this tenant (None: unchanged)."""
        changes: dict[str, Any] = {}
        tolerance = over_receipt_tolerance_pct
        if tolerance is not None:
            validate_tolerance(tolerance)
            if tolerance != self.over_receipt_tolerance_pct:
                changes["over_receipt_tolerance_pct"] = tolerance
        if block_expired_issue is not None and block_expired_issue != self.block_expired_issue:
            changes["block_expired_issue"] = block_expired_issue
        if period_lock_date is not None and period_lock_date != self.period_lock_date:
            changes["period_lock_date"] = period_lock_date
        if changes:
            self.trigger_event(self.SettingsChanged, changes=changes)

    def settings(self) -> TenantSettings:
        """The tenant's settings as they stand."""
        return TenantSettings(
            timezone=self.timezone,
            currency=self.currency,
            over_receipt_tolerance_pct=self.over_receipt_tolerance_pct,
            block_expired_issue=self.block_expired_issue,
            default_removal_policy=self.default_removal_policy,
            period_lock_date=self.period_lock_date,
            rate_limit_per_second=self.rate_limit_per_second,
        )

    def replace_settings(self, settings: TenantSettings) -> None:
        """Adopts a whole settings document; records the fields that differ (nothing if none)."""
        current = self.settings()
        new = settings.validated()
        changes = {
            f.name: getattr(new, f.name)
            for f in fields(TenantSettings)
            if getattr(new, f.name) != getattr(current, f.name)
        }
        if changes:
            self.trigger_event(self.SettingsChanged, changes=changes)

    # -- roles ------------------------------------------------------------------------------------

    def roles(self) -> dict[str, frozenset[str]]:
        """The role -> permissions map in force ("*": every permission)."""
        return DEFAULT_ROLES if self.role_map is None else grants(self.role_map)

    def change_roles(self, roles: Mapping[str, Sequence[str]]) -> None:
        """Replaces the role map; the `admin` role must keep `admin` (see `validate_role_map`)."""
        checked = validate_role_map(roles)
        if grants(checked) != self.roles():
            self.trigger_event(self.RolesChanged, roles=checked)

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
        checked_roles = validate_roles(roles, self.roles())
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

    # -- webhooks ---------------------------------------------------------------------------------

    def webhook_records(self) -> dict[str, dict[str, Any]]:
        """The recorded webhooks by id, secrets included (none for a tenant from before)."""
        found: dict[str, dict[str, Any]] = self.__dict__.setdefault("registered_webhooks", {})
        return found

    def webhooks(self) -> list[Webhook]:
        """The registered webhooks, disabled ones too, oldest first."""
        return sorted(
            (self._webhook(hook_id, hook) for hook_id, hook in self.webhook_records().items()),
            key=lambda hook: (hook.created_at, hook.webhook_id),
        )

    def webhook(self, webhook_id: str) -> Webhook:
        """A registered webhook, or `NotFound`."""
        hook = self.webhook_records().get(webhook_id)
        if hook is None:
            raise NotFound(f"webhook {webhook_id!r} not found")
        return self._webhook(webhook_id, hook)

    def sealed_webhook_secret(self, webhook_id: str) -> str:
        """The sealed secret a webhook's deliveries are signed with (for the delivery worker)."""
        self.webhook(webhook_id)
        return str(self.webhook_records()[webhook_id]["sealed_secret"])

    def register_webhook(
        self,
        url: str,
        events: Sequence[str],
        secret: str,
        seal: Callable[[str], str],
        known: frozenset[str] | None = None,
    ) -> str:
        """Registers a webhook for these public event types (or "*"); returns its id. Only the
        secret sealed by `seal` is recorded. Whether its host may be reached is checked before
        (`domain.access.check_webhook_target`)."""
        validate_webhook_url(url)
        checked = validate_webhook_events(events, known)
        validate_webhook_secret(secret)
        if sum(hook.active for hook in self.webhooks()) >= MAX_ACTIVE_WEBHOOKS:
            raise ValidationFailed("url", f"at most {MAX_ACTIVE_WEBHOOKS} active webhooks")
        webhook_id = str(uuid4())
        self.trigger_event(
            self.WebhookRegistered,
            webhook_id=webhook_id,
            url=url,
            events=checked,
            sealed_secret=seal(secret),
        )
        return webhook_id

    def disable_webhook(self, webhook_id: str) -> None:
        """Disables a webhook (`NotFound` for an unknown one; a disabled one stays so)."""
        if self.webhook(webhook_id).active:
            self.trigger_event(self.WebhookDisabled, webhook_id=webhook_id)

    @staticmethod
    def _webhook(webhook_id: str, hook: dict[str, Any]) -> Webhook:
        return Webhook(
            webhook_id,
            str(hook["url"]),
            tuple(hook["events"]),
            hook["created_at"],
            hook["disabled_at"],
        )

    @classmethod
    def register(cls, slug: str, name: str | None = None, timezone: str = "UTC") -> Tenant:
        """Validates and registers a new tenant (its first event)."""
        validate_slug(slug)
        return cls(
            slug=slug,
            name=validate_name(slug if name is None else name),
            timezone=validate_timezone(timezone),
        )
