"""The stock item's rules as specifications: given stock, when a command, then picks or errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.allocation import LotStatus, RemovalPolicy
from domain.catalog import Bin, ProductRules
from domain.errors import (
    CountMismatch,
    InsufficientStock,
    LotConflict,
    LotExpired,
    LotUnavailable,
    UnknownReference,
)
from domain.stock import HISTORY_DEPTH, Conditions, StockItem

TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
BINS = {
    "A1": Bin("A1", "pick", True),
    "A2": Bin("A2", "pick", True),
    "DOCK": Bin("DOCK", "inbound", False),
}


def conditions(policy: RemovalPolicy = RemovalPolicy.FEFO, **changes: object) -> Conditions:
    rules = ProductRules("SKU", 2, True, policy is RemovalPolicy.FEFO, policy, None)
    base = Conditions(product=rules, bins=BINS, today=TODAY, effective_at=NOW)
    return Conditions(**{**base.__dict__, **changes})


def item_with(*receipts: tuple[str, str, str, str, date | None, int]) -> StockItem:
    """Receipts of (lot, bin, quantity, unit cost, expiry, hours after the first)."""
    item = StockItem.open(uuid4(), "SKU", "WH")
    for lot, bin_code, qty, cost, expires_on, hours in receipts:
        received = NOW - timedelta(days=30) + timedelta(hours=hours)
        item.receive(
            Decimal(qty),
            bin_code,
            Decimal(cost),
            lot,
            expires_on,
            conditions(),
            received_at=received,
        )
    item.collect_events()
    return item


def taken(picks: list) -> list[tuple[str, str, Decimal]]:  # type: ignore[type-arg]
    return [(p.lot, p.bin, p.quantity) for p in picks]


def test_fefo_picks_earliest_expiry_first_and_undated_lots_last() -> None:
    item = item_with(
        ("UNDATED", "A1", "5", "1", None, 0),
        ("LATE", "A1", "5", "1", date(2026, 9, 1), 1),
        ("SOON", "A2", "5", "1", date(2026, 7, 1), 2),
    )
    picks = item.issue(Decimal(12), "sale", conditions())
    assert taken(picks) == [("SOON", "A2", 5), ("LATE", "A1", 5), ("UNDATED", "A1", 2)]


def test_fefo_breaks_expiry_ties_by_receipt_then_lot_then_bin() -> None:
    same = date(2026, 8, 1)
    item = item_with(
        ("B", "A2", "1", "1", same, 0),
        ("B", "A1", "1", "1", same, 0),
        ("A", "A1", "1", "1", same, 5),
    )
    assert taken(item.issue(Decimal(3), "sale", conditions())) == [
        ("B", "A1", 1),
        ("B", "A2", 1),
        ("A", "A1", 1),
    ]


def test_fifo_picks_earliest_receipt_first_whatever_the_expiry() -> None:
    item = item_with(
        ("OLD", "A1", "2", "1", date(2027, 1, 1), 0), ("NEW", "A1", "2", "1", date(2026, 7, 1), 10)
    )
    picks = item.issue(Decimal(3), "sale", conditions(RemovalPolicy.FIFO))
    assert taken(picks) == [("OLD", "A1", 2), ("NEW", "A1", 1)]


def test_fefo_skips_expired_lots_and_lots_on_hold() -> None:
    item = item_with(
        ("EXPIRED", "A1", "5", "1", TODAY - timedelta(days=1), 0),
        ("HELD", "A1", "5", "1", date(2026, 7, 1), 1),
        ("GOOD", "A1", "5", "1", date(2026, 8, 1), 2),
    )
    item.set_lot_status("HELD", LotStatus.HOLD)
    assert taken(item.issue(Decimal(5), "sale", conditions())) == [("GOOD", "A1", 5)]


def test_a_lot_expiring_today_is_still_usable() -> None:
    item = item_with(("TODAY", "A1", "1", "1", TODAY, 0))
    assert taken(item.issue(Decimal(1), "sale", conditions())) == [("TODAY", "A1", 1)]


def test_policy_never_picks_from_a_non_pickable_bin() -> None:
    item = item_with(("DOCKED", "DOCK", "5", "1", date(2026, 8, 1), 0))
    with pytest.raises(InsufficientStock) as refused:
        item.issue(Decimal(1), "sale", conditions())
    assert (refused.value.requested, refused.value.available) == (1, 0)


def test_a_named_bin_may_be_non_pickable() -> None:
    item = item_with(("DOCKED", "DOCK", "5", "1", date(2026, 8, 1), 0))
    assert taken(item.issue(Decimal(2), "sale", conditions(), bin_code="DOCK")) == [
        ("DOCKED", "DOCK", 2)
    ]


def test_issuing_a_named_expired_lot_is_refused() -> None:
    item = item_with(("OLD", "A1", "5", "1", TODAY - timedelta(days=1), 0))
    with pytest.raises(LotExpired):
        item.issue(Decimal(1), "sale", conditions(), lot="OLD")


def test_a_named_expired_lot_may_be_issued_when_the_tenant_allows_it() -> None:
    item = item_with(("OLD", "A1", "5", "1", TODAY - timedelta(days=1), 0))
    picks = item.issue(Decimal(1), "sale", conditions(block_expired_issue=False), lot="OLD")
    assert taken(picks) == [("OLD", "A1", 1)]


def test_issuing_a_named_lot_in_quarantine_is_refused() -> None:
    item = item_with(("Q", "A1", "5", "1", date(2026, 8, 1), 0))
    item.set_lot_status("Q", LotStatus.QUARANTINE)
    with pytest.raises(LotUnavailable):
        item.issue(Decimal(1), "sale", conditions(), lot="Q")


def test_no_lot_and_bin_on_hand_ever_goes_negative() -> None:
    item = item_with(("L", "A1", "3", "1", date(2026, 8, 1), 0))
    with pytest.raises(InsufficientStock):
        item.issue(Decimal(4), "sale", conditions(), lot="L", bin_code="A1")
    assert item.on_hand("L", "A1") == 3
    assert item.pending_events == []


def test_each_pick_carries_the_cost_of_the_layer_it_consumed_in_receipt_order() -> None:
    item = item_with(
        ("L", "A1", "2", "1.00", date(2026, 8, 1), 0), ("L", "A1", "2", "1.50", date(2026, 8, 1), 1)
    )
    picks = item.issue(Decimal(3), "sale", conditions())
    assert [(p.quantity, p.unit_cost) for p in picks] == [
        (2, Decimal("1.00")),
        (1, Decimal("1.50")),
    ]
    assert sum(p.cost for p in picks) == Decimal("3.50")


def test_reservations_are_netted_out_of_what_a_policy_may_take() -> None:
    item = item_with(
        ("A", "A1", "5", "1", date(2026, 7, 1), 0), ("B", "A1", "5", "1", date(2026, 8, 1), 1)
    )
    item.reserve(Decimal(4), "SO-1", conditions())
    assert taken(item.issue(Decimal(3), "sale", conditions())) == [("A", "A1", 1), ("B", "A1", 2)]
    assert item.reserved("A", "A1") == 4


def test_reserving_more_than_available_fails_whole_by_default() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 7, 1), 0))
    with pytest.raises(InsufficientStock):
        item.reserve(Decimal(6), "SO-1", conditions())
    assert item.reserved() == 0


def test_a_partial_reservation_holds_what_exists_and_reports_the_shortage() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 7, 1), 0))
    allocation = item.reserve(Decimal(8), "SO-1", conditions(), allow_partial=True)
    assert (item.reserved(), allocation.shortage) == (5, 3)


def test_reserved_stock_is_issued_only_through_its_reservation() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 7, 1), 0))
    item.reserve(Decimal(5), "SO-1", conditions())
    with pytest.raises(InsufficientStock):
        item.issue(Decimal(1), "sale", conditions(), lot="A")
    with pytest.raises(InsufficientStock):
        item.move(Decimal(1), "A1", "A2", conditions())
    assert taken(item.issue_reserved("SO-1", conditions())) == [("A", "A1", 5)]
    assert (item.on_hand(), item.reserved(), item.holds) == (0, 0, {})


def test_a_reservation_on_a_lot_that_expires_later_blocks_its_shipment() -> None:
    item = item_with(("A", "A1", "5", "1", TODAY, 0))
    item.reserve(Decimal(2), "SO-1", conditions())
    tomorrow = conditions(today=TODAY + timedelta(days=1))
    with pytest.raises(LotExpired):
        item.issue_reserved("SO-1", tomorrow)
    assert item.reserved() == 2


def test_a_reservation_on_a_lot_put_on_hold_blocks_its_shipment() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    item.reserve(Decimal(2), "SO-1", conditions())
    item.set_lot_status("A", LotStatus.HOLD)
    with pytest.raises(LotUnavailable):
        item.issue_reserved("SO-1", conditions())


def test_releasing_a_reservation_makes_its_stock_available_again() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    item.reserve(Decimal(5), "SO-1", conditions())
    item.release("SO-1")
    assert item.available(conditions()) == 5


def test_releasing_an_unknown_reservation_is_refused() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    with pytest.raises(UnknownReference):
        item.release("nope")


def test_moving_reserved_stock_through_its_reservation_moves_the_hold_too() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    item.reserve(Decimal(3), "SO-1", conditions())
    item.move(Decimal(2), "A1", "A2", conditions(), reference="SO-1")
    assert (item.on_hand("A", "A2"), item.reserved("A", "A2"), item.reserved("A", "A1")) == (
        2,
        2,
        1,
    )


def test_a_move_keeps_lot_receipt_time_and_cost() -> None:
    item = item_with(("A", "A1", "5", "2.25", date(2026, 8, 1), 0))
    before = next(iter(item.layers.values()))
    item.move(Decimal(5), "A1", "A2", conditions())
    after = next(iter(item.layers.values()))
    assert (after.bin, after.lot, after.unit_cost, after.received_at) == (
        "A2",
        "A",
        Decimal("2.25"),
        before.received_at,
    )


def test_a_receipt_naming_an_existing_lot_with_another_expiry_is_refused() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    with pytest.raises(LotConflict):
        item.receive(Decimal(1), "A1", Decimal(1), "A", date(2026, 9, 1), conditions())


def test_a_lot_already_past_its_expiry_is_received_but_never_allocated() -> None:
    item = item_with(("PAST", "A1", "5", "1", TODAY - timedelta(days=3), 0))
    assert item.on_hand() == 5
    assert item.available(conditions()) == 0


def test_a_count_is_recorded_as_the_difference() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    assert item.count(Decimal(7), "A1", "A", conditions()) == 2
    assert item.count(Decimal(4), "A1", "A", conditions()) == -3
    assert item.on_hand("A", "A1") == 4


def test_a_count_is_refused_when_the_ledger_no_longer_matches_the_scan() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    with pytest.raises(CountMismatch):
        item.count(Decimal(3), "A1", "A", conditions(), expected=Decimal(6))


def test_a_count_below_the_reserved_quantity_releases_the_shortfall() -> None:
    item = item_with(("A", "A1", "5", "1", date(2026, 8, 1), 0))
    item.reserve(Decimal(4), "SO-1", conditions())
    item.count(Decimal(1), "A1", "A", conditions())
    assert (item.on_hand("A", "A1"), item.reserved("A", "A1")) == (1, 1)


def test_writing_off_takes_all_expired_stock_and_its_reservations() -> None:
    item = item_with(
        ("OLD", "A1", "5", "1", TODAY - timedelta(days=1), 0),
        ("NEW", "A1", "5", "1", date(2026, 8, 1), 1),
    )
    item.reserve(Decimal(2), "SO-1", conditions(today=TODAY - timedelta(days=2)))
    picks = item.write_off_expired(conditions())
    assert taken(picks) == [("OLD", "A1", 5)]
    assert (item.on_hand(), item.reserved()) == (5, 0)


def test_a_negative_adjustment_without_a_lot_picks_by_policy_in_its_bin() -> None:
    item = item_with(
        ("LATE", "A1", "5", "1", date(2026, 9, 1), 0), ("SOON", "A1", "5", "1", date(2026, 7, 1), 1)
    )
    picks = item.adjust(
        Decimal(-6), "damage", conditions(), bin_code="A1", lot=None, unit_cost=None
    )
    assert isinstance(picks, list)
    assert taken(picks) == [("SOON", "A1", 5), ("LATE", "A1", 1)]


def test_replaying_the_events_reproduces_the_state() -> None:
    item = StockItem.open(uuid4(), "SKU", "WH")
    item.receive(Decimal(5), "A1", Decimal(1), "A", date(2026, 8, 1), conditions())
    item.receive(Decimal(3), "A2", Decimal(2), "B", None, conditions())
    item.reserve(Decimal(2), "SO-1", conditions())
    item.move(Decimal(1), "A1", "A2", conditions())
    item.issue_reserved("SO-1", conditions())
    item.set_lot_status("B", LotStatus.HOLD)
    item.count(Decimal(1), "A2", "B", conditions())

    replayed = None
    for event in item.collect_events():
        replayed = event.mutate(replayed)

    assert isinstance(replayed, StockItem)
    assert (replayed.layers, replayed.holds, replayed.expiry, replayed.status) == (
        item.layers,
        item.holds,
        item.expiry,
        item.status,
    )
    assert replayed.version == item.version


def at_day(day: int) -> Conditions:
    return conditions(effective_at=NOW - timedelta(days=10 - day))


def test_a_backdated_issue_before_the_stock_arrived_is_refused() -> None:
    item = StockItem.open(uuid4(), "SKU", "WH")
    item.receive(Decimal(10), "A1", Decimal(1), "A", None, at_day(5))
    with pytest.raises(InsufficientStock, match="from then until now"):
        item.issue(Decimal(1), "sale", at_day(3), lot="A")


def test_a_backdated_issue_must_keep_every_later_balance_non_negative() -> None:
    item = StockItem.open(uuid4(), "SKU", "WH")
    item.receive(Decimal(10), "A1", Decimal(1), "A", None, at_day(1))
    item.issue(Decimal(8), "sale", at_day(3), lot="A")
    with pytest.raises(InsufficientStock):
        item.issue(Decimal(5), "sale", at_day(2), lot="A")
    assert taken(item.issue(Decimal(2), "sale", at_day(2), lot="A")) == [("A", "A1", 2)]
    assert item.on_hand() == 0


def test_a_backdated_receipt_is_always_recordable() -> None:
    item = StockItem.open(uuid4(), "SKU", "WH")
    item.receive(Decimal(1), "A1", Decimal(1), "A", None, at_day(5))
    item.receive(Decimal(4), "A1", Decimal(1), "A", None, at_day(2))
    assert taken(item.issue(Decimal(3), "sale", at_day(3), lot="A")) == [("A", "A1", 3)]


def test_a_lot_without_stock_or_reservations_leaves_the_stock_items_state() -> None:
    item = item_with(
        ("GONE", "A1", "2", "1", date(2026, 8, 1), 0), ("KEPT", "A1", "2", "1", date(2026, 8, 2), 1)
    )
    item.issue(Decimal(2), "sale", conditions(), lot="GONE")
    assert (set(item.expiry), set(item.status), list(item.history)) == (
        {"KEPT"},
        {"KEPT"},
        ["KEPT\x1fA1"],
    )


def test_a_places_history_keeps_its_latest_movements_and_refuses_entries_before_them() -> None:
    item = StockItem.open(uuid4(), "SKU", "WH")
    start = NOW - timedelta(days=300)
    for day in range(HISTORY_DEPTH + 20):
        moment = conditions(effective_at=start + timedelta(days=day))
        item.receive(Decimal(1), "A1", Decimal(1), "A", None, moment)
    movements = item.history["A\x1fA1"]
    assert len(movements) == HISTORY_DEPTH
    assert movements[0].delta == 21  # the 21 oldest receipts, summed
    recent = conditions(effective_at=start + timedelta(days=HISTORY_DEPTH + 10))
    assert sum(p.quantity for p in item.issue(Decimal(5), "sale", recent, lot="A")) == 5
    with pytest.raises(InsufficientStock):
        item.issue(Decimal(1), "sale", conditions(effective_at=start + timedelta(days=5)), lot="A")
