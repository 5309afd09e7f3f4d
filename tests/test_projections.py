"""Projections on SQLite and PostgreSQL: equal to the fold of the events, exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.purchasing import PurchaseOrder
from domain.sales import SalesOrder
from domain.sales_orders import LedgerApplication
from domain.stock_state import Conditions
from eventstore.store import LedgerStore
from ledger import demo
from projections import stock_levels as stock_levels_module
from projections.audit_log import AuditLog, audit_log
from projections.catalog import Catalog
from projections.events import LedgerEvent, decode
from projections.lots import Lots, lots
from projections.movements import Movements, movements
from projections.orders import Orders, incoming, orders
from projections.runner import Runner
from projections.stock_levels import StockLevels, stock_levels

Levels = dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]


def seeded(store: LedgerStore, events: int, rng_seed: int = 7) -> LedgerApplication:
    slug = f"p-{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(slug)
    app = LedgerApplication(tenant, store.factory_for(tenant))
    app.create_tenant(slug, None, demo.TIMEZONE, EventMetadata())
    demo.seed(app, events=events, rng_seed=rng_seed, meta=EventMetadata())
    return app


def folded(app: LedgerApplication) -> Levels:
    """Stock levels as the stock items' own events fold them."""
    levels: Levels = {}
    for item in demo.CATALOG:
        for code, *_ in demo.WAREHOUSES:
            stock = app.stock_item(item.sku, code)
            if stock is not None:
                value = sum(layer.quantity * layer.unit_cost for layer in stock.layers.values())
                levels[(item.sku, code)] = (stock.on_hand(), stock.reserved(), Decimal(value))
    return {key: level for key, level in levels.items() if any(level)}


LotKey = tuple[str, str, str, str]
LotState = tuple[Decimal, Decimal, Decimal, object, object, str]


def folded_lots(app: LedgerApplication) -> dict[LotKey, LotState]:
    """Lots in bins as the stock items' own events fold them."""
    found: dict[LotKey, LotState] = {}
    for item in demo.CATALOG:
        for code, *_ in demo.WAREHOUSES:
            stock = app.stock_item(item.sku, code)
            if stock is None:
                continue
            for lot, bin_code in stock.places():
                layers = [
                    layer
                    for layer in stock.layers.values()
                    if (layer.lot, layer.bin) == (lot, bin_code)
                ]
                found[(item.sku, code, lot, bin_code)] = (
                    stock.on_hand(lot, bin_code),
                    stock.reserved(lot, bin_code),
                    sum((layer.quantity * layer.unit_cost for layer in layers), Decimal(0)),
                    stock.expiry[lot],
                    min(layer.received_at for layer in layers),
                    stock.status[lot],
                )
    return found


def projected_lots(engine: Engine, tenant_id: UUID) -> dict[LotKey, LotState]:
    with engine.connect() as conn:
        rows = lots(conn, tenant_id, limit=10_000)
    return {
        (r.sku, r.warehouse, r.lot, r.bin): (
            r.on_hand,
            r.reserved,
            r.value,
            r.expires_on,
            r.received_at,
            r.status,
        )
        for r in rows
    }


def moved(engine: Engine, tenant_id: UUID) -> dict[LotKey, Decimal]:
    """On hand per lot and bin as the sum of the recorded movements (empty places left out)."""
    total: dict[LotKey, Decimal] = {}
    with engine.connect() as conn:
        for m in movements(conn, tenant_id, limit=100_000):
            key = (m.sku, m.warehouse, m.lot, m.bin)
            total[key] = total.get(key, Decimal(0)) + m.quantity
    return {key: quantity for key, quantity in total.items() if quantity}


def on_hand_by_place(app: LedgerApplication) -> dict[LotKey, Decimal]:
    return {key: state[0] for key, state in folded_lots(app).items() if state[0]}


def check_orders(engine: Engine, app: LedgerApplication) -> None:
    """Every order's row and lines as its aggregate has them; incoming is what is still open."""
    created = [
        e.originator_id
        for e in app.recorder.select_notifications(start=1, limit=1_000_000)
        if e.topic.endswith("Order.Created")
    ]
    with engine.connect() as conn:
        found = [
            *orders(conn, app.tenant_id, kind="purchase", limit=10_000),
            *orders(conn, app.tenant_id, kind="sales", limit=10_000),
        ]
        still_open = incoming(conn, app.tenant_id)
    assert sorted(o.order_id for o in found) == sorted(created)
    expected_incoming: dict[tuple[str, str], Decimal] = {}
    for row in found:
        order: object = app.repository.get(row.order_id)
        assert isinstance(order, PurchaseOrder | SalesOrder)
        assert row.status == order.status
        if isinstance(order, PurchaseOrder):
            assert [(x.ordered, x.received) for x in row.lines] == [
                (x.ordered, x.received) for x in order.lines
            ]
            for line in order.lines if order.open_quantity else []:
                key = (line.sku, order.warehouse)
                expected_incoming[key] = expected_incoming.get(key, Decimal(0)) + line.open
        else:
            assert [
                (x.ordered, x.allocated, x.shipped, x.returned, x.cancelled) for x in row.lines
            ] == [(x.ordered, x.allocated, x.shipped, x.returned, x.cancelled) for x in order.lines]
    assert still_open == {k: v for k, v in expected_incoming.items() if v}


def check_incoming_and_available(engine: Engine, app: LedgerApplication) -> None:
    """Incoming is what the purchase orders still bring; available is what each stock item
    lets a removal policy reserve now; a row of neither stock nor incoming has nothing."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        rows = stock_levels(conn, app.tenant_id, limit=10_000, now=now)
        ids = [o.order_id for o in orders(conn, app.tenant_id, kind="purchase", limit=10_000)]
    found = {(r.sku, r.warehouse): (r.incoming, r.available) for r in rows}
    purchases: list[PurchaseOrder] = []
    incoming: dict[tuple[str, str], Decimal] = {}
    for order_id in ids:
        order: object = app.repository.get(order_id)
        assert isinstance(order, PurchaseOrder)
        purchases.append(order)
        for line in order.lines if order.open_quantity else []:
            key = (line.sku, order.warehouse)
            incoming[key] = incoming.get(key, Decimal(0)) + line.open
    expected = {key: (quantity, Decimal(0)) for key, quantity in incoming.items()}
    for item in demo.CATALOG:
        for code, *_ in demo.WAREHOUSES:
            stock = app.stock_item(item.sku, code)
            if stock is not None:
                site = app.warehouse(code)
                today = now.astimezone(ZoneInfo(site.timezone)).date()
                rules = app.product(item.sku).rules
                conditions = Conditions(rules, site.bins, today, now, timezone=site.timezone)
                key = (item.sku, code)
                expected[key] = (incoming.get(key, Decimal(0)), stock.available(conditions))
    ordered = {(x.sku, o.warehouse) for o in purchases for x in o.lines}
    assert {k: v for k, v in found.items() if k in expected} == expected
    assert all(found[k] == (0, 0) and k in ordered for k in found.keys() - expected.keys())


def check_audit_log(engine: Engine, store: LedgerStore, tenant_id: UUID) -> None:
    """One entry per event, in position order, with the stored hash and metadata."""
    with engine.connect() as conn:
        logged = audit_log(conn, tenant_id, limit=1_000_000)
    recorded = list(store.iter_events(tenant_id))
    assert [(a.position, a.stream_id, a.hash) for a in logged] == [
        (e.position, e.stream_id, e.hash.hex()) for e in recorded
    ]
    assert [a.idempotency_key for a in logged] == [e.header["idempotency_key"] for e in recorded]


def projected(engine: Engine, tenant_id: UUID) -> Levels:
    """Stock levels with stock (rows of incoming stock alone and emptied ones left out)."""
    with engine.connect() as conn:
        rows = stock_levels(conn, tenant_id, limit=1000)
    found = {(r.sku, r.warehouse): (r.on_hand, r.reserved, r.value) for r in rows}
    return {key: level for key, level in found.items() if any(level)}


def test_stock_levels_lots_and_movements_equal_the_fold_of_the_events(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 300)
    runner = Runner(
        store,
        engine,
        [StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog()],
        batch_size=97,
    )
    assert runner.run_tenant(app.tenant_id) >= store.head(app.tenant_id).position
    assert projected(engine, app.tenant_id) == folded(app)
    assert projected_lots(engine, app.tenant_id) == folded_lots(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)
    check_orders(engine, app)
    check_incoming_and_available(engine, app)
    check_audit_log(engine, store, app.tenant_id)
    progress = next(p for p in runner.progress() if p.tenant_id == app.tenant_id)
    assert (progress.lag, progress.failed_at) == (0, None)


def test_stock_levels_load_a_batchs_stored_rows_in_slices(
    store: LedgerStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stock_levels_module, "SLICE", 2)
    app = seeded(store, 300)
    runner = Runner(store, engine, [StockLevels(), Lots(), Catalog()], batch_size=61)
    runner.run_tenant(app.tenant_id)
    assert projected(engine, app.tenant_id) == folded(app)


def test_running_again_or_delivering_a_batch_twice_changes_nothing(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 150)
    runner = Runner(
        store, engine, [StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog()]
    )
    runner.run_tenant(app.tenant_id)
    before = (
        projected(engine, app.tenant_id),
        projected_lots(engine, app.tenant_id),
        moved(engine, app.tenant_id),
    )
    assert runner.run_tenant(app.tenant_id) == 0
    events = [decode(e) for e in store.iter_events(app.tenant_id)]
    with engine.begin() as conn:  # the whole history delivered again, out of any tracking
        for projection in (StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog()):
            projection.apply(conn, app.tenant_id, events)
            projection.apply(conn, app.tenant_id, events[len(events) // 2 :])
    after = (
        projected(engine, app.tenant_id),
        projected_lots(engine, app.tenant_id),
        moved(engine, app.tenant_id),
    )
    assert after == before
    check_orders(engine, app)
    check_incoming_and_available(engine, app)
    check_audit_log(engine, store, app.tenant_id)


class Failing(StockLevels):
    """Stock levels that cannot apply one event position."""

    def __init__(self, tenant_id: UUID, position: int) -> None:
        self.tenant_id, self.position = tenant_id, position

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        if tenant_id == self.tenant_id and any(e.position == self.position for e in events):
            raise ValueError(f"cannot apply {self.position}")
        super().apply(conn, tenant_id, events)


def test_a_failing_event_stops_that_tenant_only_and_is_retried_when_cleared(
    store: LedgerStore, engine: Engine
) -> None:
    broken, healthy = seeded(store, 80), seeded(store, 80)
    projection = Failing(broken.tenant_id, position=60)
    runner = Runner(store, engine, [projection], batch_size=25)
    runner.run_once()
    states = {p.tenant_id: p for p in runner.progress()}
    assert (states[broken.tenant_id].position, states[broken.tenant_id].failed_at) == (59, 60)
    assert states[healthy.tenant_id].position == store.head(healthy.tenant_id).position
    assert projected(engine, healthy.tenant_id) == folded(healthy)
    assert runner.run_once() == 0  # the failure holds the tenant until it is cleared

    projection.position = -1  # fixed
    runner.retry("stock_levels", broken.tenant_id)
    runner.run_once()
    assert projected(engine, broken.tenant_id) == folded(broken)


def test_a_failure_two_runners_meet_at_once_is_recorded_once_without_an_error(
    store: LedgerStore, engine: Engine
) -> None:
    broken = seeded(store, 40)
    projection = Failing(broken.tenant_id, position=30)
    first, second = (Runner(store, engine, [projection], batch_size=10) for _ in range(2))
    first.run_once()
    failed = next(p for p in first.progress() if p.tenant_id == broken.tenant_id)
    # The second runner met the same event before it saw the first one's record.
    second._record_failure(projection, broken.tenant_id, ValueError("the same event"))
    again = next(p for p in second.progress() if p.tenant_id == broken.tenant_id)
    assert (again.position, again.failed_at) == (failed.position, failed.failed_at) == (29, 30)


class Disconnected(StockLevels):
    """Stock levels whose database connection drops while applying a batch, until fixed."""

    down = True

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        if self.down:
            raise OperationalError("UPDATE rm_stock_levels", {}, ConnectionError("server closed"))
        super().apply(conn, tenant_id, events)


def test_a_dropped_connection_is_raised_for_a_retry_and_never_recorded_as_a_failure(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 60)
    projection = Disconnected()
    runner = Runner(store, engine, [projection], batch_size=25)
    with pytest.raises(OperationalError):
        runner.run_tenant(app.tenant_id)
    state = next(p for p in runner.progress() if p.tenant_id == app.tenant_id)
    assert (state.position, state.failed_at) == (0, None)
    projection.down = False  # the database is back: the next pass simply goes on
    runner.run_tenant(app.tenant_id)
    assert projected(engine, app.tenant_id) == folded(app)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rng_seed=st.integers(0, 10_000),
    events=st.integers(40, 160),
    batch=st.integers(1, 300),
    replays=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 50)), max_size=3),
)
def test_for_random_histories_batches_and_redeliveries_the_projection_is_the_fold(
    sqlite_template: object,
    store: LedgerStore,
    engine: Engine,
    rng_seed: int,
    events: int,
    batch: int,
    replays: list[tuple[int, int]],
) -> None:
    app = seeded(store, events, rng_seed)
    runner = Runner(
        store,
        engine,
        [StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog()],
        batch_size=batch,
    )
    runner.run_tenant(app.tenant_id)
    recorded = [decode(e) for e in store.iter_events(app.tenant_id)]
    for start, length in replays:  # any slice delivered again changes nothing
        with engine.begin() as conn:
            for projection in (StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog()):
                projection.apply(conn, app.tenant_id, recorded[start : start + length])
    assert projected(engine, app.tenant_id) == folded(app)
    assert projected_lots(engine, app.tenant_id) == folded_lots(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)
    check_orders(engine, app)
    check_incoming_and_available(engine, app)
    check_audit_log(engine, store, app.tenant_id)
