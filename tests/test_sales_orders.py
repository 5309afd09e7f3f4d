"""Sales orders: allocation by policy, backorders, reallocation, shipments, cancels, returns."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from domain.errors import (
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidState,
    LotExpired,
    LotUnavailable,
    UnknownReference,
    ValidationFailed,
)
from domain.metadata import EventMetadata
from domain.orders import ReturnLine, ShipLine, reservation_reference
from domain.sales import SalesOrder
from domain.sales_orders import LedgerApplication
from domain.stock import Conditions
from eventstore.store import LedgerStore
from tests.orders import Clock, M, head, item, on_hand, order_ledger, reserved

SOON, LATER = date(2026, 6, 20), date(2026, 7, 10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(store: LedgerStore, clock: Clock) -> LedgerApplication:
    ledger = order_ledger(store, clock)
    ledger.receive("MILK", "WH1", "A1", 4, "0.80", M, lot="LATE", expires_on=LATER)
    ledger.receive("MILK", "WH1", "A2", 3, "0.90", M, lot="SOON", expires_on=SOON)
    ledger.receive("BOLT", "WH1", "A1", 10, "0.10", M, lot="B1")
    return ledger


def order(app: LedgerApplication, order_id: uuid.UUID) -> SalesOrder:
    found: object = app.repository.get(order_id)
    assert isinstance(found, SalesOrder)
    return found


def opened(app: LedgerApplication, *lines: tuple[str, int | str]) -> uuid.UUID:
    return app.create_sales_order("Corner Shop", "WH1", list(lines), M).order_id


def allocated(app: LedgerApplication, order_id: uuid.UUID) -> list[Decimal]:
    return [line.allocated for line in order(app, order_id).lines]


def test_allocation_reserves_by_fefo_and_shipping_issues_the_reserved_lots_with_cost(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("MILK", 5), ("BOLT", 2))
    result = app.allocate_sales_order(order_id, M)
    assert result.status == "allocated"
    assert [(r.line, r.quantity) for r in result.reserved] == [(1, 5), (2, 2)]
    assert result.backordered == ()
    holds = item(app, "MILK").holds[reservation_reference(order_id, 1)]
    assert [(h.lot, h.quantity) for h in holds] == [("SOON", 3), ("LATE", 2)]
    assert reserved(app, "MILK") == 5

    shipped = app.ship_sales_order(order_id, M)
    assert shipped.status == "shipped"
    assert [(s.line, s.lot, s.quantity) for s in shipped.shipments] == [
        (1, "SOON", 3),
        (1, "LATE", 2),
        (2, "B1", 2),
    ]
    assert shipped.cost == Decimal("3") * Decimal("0.90") + 2 * Decimal("0.80") + 2 * Decimal(
        "0.10"
    )
    assert (on_hand(app, "MILK"), reserved(app, "MILK"), on_hand(app, "BOLT")) == (2, 0, 8)
    assert [line.shipped for line in order(app, order_id).lines] == [5, 2]


def test_a_short_line_stays_backordered_until_a_later_receipt_fills_it(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("MILK", 10), ("BOLT", 1))
    first = app.allocate_sales_order(order_id, M)
    assert first.status == "partially_allocated"
    assert [(b.line, b.quantity) for b in first.backordered] == [(1, 3)]
    assert allocated(app, order_id) == [7, 1]

    again = app.allocate_sales_order(order_id, M)  # nothing new: nothing recorded
    assert (again.reserved, [(b.line, b.quantity) for b in again.backordered]) == ((), [(1, 3)])

    app.receive("MILK", "WH1", "A1", 5, "0.85", M, lot="NEW", expires_on=LATER)
    filled = app.allocate_sales_order(order_id, M)
    assert filled.status == "allocated"
    assert [(r.line, r.quantity) for r in filled.reserved] == [(1, 3)]
    assert allocated(app, order_id) == [10, 1]
    assert item(app, "MILK").available(app_conditions(app)) == 2


def app_conditions(app: LedgerApplication) -> Conditions:
    return app.conditions(app.product("MILK"), app.warehouse("WH1"), app.tenant(), M)


def test_shipping_part_of_the_lines_then_the_rest(app: LedgerApplication) -> None:
    order_id = opened(app, ("MILK", 5), ("BOLT", 4))
    app.allocate_sales_order(order_id, M)
    part = app.ship_sales_order(order_id, M, lines=[ShipLine(2, 1)])
    assert part.status == "partially_shipped"
    assert [(s.line, s.quantity) for s in part.shipments] == [(2, 1)]
    assert allocated(app, order_id) == [5, 3]
    with pytest.raises(InsufficientStock) as refused:
        app.ship_sales_order(order_id, M, lines=[ShipLine(2, 4)])
    assert (refused.value.requested, refused.value.available) == (4, 3)
    assert app.ship_sales_order(order_id, M).status == "shipped"
    assert (on_hand(app, "BOLT"), reserved(app, "BOLT")) == (6, 0)


def test_cancelling_after_a_partial_allocation_releases_exactly_what_was_reserved(
    app: LedgerApplication,
) -> None:
    other = opened(app, ("MILK", 2))
    app.allocate_sales_order(other, M)
    order_id = opened(app, ("MILK", 9))
    assert app.allocate_sales_order(order_id, M).status == "partially_allocated"
    assert reserved(app, "MILK") == 7
    result = app.cancel_sales_order(order_id, M)
    assert result.status == "cancelled"
    assert reserved(app, "MILK") == 2  # the other order keeps its reservation
    cancelled = next(e for e in app.events.get(order_id) if isinstance(e, SalesOrder.Cancelled))
    assert [(r.line, r.quantity) for r in cancelled.released] == [(1, 5)]
    assert [(c.line, c.quantity) for c in cancelled.cancelled] == [(1, 9)]


def test_cancelling_after_a_partial_shipment_closes_the_order(app: LedgerApplication) -> None:
    order_id = opened(app, ("BOLT", 6))
    app.allocate_sales_order(order_id, M)
    app.ship_sales_order(order_id, M, lines=[ShipLine(1, 2)])
    assert app.cancel_sales_order(order_id, M).status == "closed"
    line = order(app, order_id).lines[0]
    assert (line.shipped, line.allocated, line.cancelled) == (2, 0, 4)
    assert (on_hand(app, "BOLT"), reserved(app, "BOLT")) == (8, 0)


def test_a_reservation_on_a_lot_put_on_hold_blocks_shipping_until_reallocated(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("MILK", 3))
    app.allocate_sales_order(order_id, M)  # FEFO: all of SOON
    app.set_lot_status("MILK", "SOON", "hold", M)
    before = head(app)
    with pytest.raises(LotUnavailable):
        app.ship_sales_order(order_id, M)
    assert head(app) == before
    again = app.allocate_sales_order(order_id, M)
    assert again.status == "allocated"
    holds = item(app, "MILK").holds[reservation_reference(order_id, 1)]
    assert [(h.lot, h.quantity) for h in holds] == [("LATE", 3)]
    assert [(s.lot, s.quantity) for s in app.ship_sales_order(order_id, M).shipments] == [
        ("LATE", 3)
    ]


def test_a_reservation_on_a_lot_that_expired_blocks_shipping_until_reallocated(
    app: LedgerApplication, clock: Clock
) -> None:
    order_id = opened(app, ("MILK", 4))
    app.allocate_sales_order(order_id, M)  # 3 SOON + 1 LATE
    clock.advance(days=6)  # SOON expired on the 20th
    with pytest.raises(LotExpired):
        app.ship_sales_order(order_id, M)
    again = app.allocate_sales_order(order_id, M)
    assert (again.status, again.backordered) == ("allocated", ())
    assert [(r.line, r.quantity) for r in again.released] == [(1, 3)]
    assert [(r.line, r.quantity) for r in again.reserved] == [(1, 3)]
    holds = item(app, "MILK").holds[reservation_reference(order_id, 1)]
    assert [(h.lot, h.quantity) for h in holds] == [("LATE", 4)]


@pytest.mark.parametrize(
    ("steps", "command", "status"),
    [
        ((), "ship", "open"),
        ((), "return", "open"),
        (("allocate",), "return", "allocated"),
        (("allocate", "ship"), "allocate", "shipped"),
        (("allocate", "ship"), "ship", "shipped"),
        (("allocate", "ship"), "cancel", "shipped"),
        (("cancel",), "allocate", "cancelled"),
        (("cancel",), "ship", "cancelled"),
        (("cancel",), "cancel", "cancelled"),
        (("cancel",), "return", "cancelled"),
        (("allocate", "ship_one", "cancel"), "allocate", "closed"),
        (("allocate", "ship_one", "cancel"), "ship", "closed"),
        (("allocate", "ship_one", "cancel"), "cancel", "closed"),
    ],
)
def test_each_command_the_status_does_not_allow_is_refused_naming_it(
    app: LedgerApplication, steps: tuple[str, ...], command: str, status: str
) -> None:
    order_id = opened(app, ("BOLT", 4))

    def run(name: str) -> None:
        if name == "ship_one":
            app.ship_sales_order(order_id, M, lines=[ShipLine(1, 1)])
        elif name == "return":
            app.return_sales_order(order_id, [ReturnLine(1, 1, "restock", bin="A1")], M)
        else:
            getattr(app, f"{name}_sales_order")(order_id, M)

    for step in steps:
        run(step)
    before = head(app)
    with pytest.raises(InvalidState) as refused:
        run(command)
    assert refused.value.status == status
    assert head(app) == before


def test_returns_restock_quarantine_or_scrap_the_same_lot_at_its_cost(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("MILK", 5))
    app.allocate_sales_order(order_id, M)
    app.ship_sales_order(order_id, M)  # 3 SOON at 0.90, then 2 LATE at 0.80
    restocked = app.return_sales_order(order_id, [ReturnLine(1, 1, "restock", bin="A1")], M)
    assert [(r.lot, r.quantity, r.unit_cost, r.expires_on) for r in restocked.returns] == [
        ("LATE", 1, Decimal("0.80"), LATER)
    ]
    assert restocked.status == "shipped"
    stock = item(app, "MILK")
    assert stock.on_hand("LATE", "A1") == 3  # 4 received, 2 shipped, 1 back
    scrapped = app.return_sales_order(order_id, [ReturnLine(1, 2, "scrap")], M)
    assert [(r.lot, r.quantity) for r in scrapped.returns] == [("LATE", 1), ("SOON", 1)]
    assert on_hand(app, "MILK") == 3  # scrap records the return without stock
    assert order(app, order_id).lines[0].returned == 3
    with pytest.raises(ValidationFailed, match="quantity"):
        app.return_sales_order(order_id, [ReturnLine(1, 3, "scrap")], M)
    assert order(app, order_id).status == "shipped"


def test_a_return_to_quarantine_blocks_the_lot_until_it_is_released(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("MILK", 4))
    app.allocate_sales_order(order_id, M)
    app.ship_sales_order(order_id, M)  # 3 SOON, 1 LATE
    app.return_sales_order(order_id, [ReturnLine(1, 2, "quarantine", bin="A2", lot="SOON")], M)
    stock = item(app, "MILK")
    assert stock.on_hand("SOON", "A2") == 2
    assert stock.status["SOON"] == "quarantine"
    assert app.lot("MILK", "SOON") is not None
    assert app.lot("MILK", "SOON").status == "quarantine"  # type: ignore[union-attr]
    second = opened(app, ("MILK", 5))
    assert app.allocate_sales_order(second, M).status == "partially_allocated"  # LATE's 3 only
    app.set_lot_status("MILK", "SOON", "released", M)
    assert app.allocate_sales_order(second, M).status == "allocated"


def test_a_count_that_finds_less_than_reserved_takes_it_from_the_order_too(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("BOLT", 8))
    app.allocate_sales_order(order_id, M)
    app.count("BOLT", "WH1", "A1", 5, M, lot="B1")
    assert (reserved(app, "BOLT"), allocated(app, order_id)) == (5, [5])
    assert order(app, order_id).status == "partially_allocated"
    lost = next(e for e in app.events.get(order_id) if isinstance(e, SalesOrder.ReservationLost))
    assert ([(r.line, r.quantity) for r in lost.released], lost.reason) == ([(1, 3)], "count")


def test_writing_off_an_expired_lot_takes_its_reservations_from_the_orders(
    app: LedgerApplication, clock: Clock
) -> None:
    order_id = opened(app, ("MILK", 4))
    app.allocate_sales_order(order_id, M)
    clock.advance(days=6)
    app.write_off_expired("MILK", "WH1", M)
    assert allocated(app, order_id) == [1]
    assert reserved(app, "MILK") == 1
    assert order(app, order_id).status == "partially_allocated"


def test_an_orders_reservation_cannot_be_changed_by_direct_stock_commands(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("BOLT", 2))
    app.allocate_sales_order(order_id, M)
    reference = reservation_reference(order_id, 1)
    with pytest.raises(ValidationFailed, match="reference"):
        app.release("BOLT", "WH1", reference, M)
    with pytest.raises(ValidationFailed, match="reference"):
        app.issue_reserved("BOLT", "WH1", reference, M)
    with pytest.raises(ValidationFailed, match="reference"):
        app.reserve("BOLT", "WH1", 1, reference, M)
    with pytest.raises(InsufficientStock):
        app.issue("BOLT", "WH1", 9, "sale", M)  # reserved stock is not free stock
    assert reserved(app, "BOLT") == 2


def test_order_commands_are_idempotent_under_their_keys(app: LedgerApplication) -> None:
    keyed = EventMetadata(idempotency_key="so-create-1")
    first = app.create_sales_order("Shop", "WH1", [("BOLT", 2)], keyed)
    again = app.create_sales_order("Shop", "WH1", [("BOLT", "2.0")], keyed)
    assert (again.order_id, again.replayed) == (first.order_id, True)
    allocate_key = EventMetadata(idempotency_key="so-alloc-1")
    done = app.allocate_sales_order(first.order_id, allocate_key)
    before = head(app)
    assert app.allocate_sales_order(first.order_id, allocate_key).reserved == done.reserved
    assert head(app) == before
    with pytest.raises(IdempotencyKeyReused):
        app.cancel_sales_order(first.order_id, allocate_key)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([ShipLine(2, 1)], UnknownReference),
        ([ShipLine(1, 1), ShipLine(1, 1)], ValidationFailed),
        ([ShipLine(1, "0.001")], ValidationFailed),
        ([], ValidationFailed),
    ],
)
def test_a_shipment_naming_unknown_lines_or_bad_quantities_writes_nothing(
    app: LedgerApplication, lines: list[ShipLine], error: type[Exception]
) -> None:
    order_id = opened(app, ("BOLT", 2))
    app.allocate_sales_order(order_id, M)
    before = head(app)
    with pytest.raises(error):
        app.ship_sales_order(order_id, M, lines=lines)
    assert head(app) == before


def test_an_order_for_a_sku_never_stocked_there_is_all_backordered(
    app: LedgerApplication,
) -> None:
    order_id = app.create_sales_order("Shop", "WH2", [("BOLT", 3)], M).order_id
    result = app.allocate_sales_order(order_id, M)
    assert (result.status, [(b.line, b.quantity) for b in result.backordered]) == (
        "open",
        [(1, 3)],
    )
    app.transfer("BOLT", "WH1", "WH2", "A1", 3, M)
    assert app.allocate_sales_order(order_id, M).status == "allocated"
    assert on_hand(app, "BOLT", "WH2") == 3


def test_returns_beyond_what_was_shipped_are_refused(app: LedgerApplication) -> None:
    order_id = opened(app, ("BOLT", 4))
    app.allocate_sales_order(order_id, M)
    app.ship_sales_order(order_id, M, lines=[ShipLine(1, 2)])
    before = head(app)
    with pytest.raises(ValidationFailed, match="quantity"):
        app.return_sales_order(order_id, [ReturnLine(1, 3, "restock", bin="A1")], M)
    with pytest.raises(ValidationFailed, match="bin"):
        app.return_sales_order(order_id, [ReturnLine(1, 1, "restock")], M)
    with pytest.raises(ValidationFailed, match="disposition"):
        app.return_sales_order(order_id, [ReturnLine(1, 1, "resell", bin="A1")], M)
    assert head(app) == before
    result = app.return_sales_order(order_id, [ReturnLine(1, 2, "restock", bin="A1")], M)
    assert result.status == "partially_shipped"
    assert order(app, order_id).lines[0].returned == 2
    assert on_hand(app, "BOLT") == 10
    assert item(app, "BOLT").on_hand("B1", "A1") == 10


def test_an_orders_reserved_stock_moves_to_a_staging_bin_with_its_reservation(
    app: LedgerApplication,
) -> None:
    order_id = opened(app, ("BOLT", 3))
    app.allocate_sales_order(order_id, M)
    reference = reservation_reference(order_id, 1)
    app.move("BOLT", "WH1", "A1", "DOCK", 3, M, reference=reference)  # picked to the dock
    holds = item(app, "BOLT").holds[reference]
    assert [(h.bin, h.quantity) for h in holds] == [("DOCK", 3)]
    assert allocated(app, order_id) == [3]  # the order still holds all of it
    shipped = app.ship_sales_order(order_id, M)
    assert [(s.bin, s.quantity) for s in shipped.shipments] == [("DOCK", 3)]
