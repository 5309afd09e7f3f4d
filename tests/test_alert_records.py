"""Recorded alerts: conditions raised and cleared as events arrive and as time passes, order
status changes, exactly once however often events are applied, and their log over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select

from api.app import create_app
from consumers.alerts import Alerts, sweep, sweep_all
from domain.orders import ReceiveLine
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import read_side
from ledger.settings import Settings
from projections.alert_records import ALERT_RECORDS, AlertRecord, records
from projections.alerts import alerts
from projections.catalog import Catalog
from projections.events import LedgerEvent, decode
from projections.lots import Lots
from projections.orders import Orders
from projections.runner import TRACKING, NotYet, Projection, Runner
from projections.stock_levels import StockLevels
from tests.orders import Clock, M, head, order_ledger
from tests.test_api_foundation import SECRET, bearer, seed, token

Row = tuple[str, str | None, str | None, str | None, int, int | None]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(store: LedgerStore, clock: Clock) -> LedgerApplication:
    return order_ledger(store, clock)


def caught_up(store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock) -> None:
    """The read models alerts read, then the alerts, in small batches."""
    projections: list[Projection] = [StockLevels(), Lots(), Orders(), Catalog(), Alerts(clock)]
    Runner(store, engine, projections, batch_size=5).run_tenant(app.tenant_id)


def logged(engine: Engine, tenant_id: UUID, **query: Any) -> list[AlertRecord]:
    with engine.connect() as conn:
        return records(conn, tenant_id, limit=1000, **query)


def rows(engine: Engine, app: LedgerApplication, *kinds: Any) -> list[Row]:
    """(kind, sku, lot, bin, raised position, cleared position) of the tenant's records."""
    return [
        (r.kind, r.sku, r.lot, r.bin, r.raised_position, r.cleared_position)
        for r in logged(engine, app.tenant_id, kinds=kinds or None)
    ]


def last_stock_event(store: LedgerStore, app: LedgerApplication) -> LedgerEvent:
    """The tenant's latest stock item event (a command may append others after it)."""
    events = [decode(e) for e in store.read(app.tenant_id, after=0, limit=10_000)]
    return [e for e in events if e.kind.startswith("StockItem.")][-1]


def everything(engine: Engine, tenant_id: UUID) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(
            select(ALERT_RECORDS)
            .where(ALERT_RECORDS.c.tenant_id == tenant_id)
            .order_by(ALERT_RECORDS.c.alert_id)
        )
        return [tuple(r) for r in found]


# -- conditions raised and cleared by events ------------------------------------------------------


def test_an_issue_below_the_reorder_point_raises_low_stock_and_a_receipt_clears_it(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("BOLT", M, reorder_point=5)
    app.receive("BOLT", "WH1", "A1", 10, "0.10", M)
    caught_up(store, engine, app, clock)
    assert rows(engine, app) == []

    app.issue("BOLT", "WH1", 7, "sale", M)
    issued = last_stock_event(store, app).position
    caught_up(store, engine, app, clock)
    [low] = logged(engine, app.tenant_id)
    assert (low.kind, low.sku, low.warehouse) == ("low_stock", "BOLT", "WH1")
    assert (low.lot, low.bin, low.order_id) == (None, None, None)
    assert low.details == {"reorder_point": "5", "available": "3", "incoming": "0"}
    assert (low.raised_position, low.cleared_position) == (issued, None)

    app.issue("BOLT", "WH1", 1, "sale", M)  # still low: the open record stands alone
    caught_up(store, engine, app, clock)
    assert rows(engine, app) == [("low_stock", "BOLT", None, None, issued, None)]

    app.receive("BOLT", "WH1", "A2", 4, "0.10", M)
    receipt = last_stock_event(store, app)
    received = receipt.position
    caught_up(store, engine, app, clock)
    [cleared] = logged(engine, app.tenant_id)
    assert (cleared.cleared_position, cleared.cleared_at) == (received, receipt.recorded_at)

    app.issue("BOLT", "WH1", 3, "sale", M)
    again = last_stock_event(store, app).position
    caught_up(store, engine, app, clock)
    assert rows(engine, app) == [
        ("low_stock", "BOLT", None, None, issued, received),
        ("low_stock", "BOLT", None, None, again, None),
    ]


def test_a_product_change_judges_its_stock_again(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.receive("BOLT", "WH1", "A1", 10, "0.10", M)
    app.receive("BOLT", "WH2", "A1", 2, "0.10", M)
    caught_up(store, engine, app, clock)
    assert rows(engine, app) == []  # no reorder point yet
    raised = app.change_product("BOLT", M, reorder_point=5).position
    caught_up(store, engine, app, clock)
    assert [(r.warehouse, r.raised_position) for r in logged(engine, app.tenant_id)] == [
        ("WH2", raised)
    ]
    cleared = app.change_product("BOLT", M, active=False).position  # nothing to reorder
    caught_up(store, engine, app, clock)
    assert rows(engine, app) == [("low_stock", "BOLT", None, None, raised, cleared)]


# -- expiry: time passing, judged by sweeps -------------------------------------------------------


def test_a_sweep_raises_expiring_then_expired_lots_and_a_write_off_clears_them(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("MILK", M, expiry_alert_days=3)
    app.receive("MILK", "WH1", "A1", 10, "0.80", M, lot="L1", expires_on=date(2026, 6, 30))
    caught_up(store, engine, app, clock)
    tracked = head(app)
    assert rows(engine, app) == []

    def swept(at: datetime) -> int:
        with engine.begin() as conn:
            return sweep(conn, app.tenant_id, at)

    assert swept(datetime(2026, 6, 26, 12, tzinfo=UTC)) == 1  # four days ahead: nothing yet
    assert rows(engine, app) == []
    swept(datetime(2026, 6, 27, 12, tzinfo=UTC))
    swept(datetime(2026, 6, 28, 12, tzinfo=UTC))  # still expiring: nothing new
    [expiring] = logged(engine, app.tenant_id)
    assert (expiring.kind, expiring.lot, expiring.bin, expiring.raised_position) == (
        "expiring",
        "L1",
        "A1",
        tracked,
    )
    assert expiring.raised_at == datetime(2026, 6, 27, 12, tzinfo=UTC)
    assert expiring.details == {"quantity": "10", "expires_on": "2026-06-30"}

    swept(datetime(2026, 6, 30, 21, 59, tzinfo=UTC))  # 23:59 in Berlin: usable all that day
    assert rows(engine, app) == [("expiring", "MILK", "L1", "A1", tracked, None)]
    late = datetime(2026, 6, 30, 22, 1, tzinfo=UTC)  # July 1st in Berlin
    swept(late)
    assert sorted(rows(engine, app)) == [  # one position: in the order of their ids
        ("expired", "MILK", "L1", "A1", tracked, None),
        ("expiring", "MILK", "L1", "A1", tracked, tracked),
    ]

    clock.now = late
    app.write_off_expired("MILK", "WH1", M)
    written_off = last_stock_event(store, app).position
    caught_up(store, engine, app, clock)
    assert rows(engine, app, "expired") == [("expired", "MILK", "L1", "A1", tracked, written_off)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # it sweeps every tenant
def test_sweep_all_sweeps_only_tenants_the_alerts_projection_follows(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("MILK", M, expiry_alert_days=3)
    app.receive("MILK", "WH1", "A1", 10, "0.80", M, lot="L1", expires_on=date(2026, 6, 30))
    other = order_ledger(store, clock)
    other.receive("MILK", "WH1", "A1", 10, "0.80", M, lot="L1", expires_on=date(2026, 6, 1))
    Runner(store, engine, [StockLevels(), Lots(), Orders(), Catalog()]).run_tenant(other.tenant_id)
    caught_up(store, engine, app, clock)
    assert sweep_all(engine, datetime(2026, 6, 29, tzinfo=UTC)) == 1  # one key: MILK in WH1
    assert rows(engine, app) == [("expiring", "MILK", "L1", "A1", head(app), None)]
    assert logged(engine, other.tenant_id) == []  # not followed: nothing to record against


def test_an_event_judges_expiry_at_the_time_it_is_applied(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("MILK", M, expiry_alert_days=3)
    app.receive("MILK", "WH1", "DOCK", 2, "0.80", M, lot="OLD", expires_on=date(2026, 6, 10))
    received = last_stock_event(store, app).position
    caught_up(store, engine, app, clock)
    assert rows(engine, app) == [("expired", "MILK", "OLD", "DOCK", received, None)]


def test_open_records_are_the_alerts_judged_on_demand_after_a_busy_demo_tenant(
    database_url: str, store: LedgerStore, engine: Engine
) -> None:
    tenant = seed(database_url, f"alerts-{uuid4().hex[:8]}", 3)
    Runner(store, engine, [*read_side.projections(), Alerts()], batch_size=7).run_tenant(tenant)
    with engine.connect() as conn:
        now = alerts(conn, tenant, limit=10_000)
    opened = logged(engine, tenant, state="open")
    assert {r.kind for r in opened} >= {"low_stock", "expiring"}
    assert sorted((r.kind, r.sku, r.warehouse, r.lot, r.bin) for r in opened) == sorted(
        (a.kind, a.sku, a.warehouse, a.lot, a.bin) for a in now
    )


# -- order status -------------------------------------------------------------------------------


def test_every_change_of_an_order_status_is_recorded_once_with_the_status_before_it(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    lines = [("BOLT", 10, "0.10")]
    po = app.create_purchase_order("ACME", "WH1", lines, M, external_id="PO-7").order_id
    app.submit_purchase_order(po, M)
    app.receive_purchase_order(po, [ReceiveLine(1, 4, "A1")], M)
    app.close_purchase_order(po, M)
    so = app.create_sales_order("Shop", "WH1", [("BOLT", 3)], M).order_id
    app.allocate_sales_order(so, M)
    app.ship_sales_order(so, M)
    caught_up(store, engine, app, clock)
    found = logged(engine, app.tenant_id, kinds=("order_status",))
    changes = [
        (r.order_id, r.details["old_status"], r.details["new_status"], r.details["external_id"])
        for r in found
    ]
    assert changes == [
        (str(po), None, "draft", "PO-7"),
        (str(po), "draft", "submitted", "PO-7"),
        (str(po), "submitted", "partially_received", "PO-7"),
        (str(po), "partially_received", "closed", "PO-7"),
        (str(so), None, "open", None),
        (str(so), "open", "allocated", None),
        (str(so), "allocated", "shipped", None),
    ]
    assert all(r.cleared_position == r.raised_position for r in found)
    assert all(r.cleared_at == r.raised_at and r.warehouse == "WH1" for r in found)
    assert [r.details["event"] for r in found][-1] == "SalesOrder.Shipped"
    assert logged(engine, app.tenant_id, kinds=("order_status",), state="open") == []


# -- exactly once ---------------------------------------------------------------------------------


def _busy_day(app: LedgerApplication) -> None:
    app.change_product("BOLT", M, reorder_point=5)
    app.change_product("MILK", M, expiry_alert_days=3)
    app.receive("BOLT", "WH1", "A1", 6, "0.10", M)
    app.issue("BOLT", "WH1", 4, "sale", M)
    app.receive("MILK", "WH1", "A1", 2, "0.80", M, lot="L1", expires_on=date(2026, 6, 16))
    so = app.create_sales_order("Shop", "WH1", [("BOLT", 1)], M).order_id
    app.allocate_sales_order(so, M)
    app.cancel_sales_order(so, M)


def test_applying_the_same_events_again_changes_nothing(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    _busy_day(app)
    caught_up(store, engine, app, clock)
    first = everything(engine, app.tenant_id)
    assert {r[2] for r in first} == {"low_stock", "expiring", "order_status"}

    with engine.begin() as conn:  # a duplicate delivery of the whole history, twice over
        events = [decode(e) for e in store.read(app.tenant_id, after=0, limit=1000)]
        Alerts(clock).apply(conn, app.tenant_id, events)
        Alerts(clock).apply(conn, app.tenant_id, events)
    assert everything(engine, app.tenant_id) == first

    with engine.begin() as conn:  # the projection's tracking lost: a run from position 0
        conn.execute(
            delete(TRACKING).where(
                TRACKING.c.tenant_id == app.tenant_id, TRACKING.c.projection == "alerts"
            )
        )
    caught_up(store, engine, app, clock)
    assert everything(engine, app.tenant_id) == first


def test_alerts_wait_while_a_read_model_they_read_is_behind(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock
) -> None:
    app.change_product("BOLT", M, reorder_point=5)
    app.receive("BOLT", "WH1", "A1", 1, "0.10", M)
    behind = Runner(store, engine, [StockLevels(), Catalog(), Orders(), Alerts(clock)])
    assert behind.run_tenant(app.tenant_id) > 0  # every projection but the alerts moved
    with engine.connect() as conn:
        assert Runner.position_on(conn, "alerts", app.tenant_id) == 0
        events = [decode(e) for e in store.read(app.tenant_id, after=0, limit=1000)]
    with pytest.raises(NotYet), engine.begin() as conn:
        Alerts(clock).apply(conn, app.tenant_id, events)
    assert everything(engine, app.tenant_id) == []

    caught_up(store, engine, app, clock)  # the lots caught up: the alerts follow
    raised = last_stock_event(store, app).position
    assert rows(engine, app) == [("low_stock", "BOLT", None, None, raised, None)]


# -- over HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        projections="off",
        min_position_timeout=5,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _page(client: TestClient, tenant: UUID, **params: Any) -> dict[str, Any]:
    headers = bearer(token(tenant, ["warehouse_operator"]))
    response = client.get("/v1/alerts/records", params=params, headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_the_log_pages_by_raised_position_filters_and_shows_only_the_callers_tenant(
    store: LedgerStore, engine: Engine, app: LedgerApplication, clock: Clock, client: TestClient
) -> None:
    _busy_day(app)
    other = order_ledger(store, clock)
    caught_up(store, engine, app, clock)
    caught_up(store, engine, other, clock)
    every = logged(engine, app.tenant_id)
    assert len(every) >= 5

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _page(client, app.tenant_id, limit=2, **({"cursor": cursor} if cursor else {}))
        assert page["position"] == head(app)
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["alert_id"] for i in seen] == [r.alert_id for r in every]
    positions = [(i["raised_position"], i["alert_id"]) for i in seen]
    assert positions == sorted(positions)
    low = next(i for i in seen if i["kind"] == "low_stock")
    assert (low["sku"], low["warehouse"], low["details"]["available"]) == ("BOLT", "WH1", "2")

    opened = _page(client, app.tenant_id, state="open")["items"]
    assert {i["kind"] for i in opened} == {"low_stock", "expiring"}
    assert all(i["cleared_position"] is None for i in opened)
    cleared = _page(client, app.tenant_id, state="cleared", kind=["order_status"])["items"]
    assert [i["details"]["new_status"] for i in cleared] == ["open", "allocated", "cancelled"]
    both = _page(client, app.tenant_id, kind=["expiring", "low_stock"])["items"]
    assert sorted(i["kind"] for i in both) == ["expiring", "low_stock"]

    assert _page(client, other.tenant_id)["items"] == []
    assert _page(client, other.tenant_id, state="open", kind=["low_stock"])["items"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "WzEsMiwzXQ"},  # three parts
        {"cursor": "WyJ4IiwieSJd"},  # ["x", "y"]
        {"state": "closed"},
        {"kind": "late"},
        {"limit": 0},
    ],
)
def test_a_bad_query_is_a_validation_problem(
    app: LedgerApplication, client: TestClient, params: dict[str, Any]
) -> None:
    headers = bearer(token(app.tenant_id, ["warehouse_operator"]))
    response = client.get("/v1/alerts/records", params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/errors/validation-error"


def test_the_log_needs_stock_read(app: LedgerApplication, client: TestClient) -> None:
    headers = bearer(token(app.tenant_id, ["no-such-role"]))
    response = client.get("/v1/alerts/records", headers=headers)
    assert response.status_code == 403
    assert response.json()["type"] == "/errors/forbidden"
