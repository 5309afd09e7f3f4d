"""KPI facts by business day on SQLite and PostgreSQL: figures worked out by hand, exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from domain.errors import ValidationFailed
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.orders import ReceiveLine, ReturnLine, ShipLine
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import demo
from projections.events import decode
from projections.kpis import DailyValue, KpiFacts, Kpis, closing_values, kpis
from projections.movements import Movements, movements
from projections.runner import Runner
from projections.schema import Base
from projections.stock_levels import StockLevels, stock_levels
from tests.orders import Clock, order_ledger

NOW = datetime(2026, 6, 20, 8, 0, tzinfo=UTC)
D = Decimal


def at(day: int, hour: int = 10, minute: int = 0) -> EventMetadata:
    """Business time on a day of June 2026, in UTC (Berlin is two hours ahead)."""
    return EventMetadata(effective_at=datetime(2026, 6, day, hour, minute, tzinfo=UTC))


def june(day: int) -> date:
    return date(2026, 6, day)


def scripted(app: LedgerApplication) -> None:
    """Five business days in Berlin of a wholesaler with two warehouses (figures: see tests).

    Value at cost of WH1 / WH2 at the close of each day: 10th 13 / 15, 11th 25 / 15,
    12th 22 / 27, 13th 17 / 0, 14th 13 / 1.
    """
    # 10th: PO1 (expected on the 11th) and PO2 (no expected date) go out; MILK lots M1 and M0
    # (expiring on the 12th) arrive in WH1, BOLT in WH2
    po1 = app.create_purchase_order(
        "Acme", "WH1", [("BOLT", 10, "2")], at(10), expected_on=june(11)
    ).order_id
    app.submit_purchase_order(po1, at(10))
    po2 = app.create_purchase_order("Bolts Ltd", "WH2", [("BOLT", 4, "3")], at(10)).order_id
    app.submit_purchase_order(po2, at(10))
    app.receive("MILK", "WH1", "A1", 10, "1", at(10), lot="M1", expires_on=june(30))  # +10
    app.receive("MILK", "WH1", "A2", 2, "1.5", at(10), lot="M0", expires_on=june(12))  # +3
    app.receive("BOLT", "WH2", "A1", 5, "3", at(10))  # WH2 +15
    # 11th: 6 of PO1 on its expected date; SO1 for 4 BOLT and 5 MILK, allocated in full
    app.receive_purchase_order(po1, [ReceiveLine(1, 6, "A1")], at(11))  # +12
    so1 = app.create_sales_order("Corner Shop", "WH1", [("BOLT", 4), ("MILK", 5)], at(11))
    app.allocate_sales_order(so1.order_id, at(11))
    # 12th: SO1 ships 3 BOLT and 5 MILK (cost 6 + 5); SO2 for 3 BOLT gets the last 2
    # (stockout); PO1's rest is late; PO2 (no expected date) arrives
    app.ship_sales_order(so1.order_id, at(12), lines=[ShipLine(1, 3), ShipLine(2, 5)])  # -11
    so2 = app.create_sales_order("Kiosk", "WH1", [("BOLT", 3)], at(12))
    app.allocate_sales_order(so2.order_id, at(12))
    app.receive_purchase_order(po1, [ReceiveLine(1, 4, "A1")], at(12))  # +8
    app.receive_purchase_order(po2, [ReceiveLine(1, 4, "A1")], at(12))  # WH2 +12
    # 13th: SO1's last BOLT ships; SO2 ships 2 and is cancelled; 1 BOLT of SO1 comes back;
    # a count finds 1 MILK missing; WH2 sells 2 BOLT, writes 7 off as damaged (stockout)
    app.ship_sales_order(so1.order_id, at(13))  # -2
    app.ship_sales_order(so2.order_id, at(13))  # -4
    app.cancel_sales_order(so2.order_id, at(13))
    app.return_sales_order(so1.order_id, [ReturnLine(1, 1, "restock", "A1")], at(13))  # +2
    app.count("MILK", "WH1", "A1", 4, at(13), lot="M1")  # -1
    app.issue("BOLT", "WH2", 2, "sale", at(13))  # WH2 -6
    app.issue("BOLT", "WH2", 7, "damage", at(13))  # WH2 -21
    # 14th: the expired lot M0 is written off; 1 MILK moves to WH2; SO3 waits for stock
    app.write_off_expired("MILK", "WH1", at(14))  # -3
    app.transfer("MILK", "WH1", "WH2", "A1", 1, at(14))  # -1, WH2 +1
    app.create_sales_order("Corner Shop", "WH2", [("BOLT", 1)], at(14))


@pytest.fixture
def history(store: LedgerStore, engine: Engine) -> UUID:
    """The scripted history, projected in small batches; its tenant."""
    app = order_ledger(store, Clock(NOW))
    scripted(app)
    Runner(store, engine, [KpiFacts()], batch_size=10).run_tenant(app.tenant_id)
    return app.tenant_id


def tenant_ledger(store: LedgerStore, timezone: str) -> LedgerApplication:
    """A new tenant in a time zone, with nothing registered yet."""
    slug = f"k-{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(slug)
    app = LedgerApplication(tenant, store.factory_for(tenant), clock=Clock(NOW))
    app.create_tenant(slug, None, timezone, EventMetadata())
    return app


def kpis_of(
    engine: Engine, tenant_id: UUID, start: int, end: int, warehouse: str | None = None
) -> Kpis:
    with engine.connect() as conn:
        return kpis(conn, tenant_id, start=june(start), end=june(end), warehouse=warehouse)


def test_a_periods_kpis_over_all_warehouses_are_the_figures_worked_out_by_hand(
    engine: Engine, history: UUID
) -> None:
    assert kpis_of(engine, history, 10, 14) == Kpis(
        cogs=D(21),  # sold 11 + 2 + 4 + 6, less 2 returned
        average_inventory_value=D("29.6"),  # (28 + 40 + 49 + 17 + 14) / 5
        inventory_turnover=D("0.709459"),  # 21 / 29.6
        days_of_inventory=D("7.047619"),  # 5 / (21 / 29.6)
        unit_fill_rate=D("0.846154"),  # (9 + 2 + 0) / (9 + 3 + 1)
        line_fill_rate=D("0.5"),  # SO1's 2 lines of 4 (SO2's cancelled rest, SO3 waiting)
        stockout_events=2,
        expired_quantity=D(2),
        expired_value=D(3),
        record_accuracy=D(0),  # the one count found a difference
        supplier_on_time_rate=D("0.714286"),  # (6 + 4) / (6 + 4 + 4)
    )


def test_the_warehouse_filter_gives_each_warehouse_its_own_figures(
    engine: Engine, history: UUID
) -> None:
    assert kpis_of(engine, history, 10, 14, "WH1") == Kpis(
        cogs=D(15),  # 11 + 2 + 4 - 2
        average_inventory_value=D(18),  # (13 + 25 + 22 + 17 + 13) / 5
        inventory_turnover=D("0.833333"),  # 15 / 18
        days_of_inventory=D(6),  # 5 / (15 / 18)
        unit_fill_rate=D("0.916667"),  # 11 / 12
        line_fill_rate=D("0.666667"),  # 2 / 3
        stockout_events=1,
        expired_quantity=D(2),
        expired_value=D(3),
        record_accuracy=D(0),
        supplier_on_time_rate=D("0.6"),  # 6 / 10
    )
    assert kpis_of(engine, history, 10, 14, "WH2") == Kpis(
        cogs=D(6),
        average_inventory_value=D("11.6"),  # (15 + 15 + 27 + 0 + 1) / 5
        inventory_turnover=D("0.517241"),  # 6 / 11.6
        days_of_inventory=D("9.666667"),  # 5 / (6 / 11.6)
        unit_fill_rate=D(0),  # SO3: nothing shipped yet
        line_fill_rate=D(0),
        stockout_events=1,
        expired_quantity=D(0),
        expired_value=D(0),
        record_accuracy=None,  # nothing counted
        supplier_on_time_rate=D(1),  # PO2 has no expected date
    )
    assert kpis_of(engine, history, 10, 14, "WH9") == Kpis(
        D(0), D(0), None, None, None, None, 0, D(0), D(0), None, None
    )


def test_a_sub_period_opens_with_the_value_of_the_days_before_it(
    engine: Engine, history: UUID
) -> None:
    assert kpis_of(engine, history, 12, 13) == Kpis(
        cogs=D(21),  # 11 on the 12th; 2 + 4 - 2 + 6 on the 13th
        average_inventory_value=D(33),  # (49 + 17) / 2, from 40 at the close of the 11th
        inventory_turnover=D("0.636364"),  # 21 / 33
        days_of_inventory=D("3.142857"),  # 2 / (21 / 33)
        unit_fill_rate=D("0.666667"),  # SO2: 2 / 3
        line_fill_rate=D(0),
        stockout_events=2,
        expired_quantity=D(0),
        expired_value=D(0),
        record_accuracy=D(0),
        supplier_on_time_rate=D("0.5"),  # PO1's late 4, PO2's 4
    )
    assert kpis_of(engine, history, 14, 14, "WH1") == Kpis(
        cogs=D(0),
        average_inventory_value=D(13),
        inventory_turnover=D(0),
        days_of_inventory=None,  # no turnover
        unit_fill_rate=None,
        line_fill_rate=None,
        stockout_events=0,
        expired_quantity=D(2),
        expired_value=D(3),
        record_accuracy=None,
        supplier_on_time_rate=None,
    )
    assert kpis_of(engine, history, 11, 11) == Kpis(
        cogs=D(0),
        average_inventory_value=D(40),
        inventory_turnover=D(0),
        days_of_inventory=None,
        unit_fill_rate=D(1),  # SO1, created on the 11th, shipped in full by the 13th
        line_fill_rate=D(1),
        stockout_events=0,
        expired_quantity=D(0),
        expired_value=D(0),
        record_accuracy=None,
        supplier_on_time_rate=D(1),
    )


def test_a_period_without_activity_carries_the_closing_value_and_has_no_rates(
    engine: Engine, history: UUID
) -> None:
    quiet = Kpis(D(0), D(14), D(0), None, None, None, 0, D(0), D(0), None, None)
    assert kpis_of(engine, history, 16, 18) == quiet
    assert kpis_of(engine, history, 1, 5) == Kpis(
        D(0), D(0), None, None, None, None, 0, D(0), D(0), None, None
    )


def test_closing_values_carry_each_days_value_forward(engine: Engine, history: UUID) -> None:
    def from_the_9th(*values: int) -> list[DailyValue]:
        return [DailyValue(june(9 + n), D(value)) for n, value in enumerate(values)]

    with engine.connect() as conn:
        found = {
            code: closing_values(conn, history, start=june(9), end=june(15), warehouse=code)
            for code in (None, "WH1", "WH2")
        }
    assert found == {
        None: from_the_9th(0, 28, 40, 49, 17, 14, 14),
        "WH1": from_the_9th(0, 13, 25, 22, 17, 13, 13),
        "WH2": from_the_9th(0, 15, 15, 27, 0, 1, 1),
    }


def test_a_period_that_ends_before_it_starts_is_refused(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(ValidationFailed):
        kpis(conn, uuid.uuid4(), start=june(14), end=june(13))


def rows(engine: Engine, tenant_id: UUID) -> dict[str, list[tuple[str, ...]]]:
    """Every row of the projection's tables of a tenant."""
    found = {}
    with engine.connect() as conn:
        for name in KpiFacts.tables:
            table = Base.metadata.tables[name]
            query = select(table).where(table.c.tenant_id == tenant_id)
            found[name] = sorted(tuple(map(str, row)) for row in conn.execute(query))
    return found


def test_delivering_the_history_or_a_batch_again_changes_nothing(
    store: LedgerStore, engine: Engine, history: UUID
) -> None:
    before = rows(engine, history), kpis_of(engine, history, 10, 14)
    assert sum(len(found) for found in before[0].values()) > 0
    assert Runner(store, engine, [KpiFacts()]).run_tenant(history) == 0
    events = [decode(e) for e in store.iter_events(history)]
    with engine.begin() as conn:  # delivered again outside any tracking
        KpiFacts().apply(conn, history, events)
        KpiFacts().apply(conn, history, events[len(events) // 2 :])
        KpiFacts().apply(conn, history, events[7:9])
    assert (rows(engine, history), kpis_of(engine, history, 10, 14)) == before


def test_an_event_late_in_the_utc_day_counts_on_the_next_day_in_the_tenants_time_zone(
    store: LedgerStore, engine: Engine
) -> None:
    app = tenant_ledger(store, "Pacific/Auckland")
    app.register_product("BOLT", "Bolt M6", EventMetadata())
    app.register_warehouse("AKL", "Auckland", "Pacific/Auckland", EventMetadata())
    app.add_bin("AKL", "A1", EventMetadata())
    app.receive("BOLT", "AKL", "A1", 2, "5", at(14, 11, 30))  # 23:30 on the 14th in Auckland
    app.issue("BOLT", "AKL", 1, "sale", at(14, 12, 30))  # 00:30 on the 15th there
    Runner(store, engine, [KpiFacts()]).run_tenant(app.tenant_id)
    assert kpis_of(engine, app.tenant_id, 14, 14).cogs == 0
    assert kpis_of(engine, app.tenant_id, 15, 15).cogs == 5
    with engine.connect() as conn:
        closing = closing_values(conn, app.tenant_id, start=june(14), end=june(15))
    assert closing == [DailyValue(june(14), D(10)), DailyValue(june(15), D(5))]


def test_a_count_that_matches_the_ledger_counts_as_accurate(
    store: LedgerStore, engine: Engine
) -> None:
    app = order_ledger(store, Clock(NOW))
    app.receive("BOLT", "WH1", "A1", 5, "2", at(10))
    app.count("BOLT", "WH1", "A1", 5, at(11))
    app.count("BOLT", "WH1", "A1", 4, at(11))
    Runner(store, engine, [KpiFacts()]).run_tenant(app.tenant_id)
    assert kpis_of(engine, app.tenant_id, 11, 11).record_accuracy == D("0.5")


Totals = dict[str | None, Decimal]  # per warehouse, and None: all of them


def add(totals: Totals, warehouse: str, amount: Decimal) -> None:
    for key in (None, warehouse):
        totals[key] = totals.get(key, D(0)) + amount


def test_daily_closing_values_follow_the_movements_and_end_at_the_stock_levels_value(
    store: LedgerStore, engine: Engine
) -> None:
    app = tenant_ledger(store, demo.TIMEZONE)
    demo.seed(app, events=160, rng_seed=11, meta=EventMetadata())
    runner = Runner(store, engine, [StockLevels(), Movements(), KpiFacts()], batch_size=23)
    runner.run_tenant(app.tenant_id)
    zone = ZoneInfo(demo.TIMEZONE)
    changes: dict[date, Totals] = {}  # the movements' value by business day
    cogs: Totals = {}
    expired: Totals = {}
    values: Totals = {}
    with engine.connect() as conn:
        for m in movements(conn, app.tenant_id, limit=100_000):
            value = m.quantity * m.unit_cost
            add(changes.setdefault(m.effective_at.astimezone(zone).date(), {}), m.warehouse, value)
            if m.reason in ("sale", "return"):  # stock out for sales, or back from them
                add(cogs, m.warehouse, -value)
            if m.reason == "expiry" and m.quantity < 0:  # written off
                add(expired, m.warehouse, -value)
        for level in stock_levels(conn, app.tenant_id, limit=10_000):
            add(values, level.warehouse, level.value)
        first, last = min(changes) - timedelta(days=1), max(changes)
        for code in [None, *(code for code, *_ in demo.WAREHOUSES)]:
            found = closing_values(conn, app.tenant_id, start=first, end=last, warehouse=code)
            closing, expected = D(0), []
            for n in range((last - first).days + 1):
                day = first + timedelta(days=n)
                closing += changes.get(day, {}).get(code, D(0))
                expected.append(DailyValue(day, closing))
            assert found == expected
            assert closing == values.get(code, D(0))
            period = kpis(conn, app.tenant_id, start=first, end=last, warehouse=code)
            assert period.cogs == cogs.get(code, D(0))
            assert period.expired_value == expired.get(code, D(0))
    assert len(changes) >= 3
    assert values[None] > 0
    assert cogs[None] > 0  # the history sold stock
    assert expired[None] > 0  # and wrote some off
