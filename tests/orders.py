"""A tenant's ledger for order tests: products, two warehouses, and a clock the test moves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.ids import tenant_id_for
from domain.inventory import InventoryApplication
from domain.metadata import EventMetadata
from domain.quantities import ZERO
from domain.sales_orders import LedgerApplication
from domain.stock import StockItem
from eventstore.store import LedgerStore

M = EventMetadata()
START = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)


class Clock:
    """The application's clock: it moves only when a test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def order_ledger(store: LedgerStore, clock: Clock) -> LedgerApplication:
    """A wholesaler: FEFO milk (lots, expiry, 10 days' shelf life), FIFO bolts, two warehouses."""
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(slug)
    app = LedgerApplication(tenant, store.factory_for(tenant), clock=clock)
    app.create_tenant(slug, None, "Europe/Berlin", M)
    app.register_product(
        "MILK",
        "Milk 1l",
        M,
        lot_tracked=True,
        expiry_tracked=True,
        removal_policy="fefo",
        shelf_life_days=10,
    )
    app.register_product("BOLT", "Bolt M6", M, decimals=2)
    for code in ("WH1", "WH2"):
        app.register_warehouse(code, code, "Europe/Berlin", M)
        app.add_bin(code, "A1", M)
        app.add_bin(code, "A2", M)
        app.add_bin(code, "DOCK", M, pickable=False)
    return app


def head(app: InventoryApplication) -> int:
    return app.recorder.max_notification_id() or 0


def item(app: InventoryApplication, sku: str, warehouse: str = "WH1") -> StockItem:
    found = app.stock_item(sku, warehouse)
    assert found is not None
    return found


def on_hand(app: InventoryApplication, sku: str, warehouse: str = "WH1") -> Decimal:
    found = app.stock_item(sku, warehouse)
    return ZERO if found is None else found.on_hand()


def reserved(app: InventoryApplication, sku: str, warehouse: str = "WH1") -> Decimal:
    found = app.stock_item(sku, warehouse)
    return ZERO if found is None else found.reserved()
