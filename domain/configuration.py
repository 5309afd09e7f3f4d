"""Configuration commands: products, warehouses and bins, the tenant's settings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from domain.allocation import RemovalPolicy
from domain.catalog import (
    BarcodeClaim,
    BarcodeTaken,
    Product,
    Warehouse,
    barcode_id,
    product_id,
)
from domain.commands import Aggregates, CommandApplication, StockResult
from domain.errors import AlreadyExists, NotFound, ValidationFailed
from domain.metadata import EventMetadata
from domain.quantities import ZERO, normalised


class ConfigurationApplication(CommandApplication):
    """The catalog, the warehouses and the settings of one tenant."""

    # -- catalog ----------------------------------------------------------------------------------

    def register_product(
        self, sku: str, name: str, meta: EventMetadata, **fields: Any
    ) -> StockResult:
        """Adds a product to the catalog; a SKU is unique in the tenant, and so is a barcode.

        Without a removal policy the product takes the tenant's default (FIFO where that is
        FEFO and the product does not track expiry)."""

        def action() -> tuple[Aggregates, StockResult]:
            values = dict(fields)
            if values.get("removal_policy") is None:
                values["removal_policy"] = self.default_policy(bool(values.get("expiry_tracked")))
            product = Product.register(self.tenant_id, sku, name, **values)
            try:
                self.repository.get(product.id)
            except AggregateNotFoundError:
                self._not_a_barcode(sku)
                claims = self._claims(sku, product.barcode_codes, frozenset())
                return [product, *claims], StockResult(0)
            raise AlreadyExists(f"product {sku!r} already exists")

        return self.execute("register_product", {"sku": sku, "name": name, **fields}, meta, action)

    def change_product(self, sku: str, meta: EventMetadata, **changes: Any) -> StockResult:
        """Changes a product; decimals and tracking flags only while it has no stock on hand.
        Barcodes it no longer lists are released for other products to take."""

        def action() -> tuple[Aggregates, StockResult]:
            product = self.product(sku)
            items = [self.stock_item(sku, code) for code in product.warehouses]
            stocked = any(item is not None and item.on_hand() > ZERO for item in items)
            before = product.barcode_codes
            product.change(stocked, **changes)
            after = product.barcode_codes
            claims = self._claims(sku, after - before, before - after)
            return [product, *claims], StockResult(0)

        return self.execute("change_product", {"sku": sku, **changes}, meta, action)

    def product_as_registered(self, sku: str) -> Product:
        """The product as its registration left it (what the registering command answers)."""
        try:
            product: Product = self.repository.get(product_id(self.tenant_id, sku), version=1)
        except AggregateNotFoundError:
            raise NotFound(f"product {sku!r} does not exist") from None
        return product

    def default_policy(self, expiry_tracked: bool) -> str:
        """The tenant's default removal policy for a product; FEFO needs expiry tracking."""
        try:
            tenant = self.tenant()
        except NotFound:  # a tenant stream without its registration keeps the library default
            return RemovalPolicy.FIFO.value
        policy = getattr(tenant, "default_removal_policy", RemovalPolicy.FIFO.value)
        if policy == RemovalPolicy.FEFO.value and expiry_tracked:
            return policy
        return RemovalPolicy.FIFO.value

    def _claims(
        self, sku: str, taken: frozenset[str], released: frozenset[str]
    ) -> list[BarcodeClaim]:
        """The claims to save with the product: codes given up, then codes taken."""
        changed: list[BarcodeClaim] = []
        for code in sorted(released):
            claim = self._claim(code)
            if claim is not None:
                claim.release(sku)
                changed.append(claim)
        for code in sorted(taken):
            if code != sku:
                self._not_a_sku(code)
            claim = self._claim(code)
            if claim is None:
                changed.append(BarcodeClaim.claim(self.tenant_id, code, sku))
            else:
                claim.take(sku)
                changed.append(claim)
        return changed

    def _claim(self, code: str) -> BarcodeClaim | None:
        try:
            claim: BarcodeClaim = self.repository.get(barcode_id(self.tenant_id, code))
        except AggregateNotFoundError:
            return None
        return claim

    def _not_a_sku(self, code: str) -> None:
        """A barcode must not be another product's SKU: a scan would name two products.

        Unlike a barcode against a barcode, this is read, not claimed: a product registered at
        the very moment another claims its SKU as a barcode can slip through, and a lookup then
        lists both (the SKU first)."""
        try:
            self.repository.get(product_id(self.tenant_id, code))
        except AggregateNotFoundError:
            return
        raise BarcodeTaken(f"barcode {code!r} is the SKU of product {code!r}", code, code)

    def _not_a_barcode(self, sku: str) -> None:
        """A new SKU must not be another product's barcode, for the same reason."""
        claim = self._claim(sku)
        if claim is not None and claim.sku is not None:
            raise BarcodeTaken(
                f"{sku!r} is already a barcode of product {claim.sku!r}", sku, claim.sku
            )

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
