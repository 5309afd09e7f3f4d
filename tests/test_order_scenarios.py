"""Order scenarios as purchasing and sales staff live them, step by step with the stock."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from domain.errors import InvalidState, OverReceipt
from domain.orders import ReceiveLine, ReturnLine, ShipLine
from domain.purchasing import PurchaseOrder
from domain.sales import SalesOrder
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from tests.orders import Clock, M, head, item, on_hand, order_ledger, reserved

EXPIRES = date(2026, 8, 1)


@pytest.fixture
def app(store: LedgerStore) -> LedgerApplication:
    return order_ledger(store, Clock())


def purchase(app: LedgerApplication, order_id: UUID) -> PurchaseOrder:
    found: object = app.repository.get(order_id)
    assert isinstance(found, PurchaseOrder)
    return found


def sale(app: LedgerApplication, order_id: UUID) -> SalesOrder:
    found: object = app.repository.get(order_id)
    assert isinstance(found, SalesOrder)
    return found


def test_a_purchase_order_received_over_three_deliveries(app: LedgerApplication) -> None:
    po = app.create_purchase_order(
        "Dairy Co", "WH1", [("MILK", 100, "0.80"), ("BOLT", 40, "0.10")], M
    ).order_id
    app.submit_purchase_order(po, M)
    assert purchase(app, po).open_quantity == 140

    deliveries = [
        ([ReceiveLine(1, 30, "DOCK", lot="M-A", expires_on=EXPIRES)], "partially_received", 110),
        (
            [
                ReceiveLine(1, 50, "DOCK", lot="M-B", expires_on=EXPIRES),
                ReceiveLine(2, 40, "A1"),
            ],
            "partially_received",
            20,
        ),
        ([ReceiveLine(1, 20, "A1", lot="M-A", expires_on=EXPIRES)], "received", 0),
    ]
    for receipts, status, still_open in deliveries:
        assert app.receive_purchase_order(po, receipts, M).status == status
        assert purchase(app, po).open_quantity == still_open

    milk = item(app, "MILK")
    assert (milk.on_hand("M-A"), milk.on_hand("M-B"), on_hand(app, "BOLT")) == (50, 50, 40)
    assert [line.received for line in purchase(app, po).lines] == [100, 40]
    recorded = [e for e in app.events.get(po) if isinstance(e, PurchaseOrder.Received)]
    assert len(recorded) == 3


def test_a_receipt_at_the_tolerance_limit_passes_and_one_unit_beyond_refuses_it_all(
    app: LedgerApplication,
) -> None:
    app.change_settings(M, over_receipt_tolerance_pct=5)
    po = app.create_purchase_order("Acme", "WH1", [("BOLT", 100, "1"), ("BOLT", 20, "1")], M)
    app.submit_purchase_order(po.order_id, M)
    before = head(app)
    with pytest.raises(OverReceipt):
        app.receive_purchase_order(
            po.order_id, [ReceiveLine(1, 105, "A1"), ReceiveLine(2, "21.01", "A1")], M
        )
    assert (head(app), on_hand(app, "BOLT")) == (before, 0)  # line 1 was not half-received
    done = app.receive_purchase_order(
        po.order_id, [ReceiveLine(1, 105, "A1"), ReceiveLine(2, 21, "A1")], M
    )
    assert (done.status, on_hand(app, "BOLT")) == ("received", 126)


def test_a_backorder_is_filled_by_later_purchase_receipts(app: LedgerApplication) -> None:
    app.receive("BOLT", "WH1", "A1", 5, "0.10", M)
    so = app.create_sales_order("Builder", "WH1", [("BOLT", 20)], M).order_id
    first = app.allocate_sales_order(so, M)
    assert (first.status, [(b.line, b.quantity) for b in first.backordered]) == (
        "partially_allocated",
        [(1, 15)],
    )
    po = app.create_purchase_order("Acme", "WH1", [("BOLT", 15, "0.12")], M).order_id
    app.submit_purchase_order(po, M)
    app.receive_purchase_order(po, [ReceiveLine(1, 10, "A1")], M)
    assert app.allocate_sales_order(so, M).status == "partially_allocated"
    assert sale(app, so).lines[0].allocated == 15
    app.receive_purchase_order(po, [ReceiveLine(1, 5, "A2")], M)
    assert app.allocate_sales_order(so, M).status == "allocated"

    shipped = app.ship_sales_order(so, M)
    assert shipped.status == "shipped"
    assert shipped.cost == 5 * Decimal("0.10") + 15 * Decimal("0.12")  # FIFO layers
    assert (on_hand(app, "BOLT"), reserved(app, "BOLT")) == (0, 0)
    assert purchase(app, po).status == "received"


def test_cancelling_a_partly_allocated_order_frees_its_stock_for_the_next_one(
    app: LedgerApplication,
) -> None:
    app.receive("BOLT", "WH1", "A1", 6, "0.10", M)
    first = app.create_sales_order("First", "WH1", [("BOLT", 10)], M).order_id
    second = app.create_sales_order("Second", "WH1", [("BOLT", 4)], M).order_id
    assert app.allocate_sales_order(first, M).status == "partially_allocated"
    assert app.allocate_sales_order(second, M).status == "open"  # nothing left
    with pytest.raises(InvalidState, match="open"):
        app.ship_sales_order(second, M, lines=[ShipLine(1, 1)])  # ... nothing to ship either
    assert app.cancel_sales_order(first, M).status == "cancelled"
    assert reserved(app, "BOLT") == 0
    assert app.allocate_sales_order(second, M).status == "allocated"
    assert reserved(app, "BOLT") == 4


def test_a_return_to_quarantine_blocks_the_lot_everywhere_until_released(
    app: LedgerApplication,
) -> None:
    app.receive("MILK", "WH1", "A1", 10, "0.80", M, lot="M-Q", expires_on=EXPIRES)
    app.transfer("MILK", "WH1", "WH2", "A1", 4, M, lot="M-Q")
    so = app.create_sales_order("Cafe", "WH1", [("MILK", 3)], M).order_id
    app.allocate_sales_order(so, M)
    app.ship_sales_order(so, M)

    app.return_sales_order(so, [ReturnLine(1, 2, "quarantine", bin="A2")], M)
    for warehouse in ("WH1", "WH2"):
        assert item(app, "MILK", warehouse).status["M-Q"] == "quarantine"
    assert on_hand(app, "MILK") == 5  # 10 - 4 transferred - 3 shipped + 2 back
    blocked = app.create_sales_order("Cafe", "WH2", [("MILK", 1)], M).order_id
    assert app.allocate_sales_order(blocked, M).status == "open"

    app.set_lot_status("MILK", "M-Q", "released", M)
    assert app.allocate_sales_order(blocked, M).status == "allocated"
    assert sale(app, so).lines[0].returned == 2
    assert sale(app, so).status == "shipped"
