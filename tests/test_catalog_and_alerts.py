"""The catalog, incoming and available stock, and alerts, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, insert, inspect, pool, select, text

from domain.orders import ReceiveLine
from domain.purchasing import PurchaseOrder
from domain.sales_orders import LedgerApplication
from domain.stock_state import Conditions
from eventstore.store import LedgerStore
from ledger import migrate
from ledger.settings import Settings
from projections import alerts as alert_module
from projections.alerts import Alert, AlertKind, Cursor, alerts
from projections.catalog import Catalog, bins, products, warehouses
from projections.events import decode
from projections.lots import Lots
from projections.runner import Runner
from projections.schema import Base
from projections.stock_levels import StockLevel, StockLevels, stock_levels
from tests.orders import Clock, M, head, item, order_ledger
from tests.pgserver import fresh_database

Key = tuple[str, str]
T = TypeVar("T")
R = TypeVar("R")
OPEN = ("submitted", "partially_received")
ZERO = Decimal(0)
MY_TABLES = (
    "rm_stock_levels",
    "rm_stock_level_orders",
    "rm_products",
    "rm_warehouses",
    "rm_bins",
    "rm_product_barcodes",
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(store: LedgerStore, clock: Clock) -> LedgerApplication:
    return order_ledger(store, clock)


def caught_up(store: LedgerStore, engine: Engine, app: LedgerApplication) -> None:
    Runner(store, engine, [StockLevels(), Lots(), Catalog()], batch_size=7).run_tenant(
        app.tenant_id
    )


def levels(engine: Engine, app: LedgerApplication, **query: Any) -> dict[Key, StockLevel]:
    with engine.connect() as conn:
        found = stock_levels(conn, app.tenant_id, limit=1000, **query)
    return {(s.sku, s.warehouse): s for s in found}


def alerts_of(engine: Engine, app: LedgerApplication, **query: Any) -> list[Alert]:
    with engine.connect() as conn:
        return alerts(conn, app.tenant_id, **query)


def open_quantities(app: LedgerApplication, orders: list[UUID]) -> dict[Key, Decimal]:
    """Incoming stock as the purchase order aggregates have it."""
    totals: dict[Key, Decimal] = {}
    for order_id in orders:
        order: object = app.repository.get(order_id)
        assert isinstance(order, PurchaseOrder)
        for line in order.lines if order.status in OPEN else []:
            key = (line.sku, order.warehouse)
            totals[key] = totals.get(key, Decimal(0)) + line.open
    return totals


def folded_available(app: LedgerApplication, sku: str, warehouse: str, now: datetime) -> Decimal:
    """What the stock item itself says a policy may still reserve at `now`."""
    site = app.warehouse(warehouse)
    today = now.astimezone(ZoneInfo(site.timezone)).date()
    conditions = Conditions(app.product(sku).rules, site.bins, today, now, timezone=site.timezone)
    return item(app, sku, warehouse).available(conditions)


def paged(fetch: Callable[[T | None], list[R]], cursor: Callable[[R], T]) -> list[R]:
    """Every page, each fetched after the cursor of the last row of the one before."""
    found: list[R] = []
    after: T | None = None
    while page := fetch(after):
        found += page
        after = cursor(page[-1])
    return found


# -- the catalog ------------------------------------------------------------------------------


def test_the_catalog_holds_products_warehouses_and_bins_as_their_events_left_them(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    app.register_product(
        "SOAP", "Soap", M, uom="bar", reorder_point=4, reorder_quantity=20, attributes={"a": 1}
    )
    app.change_product("SOAP", M, active=False, name="Soap bar")
    app.change_product("MILK", M, expiry_alert_days=3)
    app.add_bin("WH2", "Q1", M, zone="QA", pickable=False)
    caught_up(store, engine, app)
    with engine.connect() as conn:
        found = {p.sku: p for p in products(conn, app.tenant_id)}
        active = [p.sku for p in products(conn, app.tenant_id, active=True)]
        sites = warehouses(conn, app.tenant_id)
        wh2 = bins(conn, app.tenant_id, warehouse="WH2")
    assert list(found) == ["BOLT", "MILK", "SOAP"]
    assert active == ["BOLT", "MILK"]
    soap, milk, bolt = found["SOAP"], found["MILK"], found["BOLT"]
    assert (soap.name, soap.uom, soap.active, soap.attributes, soap.barcodes) == (
        "Soap bar",
        "bar",
        False,
        {"a": 1},
        (),
    )
    assert (soap.reorder_point, soap.reorder_quantity) == (Decimal(4), Decimal(20))
    assert (milk.lot_tracked, milk.expiry_tracked, milk.removal_policy) == (True, True, "fefo")
    assert (milk.shelf_life_days, milk.expiry_alert_days, milk.reorder_point) == (10, 3, None)
    assert (bolt.decimals, bolt.lot_tracked, bolt.removal_policy) == (2, False, "fifo")
    assert [(w.code, w.name, w.timezone) for w in sites] == [
        ("WH1", "WH1", "Europe/Berlin"),
        ("WH2", "WH2", "Europe/Berlin"),
    ]
    assert [(b.code, b.zone, b.pickable) for b in wh2] == [
        ("A1", None, True),
        ("A2", None, True),
        ("DOCK", None, False),
        ("Q1", "QA", False),
    ]
    assert (wh2[-1].position, milk.position) == (head(app), head(app) - 1)


def test_catalog_queries_page_by_cursor_through_every_row_once(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    app.register_product("SOAP", "Soap", M)
    caught_up(store, engine, app)
    with engine.connect() as conn:
        tenant = app.tenant_id
        every = (products(conn, tenant), warehouses(conn, tenant), bins(conn, tenant))
        by_one = paged(lambda after: products(conn, tenant, after=after, limit=1), lambda p: p.sku)
        sites = paged(
            lambda after: warehouses(conn, tenant, after=after, limit=1),
            lambda w: w.code,
        )
        places = paged(
            lambda after: bins(conn, tenant, after=after, limit=2),
            lambda b: (b.warehouse, b.code),
        )
    assert [p.sku for p in by_one] == ["BOLT", "MILK", "SOAP"]
    assert (by_one, sites, places) == every
    assert [(b.warehouse, b.code) for b in places] == [
        (warehouse, code) for warehouse in ("WH1", "WH2") for code in ("A1", "A2", "DOCK")
    ]


# -- incoming -----------------------------------------------------------------------------------


def test_incoming_is_the_open_quantity_of_submitted_purchase_orders_only(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    lines: list[tuple[str, int | str, str]] = [("MILK", 20, "0.80"), ("BOLT", "7.5", "0.10")]
    order = app.create_purchase_order("Acme", "WH1", lines, M).order_id
    caught_up(store, engine, app)
    assert levels(engine, app) == {}  # a draft brings nothing

    app.submit_purchase_order(order, M)
    caught_up(store, engine, app)
    found = levels(engine, app)
    assert {k: s.incoming for k, s in found.items()} == open_quantities(app, [order])
    assert {k: s.incoming for k, s in found.items()} == {
        ("MILK", "WH1"): 20,
        ("BOLT", "WH1"): Decimal("7.5"),
    }
    assert {s.position for s in found.values()} == {head(app)}
    assert found[("BOLT", "WH1")].on_hand == 0  # ordered, never stocked here

    receipt = [ReceiveLine(1, 8, "A1", lot="L1", expires_on=date(2026, 6, 30))]
    app.receive_purchase_order(order, receipt, M)
    caught_up(store, engine, app)
    found = levels(engine, app)
    assert {k: (s.on_hand, s.incoming) for k, s in found.items()} == {
        ("MILK", "WH1"): (8, 12),
        ("BOLT", "WH1"): (0, Decimal("7.5")),
    }
    assert {k: s.incoming for k, s in found.items()} == open_quantities(app, [order])

    app.close_purchase_order(order, M)
    caught_up(store, engine, app)
    closed_at = head(app)
    changed = levels(engine, app, changed_after=closed_at - 1)
    assert {k: (s.incoming, s.position) for k, s in changed.items()} == {
        ("MILK", "WH1"): (0, closed_at),
        ("BOLT", "WH1"): (0, closed_at),
    }
    assert open_quantities(app, [order]) == {}


def test_a_cancelled_order_brings_nothing_and_other_orders_still_count(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    first = app.create_purchase_order("Acme", "WH2", [("BOLT", 3, "0.10")], M).order_id
    second = app.create_purchase_order("Bolts Ltd", "WH2", [("BOLT", 5, "0.12")], M).order_id
    for order in (first, second):
        app.submit_purchase_order(order, M)
    caught_up(store, engine, app)
    assert levels(engine, app)[("BOLT", "WH2")].incoming == 8

    app.cancel_purchase_order(first, M)
    caught_up(store, engine, app)
    level = levels(engine, app)[("BOLT", "WH2")]
    assert (level.incoming, level.position) == (5, head(app))
    assert open_quantities(app, [first, second]) == {("BOLT", "WH2"): 5}


def test_an_over_received_line_brings_nothing_more_and_takes_nothing_from_the_others(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    app.change_settings(M, over_receipt_tolerance_pct=50)
    lines = [("BOLT", 10, "0.10"), ("BOLT", 4, "0.10")]
    order = app.create_purchase_order("Acme", "WH1", lines, M).order_id
    app.submit_purchase_order(order, M)
    app.receive_purchase_order(order, [ReceiveLine(1, 12, "A1")], M)
    caught_up(store, engine, app)
    level = levels(engine, app)[("BOLT", "WH1")]
    assert (level.on_hand, level.incoming) == (12, 4)
    assert open_quantities(app, [order]) == {("BOLT", "WH1"): 4}


# -- available ----------------------------------------------------------------------------------


def test_available_is_released_unexpired_unreserved_stock_in_pickable_bins(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    receipts = [
        ("A1", 10, "FRESH", date(2026, 6, 24)),
        ("A2", 5, "HELD", date(2026, 6, 25)),
        ("A2", 2, "QUAR", date(2026, 6, 26)),
        ("A1", 4, "SOON", date(2026, 6, 16)),
        ("DOCK", 6, "DOCKED", date(2026, 6, 30)),
    ]
    for bin_code, qty, lot, expires_on in receipts:
        app.receive("MILK", "WH1", bin_code, qty, "0.80", M, lot=lot, expires_on=expires_on)
    app.set_lot_status("MILK", "HELD", "hold", M)
    app.set_lot_status("MILK", "QUAR", "quarantine", M)
    app.reserve("MILK", "WH1", 3, "pick-1", M)  # FEFO: from SOON
    caught_up(store, engine, app)

    level = levels(engine, app, now=clock.now)[("MILK", "WH1")]
    assert (level.on_hand, level.reserved, level.available) == (27, 3, 11)  # FRESH 10, SOON 1
    assert level.available == folded_available(app, "MILK", "WH1", clock.now)

    clock.advance(days=2)  # SOON expired yesterday
    level = levels(engine, app, now=clock.now)[("MILK", "WH1")]
    assert level.available == 10 == folded_available(app, "MILK", "WH1", clock.now)


def test_expiry_is_judged_on_the_business_date_of_the_warehouse(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    app.receive("MILK", "WH1", "A1", 4, "0.80", M, lot="SOON", expires_on=date(2026, 6, 16))
    caught_up(store, engine, app)
    late = datetime(2026, 6, 16, 23, 30, tzinfo=UTC)  # the 17th in Berlin
    assert levels(engine, app, now=late)[("MILK", "WH1")].available == 0
    assert levels(engine, app, today=date(2026, 6, 16))[("MILK", "WH1")].available == 4
    assert folded_available(app, "MILK", "WH1", late) == 0
    assert [(a.kind, a.lot) for a in alerts_of(engine, app, now=late)] == [("expired", "SOON")]


# -- alerts ------------------------------------------------------------------------------------


def test_low_stock_is_alerted_while_available_is_below_the_reorder_point(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("BOLT", M, reorder_point=5)
    app.receive("BOLT", "WH1", "A1", 3, "0.10", M)
    app.receive("BOLT", "WH1", "DOCK", 10, "0.10", M)  # on hand, not available
    app.receive("MILK", "WH1", "A1", 1, "0.80", M, lot="L1")  # MILK has no reorder point
    caught_up(store, engine, app)
    low = alerts_of(engine, app, now=clock.now, kinds=["low_stock"])
    expected = Alert(
        "low_stock", "BOLT", "WH1", reorder_point=Decimal(5), available=Decimal(3), incoming=ZERO
    )
    assert low == [expected]

    app.receive("BOLT", "WH1", "A2", 4, "0.10", M)
    caught_up(store, engine, app)
    assert alerts_of(engine, app, now=clock.now, kinds=["low_stock"]) == []

    app.reserve("BOLT", "WH1", 3, "pick-1", M)
    caught_up(store, engine, app)
    assert [a.available for a in alerts_of(engine, app, now=clock.now, kinds=["low_stock"])] == [4]

    app.change_product("BOLT", M, active=False)  # no longer stocked: nothing to reorder
    caught_up(store, engine, app)
    assert alerts_of(engine, app, now=clock.now, kinds=["low_stock"]) == []


def test_a_lot_is_expiring_within_its_alert_days_then_expired_until_written_off(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("MILK", M, expiry_alert_days=3)
    app.receive("MILK", "WH1", "A1", 10, "0.80", M, lot="L1", expires_on=date(2026, 6, 20))
    app.receive("MILK", "WH1", "DOCK", 2, "0.80", M, lot="L1", expires_on=date(2026, 6, 20))
    caught_up(store, engine, app)

    def on(day: int) -> list[tuple[AlertKind, str | None, str | None, Decimal | None]]:
        found = alerts_of(engine, app, today=date(2026, 6, day))
        assert all(a.expires_on == date(2026, 6, 20) for a in found)
        return [(a.kind, a.lot, a.bin, a.quantity) for a in found]

    assert on(16) == []
    assert on(17) == [("expiring", "L1", "A1", 10), ("expiring", "L1", "DOCK", 2)]
    assert on(20) == on(17)  # usable through the day it expires
    assert on(21) == [("expired", "L1", "A1", 10), ("expired", "L1", "DOCK", 2)]

    clock.advance(days=6)
    app.write_off_expired("MILK", "WH1", M)
    caught_up(store, engine, app)
    assert alerts_of(engine, app, now=clock.now) == []


def test_alerts_page_in_a_stable_order_by_cursor(
    store: LedgerStore, engine: Engine, app: LedgerApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alert_module, "CHUNK", 2)  # scans go on across chunks without alerts
    app.register_product(
        "CREAM", "Cream", M, lot_tracked=True, expiry_tracked=True, expiry_alert_days=10
    )
    app.change_product("MILK", M, expiry_alert_days=3, reorder_point=100)
    app.change_product("BOLT", M, reorder_point=5)
    stock = [
        ("CREAM", "WH1", "A1", "C1", date(2026, 6, 27)),
        ("MILK", "WH1", "A1", "L1", date(2026, 6, 18)),
        ("MILK", "WH1", "A2", "L2", date(2026, 6, 25)),
        ("MILK", "WH1", "DOCK", "L5", date(2026, 6, 17)),
        ("MILK", "WH2", "A1", "L3", date(2026, 6, 19)),
        ("MILK", "WH2", "A2", "L4", date(2026, 6, 30)),
    ]
    for sku, warehouse, bin_code, lot, expires_on in stock:
        app.receive(sku, warehouse, bin_code, 2, "1", M, lot=lot, expires_on=expires_on)
    app.receive("BOLT", "WH1", "A1", 2, "0.10", M)
    app.receive("BOLT", "WH2", "A1", 9, "0.10", M)
    caught_up(store, engine, app)
    today = date(2026, 6, 18)

    every = alerts_of(engine, app, today=today)
    assert [(a.kind, a.sku, a.warehouse, a.lot) for a in every] == [
        ("expired", "MILK", "WH1", "L5"),
        ("expiring", "CREAM", "WH1", "C1"),
        ("expiring", "MILK", "WH1", "L1"),
        ("expiring", "MILK", "WH2", "L3"),
        ("low_stock", "BOLT", "WH1", None),
        ("low_stock", "MILK", "WH1", None),
        ("low_stock", "MILK", "WH2", None),
    ]
    assert [a.cursor for a in every] == sorted(a.cursor for a in every)

    def pages(size: int) -> list[Alert]:
        def page(after: Cursor | None) -> list[Alert]:
            return alerts_of(engine, app, today=today, after=after, limit=size)

        return paged(page, lambda a: a.cursor)

    assert pages(1) == pages(2) == pages(3) == every
    kinds: list[AlertKind] = ["low_stock", "expired"]
    assert alerts_of(engine, app, today=today, kinds=kinds) == [a for a in every if a.kind in kinds]


# -- exactly once, and the migration ----------------------------------------------------------


def rows_of(engine: Engine, tenant_id: UUID) -> dict[str, list[tuple[Any, ...]]]:
    tables = {name: Base.metadata.tables[name] for name in MY_TABLES}
    with engine.connect() as conn:
        return {
            name: [
                tuple(row)
                for row in conn.execute(
                    select(table)
                    .where(table.c.tenant_id == tenant_id)
                    .order_by(*table.primary_key.columns)
                )
            ]
            for name, table in tables.items()
        }


def test_delivering_events_again_changes_no_row(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    app.change_product(
        "BOLT", M, reorder_point=5, barcodes=[{"code": "BOLT-BOX", "pack_quantity": "100"}]
    )
    app.register_product("NUT", "Nut M6", M, barcodes=[{"code": "96385074", "kind": "ean8"}])
    app.change_product("BOLT", M, barcodes=[{"code": "BOLT-CASE", "pack_quantity": 500}])
    app.change_product("NUT", M, barcodes=[{"code": "BOLT-BOX"}])
    order = app.create_purchase_order("Acme", "WH1", [("BOLT", 10, "0.10")], M).order_id
    app.submit_purchase_order(order, M)
    app.receive_purchase_order(order, [ReceiveLine(1, 4, "A1")], M)
    app.reserve("BOLT", "WH1", 1, "pick-1", M)
    app.add_bin("WH1", "B1", M, zone="B")
    other = app.create_purchase_order("Acme", "WH2", [("MILK", 3, "0.80")], M).order_id
    app.submit_purchase_order(other, M)
    app.cancel_purchase_order(other, M)
    caught_up(store, engine, app)
    before = rows_of(engine, app.tenant_id)
    assert all(before.values())

    events = [decode(e) for e in store.iter_events(app.tenant_id)]
    with engine.begin() as conn:
        for projection in (StockLevels(), Catalog()):
            projection.apply(conn, app.tenant_id, events)
            projection.apply(conn, app.tenant_id, events[len(events) // 2 :])
            projection.apply(conn, app.tenant_id, events[-3:])
    assert rows_of(engine, app.tenant_id) == before


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: str = request.getfixturevalue("pg_server")
    with fresh_database(server, f"ledger_mig_{uuid.uuid4().hex[:12]}") as url:
        yield Settings(database_url=url).sqlalchemy_url


def test_migration_0008_gives_existing_stock_levels_nothing_incoming(empty_database: str) -> None:
    config = migrate.alembic_config(empty_database, partitions=2)
    command.upgrade(config, "0007")
    table = Base.metadata.tables["rm_stock_levels"]
    stocked = {
        "tenant_id": uuid.uuid4(),
        "sku": "BOLT",
        "warehouse": "WH1",
        "stream_id": uuid.uuid4(),
        "on_hand": Decimal(5),
        "reserved": Decimal(0),
        "value": Decimal(10),
        "last_position": 3,
    }
    ordered = {**stocked, "sku": "MILK", "stream_id": None, "incoming": Decimal(7)}
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), stocked)
        command.upgrade(config, "0008")
        with engine.begin() as conn:
            found = conn.execute(select(table.c.on_hand, table.c.incoming)).one()
            conn.execute(insert(table), ordered)  # a row of incoming stock alone
        assert tuple(found) == (5, 0)
        command.downgrade(config, "0007")
        with engine.connect() as conn:
            left = conn.execute(text("SELECT sku FROM rm_stock_levels")).scalars().all()
        assert left == ["BOLT"]
    finally:
        engine.dispose()


def test_migration_0011_adds_the_barcode_table_and_takes_it_away_again(
    empty_database: str,
) -> None:
    config = migrate.alembic_config(empty_database, partitions=2)
    command.upgrade(config, "0011")
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    try:
        assert "rm_product_barcodes" in inspect(engine).get_table_names()
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                protected = conn.scalar(
                    text("SELECT relrowsecurity FROM pg_class WHERE relname = :t"),
                    {"t": "rm_product_barcodes"},
                )
            assert protected is True
        command.downgrade(config, "0010")
        assert "rm_product_barcodes" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
