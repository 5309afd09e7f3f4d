"""How a tenant's commands run: results, idempotency, retries on races, and loading."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Recording

from domain.application import SNAPSHOTTED, TenantApplication
from domain.catalog import Product, Warehouse, product_id, warehouse_id
from domain.errors import (
    ConcurrencyConflict,
    DomainError,
    IdempotencyKeyReused,
    InsufficientStock,
    NotFound,
    PeriodLocked,
    UnknownReference,
    ValidationFailed,
)
from domain.idempotency import (
    IdempotencyKeyTaken,
    IdempotencyLookup,
    IdempotencyRecord,
    KeyClaims,
    LocalKeyClaims,
    fingerprint,
)
from domain.lots import Lot, lot_id
from domain.metadata import EventMetadata
from domain.quantities import ZERO
from domain.stock import StockItem, stock_item_id
from domain.stock_state import Conditions
from domain.tenant import Tenant
from domain.values import Pick

#: A command that keeps losing optimistic-concurrency races gives up after this many attempts.
MAX_ATTEMPTS = 60

Aggregates = Sequence[MutableOrImmutableAggregate[UUID]]


@dataclass(frozen=True)
class StockResult:
    """What a stock command did: the position it reached, the stock that left, its cost."""

    position: int
    picks: tuple[Pick, ...] = ()
    lot: str | None = None
    difference: Decimal | None = None
    shortage: Decimal | None = None
    replayed: bool = False

    @property
    def cost(self) -> Decimal:
        return sum((p.cost for p in self.picks), ZERO)

    def outcome(self) -> bytes:
        return orjson.dumps(
            {
                "picks": [
                    [
                        p.layer,
                        p.lot,
                        p.bin,
                        str(p.quantity),
                        str(p.unit_cost),
                        p.expires_on.isoformat() if p.expires_on else None,
                    ]
                    for p in self.picks
                ],
                "lot": self.lot,
                "difference": None if self.difference is None else str(self.difference),
                "shortage": None if self.shortage is None else str(self.shortage),
            },
            default=str,
        )

    @classmethod
    def replay(cls, record: IdempotencyRecord) -> StockResult:
        data = orjson.loads(record.outcome)
        picks = tuple(
            Pick(
                layer,
                lot,
                bin_code,
                Decimal(q),
                Decimal(cost),
                date.fromisoformat(exp) if exp else None,
            )
            for layer, lot, bin_code, q, cost, exp in data["picks"]
        )
        return cls(
            position=record.position,
            picks=picks,
            lot=data["lot"],
            difference=None if data["difference"] is None else Decimal(data["difference"]),
            shortage=None if data["shortage"] is None else Decimal(data["shortage"]),
            replayed=True,
        )


@dataclass(frozen=True)
class Receipt:
    """Stock arriving in a bin as a lot, at a unit cost."""

    bin: str
    quantity: Decimal
    unit_cost: Decimal
    lot: str
    expires_on: date | None
    reference: str | None
    reason: str = "receipt"


Action = Callable[[], tuple[Aggregates, StockResult]]


class Result(Protocol):
    """A command's result: the position it reached, and what an idempotent replay returns."""

    @property
    def position(self) -> int: ...

    def outcome(self) -> bytes: ...


R = TypeVar("R", bound=Result)


class CommandObserver(Protocol):
    """Told what commands do (for metrics); the domain knows nothing of how it is measured."""

    def command_finished(self, command: str, outcome: str) -> None:
        """A command ended: "applied", "replayed", "refused" (a rule) or "failed"."""

    def events_appended(self, count: int) -> None:
        """A save appended `count` events."""

    def concurrency_retry(self, command: str) -> None:
        """A command lost an optimistic-concurrency race and runs again."""


class Unobserved:
    """The observer of a process that measures nothing."""

    def command_finished(self, command: str, outcome: str) -> None:
        pass

    def events_appended(self, count: int) -> None:
        pass

    def concurrency_retry(self, command: str) -> None:
        pass


# Commands that configure the ledger rather than record what happened in a warehouse: they
# take effect when recorded, so they take no business time of their own.
CONFIGURATION = frozenset(
    {"register_product", "change_product", "register_warehouse", "add_bin", "change_settings"}
)


class CommandApplication(TenantApplication):
    """Runs a tenant's commands: once per idempotency key, retried on lost races; loads what
    they need."""

    def __init__(
        self,
        tenant_id: UUID,
        factory: InfrastructureFactory,
        *,
        snapshot_interval: int = 20,
        snapshotted: tuple[type[MutableOrImmutableAggregate[UUID]], ...] = SNAPSHOTTED,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(
            tenant_id, factory, snapshot_interval=snapshot_interval, snapshotted=snapshotted
        )
        self.clock = clock
        # Set by the composition root: who is told what commands do, and who holds their keys.
        self.observer: CommandObserver = Unobserved()
        self.key_claims: KeyClaims = LocalKeyClaims()

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """The tenant's save, telling the observer how many events it appended."""
        recordings = super().save(*objs, **kwargs)
        if recordings:
            self.observer.events_appended(len(recordings))
        return recordings

    # -- the command pattern ----------------------------------------------------------------------

    def execute(
        self, command: str, request: dict[str, Any], meta: EventMetadata, action: Action
    ) -> StockResult:
        """Runs a stock command once per idempotency key (see `run`)."""
        return self.run(command, request, meta, action, StockResult.replay)

    def run(
        self,
        command: str,
        request: dict[str, Any],
        meta: EventMetadata,
        action: Callable[[], tuple[Aggregates, R]],
        replay: Callable[[IdempotencyRecord], R],
    ) -> R:
        """Runs a command once per idempotency key, retrying lost optimistic-concurrency races.

        `action` loads what it needs, decides, and returns the changed aggregates and the
        result; they are saved in one atomic save with the idempotency record of the result.
        While it runs, the client's key is claimed: the same key again is refused as in progress.
        """
        if meta.effective_at is not None:  # another business time is another request
            request = {**request, "effective_at": meta.effective_at.isoformat()}
        digest = fingerprint(command, request)
        try:
            result = self._once(command, meta, digest, action, replay)
        except DomainError:
            self.observer.command_finished(command, "refused")
            raise
        except Exception:
            self.observer.command_finished(command, "failed")
            raise
        replayed = bool(getattr(result, "replayed", False))
        self.observer.command_finished(command, "replayed" if replayed else "applied")
        return result

    def _once(
        self,
        command: str,
        meta: EventMetadata,
        digest: bytes,
        action: Callable[[], tuple[Aggregates, R]],
        replay: Callable[[IdempotencyRecord], R],
    ) -> R:
        """The recorded outcome of the key, or the command run under the claimed key (without
        a key: the command, deduplicated by nothing)."""
        key = meta.idempotency_key
        if key is None:
            return self._decide(command, meta, digest, action, replay)
        earlier = self._recorded(key, digest, replay)
        if earlier is not None:
            return earlier
        with self.key_claims.claim(self.tenant_id, key):
            # The first request may have finished between the look-up and the claim.
            earlier = self._recorded(key, digest, replay)
            if earlier is not None:
                return earlier
            return self._decide(command, meta, digest, action, replay)

    def _decide(
        self,
        command: str,
        meta: EventMetadata,
        digest: bytes,
        action: Callable[[], tuple[Aggregates, R]],
        replay: Callable[[IdempotencyRecord], R],
    ) -> R:
        """Runs the action and saves what it changed, again after each lost race."""
        key = meta.idempotency_key
        if meta.effective_at is not None:
            if command in CONFIGURATION:
                raise ValidationFailed(
                    "effective_at", f"{command} takes effect when recorded, not at a business time"
                )
            self.check_effective_at(meta.effective_at, self.tenant())
        for attempt in range(MAX_ATTEMPTS):
            aggregates, result = action()
            aggregates = [*aggregates, *self.follow_reservations(aggregates)]
            record = None if key is None else IdempotencyRecord(key, digest, result.outcome())
            try:
                recordings = self.save(*aggregates, meta=meta, idempotency=record)
            except IdempotencyKeyTaken:
                assert key is not None  # only a recorded key can be taken
                again = self._recorded(key, digest, replay)
                assert again is not None
                return again
            except IntegrityError:
                # Another writer changed a stream first: wait a little (jittered, growing, so
                # the losers of one race do not collide again at once), load again and retry.
                self.observer.concurrency_retry(command)
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
                continue
            position = (
                max(r.notification.id for r in recordings)
                if recordings
                else self.recorder.max_notification_id() or 0
            )
            positioned: R = replace(cast("Any", result), position=position)  # a dataclass
            return positioned
        raise ConcurrencyConflict(f"{command}: lost {MAX_ATTEMPTS} concurrency races; retry")

    def follow_reservations(self, aggregates: Aggregates) -> Aggregates:
        """Aggregates that must change with these in the same save (none here)."""
        return ()

    def _recorded(
        self, key: str, digest: bytes, replay: Callable[[IdempotencyRecord], R]
    ) -> R | None:
        recorder = self.recorder
        assert isinstance(recorder, IdempotencyLookup)
        record = recorder.select_idempotency(key)
        if record is None:
            return None
        if record.fingerprint != digest:
            raise IdempotencyKeyReused(f"idempotency key {key!r} was used for another request")
        return replay(record)

    # -- loading ----------------------------------------------------------------------------------

    def tenant(self) -> Tenant:
        tenant: Tenant = self.load(self.tenant_id, Tenant)
        return tenant

    def product(self, sku: str) -> Product:
        try:
            product: Product = self.load(product_id(self.tenant_id, sku), Product)
        except NotFound:
            raise UnknownReference(f"product {sku!r} does not exist") from None
        return product

    def warehouse(self, code: str) -> Warehouse:
        try:
            warehouse: Warehouse = self.load(warehouse_id(self.tenant_id, code), Warehouse)
        except NotFound:
            raise UnknownReference(f"warehouse {code!r} does not exist") from None
        return warehouse

    def stock_item(self, sku: str, warehouse: str) -> StockItem | None:
        try:
            item: StockItem = self.repository.get(stock_item_id(self.tenant_id, sku, warehouse))
        except AggregateNotFoundError:
            return None
        return item

    def lot(self, sku: str, lot: str) -> Lot | None:
        try:
            found: Lot = self.repository.get(lot_id(self.tenant_id, sku, lot))
        except AggregateNotFoundError:
            return None
        return found

    def conditions(
        self, product: Product, warehouse: Warehouse, tenant: Tenant, meta: EventMetadata
    ) -> Conditions:
        """The product's rules, the bins, today's business date and the entry's effective time."""
        now = self.clock()
        effective_at = meta.effective_at or now
        self.check_effective_at(effective_at, tenant)
        return Conditions(
            product=product.rules,
            bins=warehouse.bins,
            today=now.astimezone(ZoneInfo(warehouse.timezone)).date(),
            effective_at=effective_at,
            block_expired_issue=tenant.block_expired_issue,
            timezone=warehouse.timezone,
        )

    def check_effective_at(self, effective_at: datetime, tenant: Tenant) -> None:
        """An entry's business time: not in the future, not before the tenant's period lock."""
        if effective_at > self.clock() + timedelta(minutes=5):
            raise ValidationFailed("effective_at", "must not lie in the future")
        lock = tenant.period_lock_date
        if lock is not None and effective_at.astimezone(ZoneInfo(tenant.timezone)).date() < lock:
            raise PeriodLocked(f"entries before {lock} are locked")

    def context(
        self, sku: str, warehouse_code: str, meta: EventMetadata
    ) -> tuple[Product, Conditions, StockItem | None]:
        product, warehouse = self.product(sku), self.warehouse(warehouse_code)
        conditions = self.conditions(product, warehouse, self.tenant(), meta)
        return product, conditions, self.stock_item(sku, warehouse_code)

    def existing_item(
        self, item: StockItem | None, sku: str, warehouse: str, wanted: Decimal
    ) -> StockItem:
        if item is None:
            raise InsufficientStock(
                f"{wanted} of {sku} requested in {warehouse}, 0 available",
                requested=wanted,
                available=ZERO,
            )
        return item
