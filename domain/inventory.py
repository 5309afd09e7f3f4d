"""The stock ledger's application service: one method per command, idempotent, retried on races."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import MutableOrImmutableAggregate

from domain.allocation import LotStatus
from domain.catalog import Product, validate_code
from domain.commands import CONFIGURATION, Aggregates, CommandApplication, Receipt, StockResult
from domain.configuration import ConfigurationApplication
from domain.errors import LotRequired, UnknownReference, ValidationFailed
from domain.lots import Lot
from domain.metadata import EventMetadata
from domain.orders import check_reference
from domain.quantities import ZERO, counted_quantity, money, normalised, quantity, signed_quantity
from domain.stock import StockItem
from domain.stock_state import Conditions
from domain.values import Pick

__all__ = [
    "CONFIGURATION",
    "Aggregates",
    "CommandApplication",
    "InventoryApplication",
    "Receipt",
    "StockResult",
]

REASONS = frozenset(
    {"sale", "consumption", "damage", "loss", "theft", "sample", "expiry", "correction", "other"}
)


class InventoryApplication(ConfigurationApplication):
    """Catalog, warehouse and stock commands of one tenant."""

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
            return conditions.business_date + timedelta(days=product.shelf_life_days)
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
