"""The stock ledger's application service: one method per command, idempotent, retried on races."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError

from domain.allocation import LotStatus
from domain.application import SNAPSHOTTED, TenantApplication
from domain.catalog import Product, Warehouse, product_id, validate_code, warehouse_id
from domain.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InsufficientStock,
    LotRequired,
    NotFound,
    PeriodLocked,
    UnknownReference,
    ValidationFailed,
)
from domain.idempotency import (
    IdempotencyKeyTaken,
    IdempotencyLookup,
    IdempotencyRecord,
    fingerprint,
)
from domain.lots import Lot, lot_id
from domain.metadata import EventMetadata
from domain.orders import check_reference
from domain.quantities import (
    ZERO,
    counted_quantity,
    money,
    normalised,
    quantity,
    signed_quantity,
)
from domain.stock import StockItem, stock_item_id
from domain.stock_state import Conditions
from domain.tenant import Tenant
from domain.values import Pick

REASONS = frozenset(
    {"sale", "consumption", "damage", "loss", "theft", "sample", "expiry", "correction", "other"}
)
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

# Commands that configure the ledger rather than record what happened in a warehouse: they
# take effect when recorded, so they take no business time of their own.
CONFIGURATION = frozenset(
    {"register_product", "change_product", "register_warehouse", "add_bin", "change_settings"}
)


class InventoryApplication(TenantApplication):
    """Catalog, warehouse and stock commands of one tenant."""

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
        """
        if meta.idempotency_key is None:
            meta = replace(meta, idempotency_key=f"generated:{uuid.uuid4()}")
        key = meta.idempotency_key
        assert key is not None
        digest = fingerprint(command, request)
        earlier = self._recorded(key, digest, replay)
        if earlier is not None:
            return earlier
        if meta.effective_at is not None:
            if command in CONFIGURATION:
                raise ValidationFailed(
                    "effective_at", f"{command} takes effect when recorded, not at a business time"
                )
            self.check_effective_at(meta.effective_at, self.tenant())
        for attempt in range(MAX_ATTEMPTS):
            aggregates, result = action()
            aggregates = [*aggregates, *self.follow_reservations(aggregates)]
            record = IdempotencyRecord(key, digest, result.outcome())
            try:
                recordings = self.save(*aggregates, meta=meta, idempotency=record)
            except IdempotencyKeyTaken:
                again = self._recorded(key, digest, replay)
                assert again is not None
                return again
            except IntegrityError:
                # Another writer changed a stream first: wait a little (jittered, growing, so
                # the losers of one race do not collide again at once), load again and retry.
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

    # -- catalog ----------------------------------------------------------------------------------

    def register_product(
        self, sku: str, name: str, meta: EventMetadata, **fields: Any
    ) -> StockResult:
        """Adds a product to the catalog; a SKU is unique in the tenant."""

        def action() -> tuple[Aggregates, StockResult]:
            product = Product.register(self.tenant_id, sku, name, **fields)
            try:
                self.repository.get(product.id)
            except AggregateNotFoundError:
                return [product], StockResult(0)
            raise AlreadyExists(f"product {sku!r} already exists")

        return self.execute("register_product", {"sku": sku, "name": name, **fields}, meta, action)

    def change_product(self, sku: str, meta: EventMetadata, **changes: Any) -> StockResult:
        """Changes a product; decimals and tracking flags only while it has no stock on hand."""

        def action() -> tuple[Aggregates, StockResult]:
            product = self.product(sku)
            items = [self.stock_item(sku, code) for code in product.warehouses]
            stocked = any(item is not None and item.on_hand() > ZERO for item in items)
            product.change(stocked, **changes)
            return [product], StockResult(0)

        return self.execute("change_product", {"sku": sku, **changes}, meta, action)

    def register_warehouse(
        self, code: str, name: str, timezone: str, meta: EventMetadata
    ) -> StockResult:
        """Adds a warehouse with its time zone."""

        def action() -> tuple[Aggregates, StockResult]:
            warehouse = Warehouse.register(self.tenant_id, code, name, timezone)
            try:
                self.repository.get(warehouse.id)
            except AggregateNotFoundError:
                return [warehouse], StockResult(0)
            raise AlreadyExists(f"warehouse {code!r} already exists")

        request = {"code": code, "name": name, "timezone": timezone}
        return self.execute("register_warehouse", request, meta, action)

    def add_bin(
        self,
        warehouse: str,
        code: str,
        meta: EventMetadata,
        *,
        zone: str | None = None,
        pickable: bool = True,
    ) -> StockResult:
        """Adds a bin (pickable or not) to a warehouse."""

        def action() -> tuple[Aggregates, StockResult]:
            site = self.warehouse(warehouse)
            site.add_bin(code, zone, pickable)
            return [site], StockResult(0)

        request = {"warehouse": warehouse, "code": code, "zone": zone, "pickable": pickable}
        return self.execute("add_bin", request, meta, action)

    def change_settings(
        self,
        meta: EventMetadata,
        *,
        block_expired_issue: bool | None = None,
        period_lock_date: date | None = None,
        over_receipt_tolerance_pct: Decimal | int | str | None = None,
    ) -> StockResult:
        """Changes the tenant's stock and order rules."""
        tolerance = None
        if over_receipt_tolerance_pct is not None:
            try:
                tolerance = Decimal(over_receipt_tolerance_pct)
            except ArithmeticError:
                raise ValidationFailed("over_receipt_tolerance_pct", "must be a number") from None

        def action() -> tuple[Aggregates, StockResult]:
            tenant = self.tenant()
            tenant.change_settings(
                block_expired_issue=block_expired_issue,
                period_lock_date=period_lock_date,
                over_receipt_tolerance_pct=tolerance,
            )
            return [tenant], StockResult(0)

        request = {
            "block_expired_issue": block_expired_issue,
            "period_lock_date": period_lock_date,
            "over_receipt_tolerance_pct": normalised(over_receipt_tolerance_pct),
        }
        return self.execute("change_settings", request, meta, action)

    # -- stock movements --------------------------------------------------------------------------

    def receive(
        self,
        sku: str,
        warehouse: str,
        bin_code: str,
        qty: Decimal | int | str,
        unit_cost: Decimal | int | str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        expires_on: date | None = None,
        reference: str | None = None,
    ) -> StockResult:
        """Receives stock into a bin as a cost layer of a lot (generated when not given)."""
        generated = f"L-{uuid.uuid4().hex[:12].upper()}"

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            amount = quantity(qty, product.decimals)
            cost = money(unit_cost)
            code = validate_code("lot", lot) if lot is not None else generated
            registry = self.lot(sku, code) if lot is not None else None  # a new id is new
            receipt = Receipt(bin_code, amount, cost, code, expires_on, reference)
            item, registry = self.stock_receipt(
                product, conditions, warehouse, item, registry, receipt
            )
            return [item, registry, product], StockResult(0, lot=code)

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "bin": bin_code,
            "quantity": normalised(qty),
            "unit_cost": normalised(unit_cost),
            "lot": lot,
            "expires_on": expires_on,
            "reference": reference,
        }
        return self.execute("receive", request, meta, action)

    def stock_receipt(
        self,
        product: Product,
        conditions: Conditions,
        warehouse: str,
        item: StockItem | None,
        registry: Lot | None,
        receipt: Receipt,
    ) -> tuple[StockItem, Lot]:
        """Stock arriving in a bin as a lot: the stock item (opened if new) and the lot's
        registry (registered if new, else its expiry is the lot's one) change together."""
        if registry is None:
            expiry = self._expiry(product, receipt.expires_on, conditions)
            registry = Lot.register(self.tenant_id, product.sku, receipt.lot, expiry, warehouse)
        else:
            self._expiry(product, receipt.expires_on, conditions)  # validates what was given
            registry.check_expiry(receipt.expires_on)  # a lot keeps the expiry it came with
            expiry = registry.expires_on
            registry.stock_in(warehouse)
        if item is None:
            item = StockItem.open(self.tenant_id, product.sku, warehouse)
            product.stock_in(warehouse)
        item.receive(
            receipt.quantity,
            receipt.bin,
            receipt.unit_cost,
            receipt.lot,
            expiry,
            conditions,
            reason=receipt.reason,
            reference=receipt.reference,
        )
        item.set_lot_status(receipt.lot, registry.status)
        return item, registry

    def _expiry(self, product: Product, given: date | None, conditions: Conditions) -> date | None:
        if not product.expiry_tracked:
            if given is not None:
                raise ValidationFailed("expires_on", f"{product.sku} is not expiry tracked")
            return None
        if given is None and product.shelf_life_days is not None:
            return conditions.effective_at.date() + timedelta(days=product.shelf_life_days)
        return given

    def issue(
        self,
        sku: str,
        warehouse: str,
        qty: Decimal | int | str,
        reason: str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        bin_code: str | None = None,
        reference: str | None = None,
    ) -> StockResult:
        """Issues unreserved stock by the product's policy, or from a named lot and/or bin."""
        _check_reason(reason)

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            amount = quantity(qty, product.decimals)
            stock = self.existing_item(item, sku, warehouse, amount)
            picks = stock.issue(
                amount, reason, conditions, lot=lot, bin_code=bin_code, reference=reference
            )
            return [stock], StockResult(0, tuple(picks))

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "quantity": normalised(qty),
            "reason": reason,
            "lot": lot,
            "bin": bin_code,
            "reference": reference,
        }
        return self.execute("issue", request, meta, action)

    def reserve(
        self,
        sku: str,
        warehouse: str,
        qty: Decimal | int | str,
        reference: str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        allow_partial: bool = False,
    ) -> StockResult:
        """Reserves available stock for a reference: all or nothing, or partial on request."""
        check_reference(reference)

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            amount = quantity(qty, product.decimals)
            stock = self.existing_item(item, sku, warehouse, amount)
            allocation = stock.reserve(
                amount, reference, conditions, lot=lot, allow_partial=allow_partial
            )
            picks = tuple(
                Pick(0, h.lot, h.bin, h.quantity, ZERO, stock.expiry[h.lot])
                for h in allocation.holds
            )
            return [stock], StockResult(0, picks, shortage=allocation.shortage)

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "quantity": normalised(qty),
            "reference": reference,
            "lot": lot,
            "allow_partial": allow_partial,
        }
        return self.execute("reserve", request, meta, action)

    def release(self, sku: str, warehouse: str, reference: str, meta: EventMetadata) -> StockResult:
        """Releases everything a reference reserved."""
        check_reference(reference)

        def action() -> tuple[Aggregates, StockResult]:
            item = self.stock_item(sku, warehouse)
            if item is None:
                raise UnknownReference(f"no reservation {reference!r} of {sku} in {warehouse}")
            item.release(reference)
            return [item], StockResult(0)

        request = {"sku": sku, "warehouse": warehouse, "reference": reference}
        return self.execute("release", request, meta, action)

    def issue_reserved(
        self,
        sku: str,
        warehouse: str,
        reference: str,
        meta: EventMetadata,
        *,
        qty: Decimal | int | str | None = None,
        reason: str = "sale",
    ) -> StockResult:
        """Issues what a reference reserved; an expired or held lot blocks it."""
        check_reference(reference)
        _check_reason(reason)

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            amount = None if qty is None else quantity(qty, product.decimals)
            if item is None:
                raise UnknownReference(f"no reservation {reference!r} of {sku} in {warehouse}")
            picks = item.issue_reserved(reference, conditions, quantity=amount, reason=reason)
            return [item], StockResult(0, tuple(picks))

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "reference": reference,
            "quantity": normalised(qty),
            "reason": reason,
        }
        return self.execute("issue_reserved", request, meta, action)

    def move(
        self,
        sku: str,
        warehouse: str,
        from_bin: str,
        to_bin: str,
        qty: Decimal | int | str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        reference: str | None = None,
    ) -> StockResult:
        """Moves stock between bins of a warehouse."""

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            amount = quantity(qty, product.decimals)
            stock = self.existing_item(item, sku, warehouse, amount)
            picks = stock.move(amount, from_bin, to_bin, conditions, lot=lot, reference=reference)
            return [stock], StockResult(0, tuple(picks))

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "from_bin": from_bin,
            "to_bin": to_bin,
            "quantity": normalised(qty),
            "lot": lot,
            "reference": reference,
        }
        return self.execute("move", request, meta, action)

    def transfer(
        self,
        sku: str,
        from_warehouse: str,
        to_warehouse: str,
        to_bin: str,
        qty: Decimal | int | str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        from_bin: str | None = None,
        reference: str | None = None,
    ) -> StockResult:
        """Transfers stock to another warehouse; both stock items change in one atomic save."""
        check_reference(reference)
        if from_warehouse == to_warehouse:
            raise ValidationFailed("to_warehouse", "must differ from from_warehouse")

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, source = self.context(sku, from_warehouse, meta)
            destination_site = self.warehouse(to_warehouse)
            arrival = self.conditions(product, destination_site, self.tenant(), meta)
            amount = quantity(qty, product.decimals)
            stock = self.existing_item(source, sku, from_warehouse, amount)
            received = {str(layer.id): layer.received_at for layer in stock.layers.values()}
            picks = stock.transfer_out(
                amount, to_warehouse, conditions, lot=lot, from_bin=from_bin, reference=reference
            )
            destination = self.stock_item(sku, to_warehouse)
            if destination is None:
                destination = StockItem.open(self.tenant_id, sku, to_warehouse)
                product.stock_in(to_warehouse)
            destination.transfer_in(
                picks,
                {p.layer: received[str(p.layer)] for p in picks},
                to_bin,
                arrival,
                from_warehouse,
            )
            registries = []
            for code in sorted({p.lot for p in picks}):
                registry = self.lot(sku, code)
                if registry is not None:
                    registry.stock_in(to_warehouse)
                    destination.set_lot_status(code, registry.status)
                    registries.append(registry)
            return [stock, destination, product, *registries], StockResult(0, tuple(picks))

        request = {
            "sku": sku,
            "from_warehouse": from_warehouse,
            "to_warehouse": to_warehouse,
            "to_bin": to_bin,
            "quantity": normalised(qty),
            "lot": lot,
            "from_bin": from_bin,
            "reference": reference,
        }
        return self.execute("transfer", request, meta, action)

    def adjust(
        self,
        sku: str,
        warehouse: str,
        bin_code: str,
        delta: Decimal | int | str,
        reason: str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        unit_cost: Decimal | int | str | None = None,
    ) -> StockResult:
        """Corrects stock by a delta with a reason (a new lot needs a unit cost)."""
        _check_reason(reason)

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            change = signed_quantity(delta, product.decimals, "delta")
            cost = None if unit_cost is None else money(unit_cost)
            if change > ZERO and lot is None:
                raise LotRequired("a positive adjustment names its lot")
            if item is None:
                if change < ZERO:
                    self.existing_item(None, sku, warehouse, -change)
                item = StockItem.open(self.tenant_id, sku, warehouse)
                product.stock_in(warehouse)
            touched: list[MutableOrImmutableAggregate[UUID]] = [item, product]
            if change > ZERO and lot is not None and lot not in item.expiry:
                registry = self.lot(sku, lot)
                if registry is None:
                    validate_code("lot", lot)
                    registry = Lot.register(self.tenant_id, sku, lot, None, warehouse)
                registry.stock_in(warehouse)
                touched.append(registry)
                outcome = item.adjust(
                    change,
                    reason,
                    conditions,
                    bin_code=bin_code,
                    lot=lot,
                    unit_cost=cost,
                    expires_on=registry.expires_on,
                )
                item.set_lot_status(lot, registry.status)
            else:
                outcome = item.adjust(
                    change, reason, conditions, bin_code=bin_code, lot=lot, unit_cost=cost
                )
            picks = tuple(outcome) if isinstance(outcome, list) else ()
            return touched, StockResult(0, picks, lot=lot)

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "bin": bin_code,
            "delta": normalised(delta),
            "reason": reason,
            "lot": lot,
            "unit_cost": normalised(unit_cost),
        }
        return self.execute("adjust", request, meta, action)

    def count(
        self,
        sku: str,
        warehouse: str,
        bin_code: str,
        counted: Decimal | int | str,
        meta: EventMetadata,
        *,
        lot: str | None = None,
        expected: Decimal | int | str | None = None,
    ) -> StockResult:
        """Records a physical count of a lot in a bin, as the difference to the ledger."""

        def action() -> tuple[Aggregates, StockResult]:
            product, conditions, item = self.context(sku, warehouse, meta)
            amount = counted_quantity(counted, product.decimals, "counted_quantity")
            scan = (
                None
                if expected is None
                else counted_quantity(expected, product.decimals, "expected_quantity")
            )
            if item is None:
                raise UnknownReference(f"{sku} has no stock in {warehouse} to count")
            code = lot if lot is not None else _only_lot(item, bin_code, product)
            difference = item.count(amount, bin_code, code, conditions, expected=scan)
            return [item], StockResult(0, lot=code, difference=difference)

        request = {
            "sku": sku,
            "warehouse": warehouse,
            "bin": bin_code,
            "counted": normalised(counted),
            "lot": lot,
            "expected": normalised(expected),
        }
        return self.execute("count", request, meta, action)

    def set_lot_status(self, sku: str, lot: str, status: str, meta: EventMetadata) -> StockResult:
        """Releases a lot, puts it on hold or quarantines it, in every warehouse holding it."""
        try:
            new_status = LotStatus(status)
        except ValueError:
            raise ValidationFailed("status", "must be released, hold or quarantine") from None

        def action() -> tuple[Aggregates, StockResult]:
            registry = self.lot(sku, lot)
            if registry is None:
                raise UnknownReference(f"lot {lot!r} of {sku} does not exist")
            registry.set_status(new_status)
            items = [self.stock_item(sku, code) for code in registry.warehouses]
            for item in items:
                if item is not None:
                    item.set_lot_status(lot, new_status)
            return [registry, *[i for i in items if i is not None]], StockResult(0, lot=lot)

        request = {"sku": sku, "lot": lot, "status": status}
        return self.execute("set_lot_status", request, meta, action)

    def write_off_expired(
        self, sku: str, warehouse: str, meta: EventMetadata, *, lot: str | None = None
    ) -> StockResult:
        """Writes off expired stock (every expired lot, or one), reason `expiry`."""

        def action() -> tuple[Aggregates, StockResult]:
            _, conditions, item = self.context(sku, warehouse, meta)
            if item is None:
                return [], StockResult(0)
            picks = item.write_off_expired(conditions, lot=lot)
            return [item], StockResult(0, tuple(picks))

        request = {"sku": sku, "warehouse": warehouse, "lot": lot}
        return self.execute("write_off_expired", request, meta, action)


def _check_reason(reason: str) -> None:
    if reason not in REASONS:
        raise ValidationFailed("reason", f"must be one of {', '.join(sorted(REASONS))}")


def _only_lot(item: StockItem, bin_code: str, product: Product) -> str:
    lots = sorted({lt for lt, b in item.places() if b == bin_code})
    if product.lot_tracked or len(lots) != 1:
        raise LotRequired(f"name the lot counted in bin {bin_code!r}")
    return lots[0]
