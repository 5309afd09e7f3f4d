"""Sales orders racing for the last units on PostgreSQL never reserve more than exists.

Each order's allocation saves the order and the stock item together; a lost race reloads both
and allocates again from what is left, so the stock item's reservations and the orders'
allocated quantities agree after every race.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from domain.errors import AlreadyExists, InsufficientStock
from domain.metadata import EventMetadata
from domain.ordering import OrderResult, order_by_external_id
from domain.orders import parse_reservation_reference
from domain.quantities import ZERO
from domain.sales import SalesOrder
from domain.sales_orders import LedgerApplication
from ledger.wiring import Ledger
from tests.racing import SKU, THREADS, add_warehouse, chain_of, new_tenant, race

pytestmark = pytest.mark.postgres


def stocked(ledger: Ledger, units: int) -> LedgerApplication:
    app = new_tenant(ledger, "race-orders")
    add_warehouse(app, "WH-A", "A-01", "A-02")
    app.receive(SKU, "WH-A", "A-01", units // 2, "2.00", EventMetadata())
    app.receive(SKU, "WH-A", "A-02", units - units // 2, "2.10", EventMetadata())
    return app


def orders(app: LedgerApplication, count: int, quantity: int) -> list[UUID]:
    return [
        app.create_sales_order(f"Customer {i}", "WH-A", [(SKU, quantity)], EventMetadata()).order_id
        for i in range(count)
    ]


def allocated_by_order(app: LedgerApplication, order_ids: list[UUID]) -> dict[UUID, Decimal]:
    result = {}
    for order_id in order_ids:
        order: object = app.repository.get(order_id)
        assert isinstance(order, SalesOrder)
        assert order.status in {"open", "partially_allocated", "allocated"}
        result[order_id] = order.lines[0].allocated
    return result


def held_by_order(app: LedgerApplication) -> dict[UUID, Decimal]:
    item = app.stock_item(SKU, "WH-A")
    assert item is not None
    held: dict[UUID, Decimal] = {}
    for reference, holds in item.holds.items():
        named = parse_reservation_reference(reference)
        assert named is not None
        held[named[0]] = held.get(named[0], ZERO) + sum((h.quantity for h in holds), ZERO)
    assert item.reserved() <= item.on_hand()
    return held


def test_two_orders_allocating_the_last_units_at_once_reserve_exactly_what_exists(
    race_ledger: Ledger,
) -> None:
    app = stocked(race_ledger, 10)
    first, second = orders(app, 2, 8)

    outcomes = race(2, lambda i: app.allocate_sales_order((first, second)[i], EventMetadata()))

    assert all(isinstance(o, OrderResult) for o in outcomes), outcomes
    allocated = allocated_by_order(app, [first, second])
    assert sorted(allocated.values()) == [2, 8]
    assert held_by_order(app) == {k: v for k, v in allocated.items() if v}
    chain_of(race_ledger.store, app.tenant_id)


def test_sixteen_orders_racing_for_ten_units_allocate_ten_and_backorder_six(
    race_ledger: Ledger,
) -> None:
    app = stocked(race_ledger, 10)
    order_ids = orders(app, THREADS, 1)

    outcomes = race(
        THREADS,
        lambda i: app.allocate_sales_order(
            order_ids[i], EventMetadata(idempotency_key=f"allocate-{i}")
        ),
    )

    results = [o for o in outcomes if isinstance(o, OrderResult)]
    assert len(results) == THREADS, outcomes
    assert sorted(r.status for r in results) == ["allocated"] * 10 + ["open"] * 6
    allocated = allocated_by_order(app, order_ids)
    assert sum(allocated.values()) == 10
    assert held_by_order(app) == {k: v for k, v in allocated.items() if v}


def test_shipments_racing_direct_issues_never_take_reserved_stock_or_go_negative(
    race_ledger: Ledger,
) -> None:
    app = stocked(race_ledger, 12)
    order_ids = orders(app, 4, 2)
    for order_id in order_ids:
        app.allocate_sales_order(order_id, EventMetadata())  # 8 reserved, 4 free

    def command(i: int) -> object:
        if i < len(order_ids):
            return app.ship_sales_order(order_ids[i], EventMetadata())
        return app.issue(SKU, "WH-A", 1, "sale", EventMetadata())

    outcomes = race(THREADS, command)

    shipped = [o for o in outcomes if isinstance(o, OrderResult)]
    issued = [o for o in outcomes if not isinstance(o, (OrderResult, Exception))]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(shipped), len(issued), len(refused)) == (4, 4, THREADS - 8), outcomes
    assert all(r.status == "shipped" for r in shipped)
    item = app.stock_item(SKU, "WH-A")
    assert item is not None
    assert (item.on_hand(), item.reserved()) == (0, 0)
    events = chain_of(race_ledger.store, app.tenant_id)
    assert events[-1].position == app.recorder.max_notification_id()


def test_orders_racing_for_one_external_id_create_one_order(race_ledger: Ledger) -> None:
    app = stocked(race_ledger, 2)

    outcomes = race(
        8,
        lambda i: app.create_purchase_order(
            "Acme", "WH-A", [(SKU, 1, "1")], EventMetadata(), external_id="ERP-PO-1"
        ),
    )

    created = [o for o in outcomes if isinstance(o, OrderResult)]
    assert len(created) == 1, outcomes
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o not in created)
    assert order_by_external_id(app, "purchase_order", "ERP-PO-1") == created[0].order_id
