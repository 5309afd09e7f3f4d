"""Concurrency on PostgreSQL: racing commands on one hot stream never over-allocate.

Each test releases 16 threads together (a barrier) against one stock item of a fresh tenant,
through one shared application, as an API process would. The service retries lost
optimistic-concurrency races, so every command ends as a success or a typed business refusal.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from domain.errors import InsufficientStock
from domain.inventory import InventoryApplication, StockResult
from domain.metadata import EventMetadata
from domain.quantities import ZERO
from domain.stock import StockItem, stock_item_id
from eventstore.records import RecordedEvent
from ledger.wiring import Ledger
from tests.racing import SKU, THREADS, add_warehouse, chain_of, new_tenant, race

pytestmark = pytest.mark.postgres

Outcome = StockResult | Exception


def unexpected(outcomes: list[Outcome]) -> list[str]:
    """Outcomes that are neither a success nor an insufficient-stock refusal (shown on failure)."""
    return [
        f"{type(o).__name__}: {o}"
        for o in outcomes
        if not isinstance(o, (StockResult, InsufficientStock))
    ]


def picked(result: StockResult) -> Decimal:
    return sum((pick.quantity for pick in result.picks), ZERO)


def stream_events(events: list[RecordedEvent], stream: UUID, kind: str) -> list[RecordedEvent]:
    return [e for e in events if e.stream_id == stream and e.topic.endswith(f"StockItem.{kind}")]


def every_version(app: InventoryApplication, stream: UUID) -> list[StockItem]:
    """The stock item as it stood after each of its events."""
    latest: StockItem = app.repository.get(stream)
    versions: list[StockItem] = [
        app.repository.get(stream, version=v) for v in range(1, latest.version + 1)
    ]
    return versions


def test_sixteen_threads_reserving_one_unit_of_ten_make_ten_reservations_and_six_refusals(
    race_ledger: Ledger,
) -> None:
    app = new_tenant(race_ledger, "race-reserve")
    add_warehouse(app, "WH-A", "A-01")
    app.receive(SKU, "WH-A", "A-01", 10, "2.50", EventMetadata())
    references = [f"ORDER-{i:02d}" for i in range(THREADS)]

    outcomes = race(
        THREADS,
        lambda i: app.reserve(
            SKU, "WH-A", 1, references[i], EventMetadata(idempotency_key=f"reserve-{i}")
        ),
    )

    assert unexpected(outcomes) == []
    won = {references[i]: o for i, o in enumerate(outcomes) if isinstance(o, StockResult)}
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(won), len(refused)) == (10, 6)
    assert all(picked(result) == 1 and result.shortage == ZERO for result in won.values())
    assert len({result.position for result in won.values()}) == 10

    item = app.stock_item(SKU, "WH-A")
    assert item is not None
    assert item.reserved() == 10 == item.on_hand()
    conditions = app.conditions(
        app.product(SKU), app.warehouse("WH-A"), app.tenant(), EventMetadata()
    )
    assert item.available(conditions) == ZERO
    assert set(item.holds) == set(won)
    assert all(sum(h.quantity for h in holds) == 1 for holds in item.holds.values())

    events = chain_of(race_ledger.store, app.tenant_id)
    stream = stock_item_id(app.tenant_id, SKU, "WH-A")
    assert len(stream_events(events, stream, "Reserved")) == 10
    assert all(v.reserved() <= v.on_hand() for v in every_version(app, stream))


def test_commands_on_one_hot_stream_serialise_instead_of_failing(race_ledger: Ledger) -> None:
    """When stock covers every request, every racing reservation succeeds (losers retry)."""
    app = new_tenant(race_ledger, "race-hot")
    add_warehouse(app, "WH-A", "A-01")
    app.receive(SKU, "WH-A", "A-01", THREADS, "1", EventMetadata())

    outcomes = race(
        THREADS, lambda i: app.reserve(SKU, "WH-A", 1, f"ORDER-{i:02d}", EventMetadata())
    )

    assert [type(o).__name__ for o in outcomes if not isinstance(o, StockResult)] == []
    item = app.stock_item(SKU, "WH-A")
    assert item is not None
    assert item.reserved() == THREADS == item.on_hand()


def test_transfers_racing_issues_never_drive_stock_negative_and_conserve_quantity(
    race_ledger: Ledger,
) -> None:
    app = new_tenant(race_ledger, "race-transfer")
    add_warehouse(app, "WH-A", "A-01", "A-02")
    add_warehouse(app, "WH-B", "B-01")
    received = {"LOT-1": Decimal(12), "LOT-2": Decimal(8)}
    unit_cost = {"LOT-1": Decimal("2.50"), "LOT-2": Decimal("3.00")}
    app.receive(SKU, "WH-A", "A-01", 12, "2.50", EventMetadata(), lot="LOT-1")
    app.receive(SKU, "WH-A", "A-02", 8, "3.00", EventMetadata(), lot="LOT-2")
    stocked = sum(received.values(), ZERO)
    # Even threads issue, odd threads transfer to WH-B; 2, 3 or 4 units each: 46 wanted of 20.
    wanted = [Decimal(2 + (i // 2) % 3) for i in range(THREADS)]
    assert sum(wanted) > stocked

    def command(i: int) -> StockResult:
        meta = EventMetadata(idempotency_key=f"move-out-{i}")
        if i % 2 == 0:
            return app.issue(SKU, "WH-A", wanted[i], "sale", meta)
        return app.transfer(SKU, "WH-A", "WH-B", "B-01", wanted[i], meta)

    outcomes = race(THREADS, command)

    assert unexpected(outcomes) == []
    won = {i: o for i, o in enumerate(outcomes) if isinstance(o, StockResult)}
    refused = [i for i, o in enumerate(outcomes) if isinstance(o, InsufficientStock)]
    assert won
    assert refused, "more was wanted than stocked, so something must have been refused"
    assert all(picked(result) == wanted[i] for i, result in won.items())
    issued = sum((wanted[i] for i in won if i % 2 == 0), ZERO)
    transferred = sum((wanted[i] for i in won if i % 2 == 1), ZERO)

    source_id = stock_item_id(app.tenant_id, SKU, "WH-A")
    destination_id = stock_item_id(app.tenant_id, SKU, "WH-B")
    source = app.stock_item(SKU, "WH-A")
    destination = app.stock_item(SKU, "WH-B")
    assert source is not None
    left = source.on_hand()
    arrived = destination.on_hand() if destination is not None else ZERO
    assert issued + transferred == stocked - left
    assert arrived == transferred
    assert left + arrived + issued == stocked
    # Stock only ever left WH-A, so each refusal wanted more than what is left now.
    assert all(wanted[i] > left for i in refused)

    issued_by_lot = dict.fromkeys(received, ZERO)
    for i, result in won.items():
        if i % 2 == 0:
            for pick in result.picks:
                issued_by_lot[pick.lot] += pick.quantity
    for lot, quantity in received.items():
        there = destination.on_hand(lot) if destination is not None else ZERO
        assert source.on_hand(lot) + there + issued_by_lot[lot] == quantity, lot
    if destination is not None:
        assert all(layer.unit_cost == unit_cost[layer.lot] for layer in destination.layers.values())

    versions = every_version(app, source_id)
    if destination is not None:
        versions += every_version(app, destination_id)
    assert all(layer.quantity > ZERO for item in versions for layer in item.layers.values())

    events = chain_of(race_ledger.store, app.tenant_id)
    assert len(stream_events(events, source_id, "Removed")) == len(won)
    assert len(stream_events(events, destination_id, "Received")) == sum(
        len(won[i].picks) for i in won if i % 2 == 1
    )
