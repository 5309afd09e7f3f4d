"""Configuration commands: products, warehouses and bins, the tenant's settings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from domain.catalog import Product, Warehouse
from domain.commands import Aggregates, CommandApplication, StockResult
from domain.errors import AlreadyExists, ValidationFailed
from domain.metadata import EventMetadata
from domain.quantities import ZERO, normalised


class ConfigurationApplication(CommandApplication):
    """The catalog, the warehouses and the settings of one tenant."""

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
