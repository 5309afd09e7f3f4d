"""The inventory application service on SQLite and PostgreSQL: commands across aggregates."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from domain.errors import (
    AlreadyExists,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidQuantity,
    LotConflict,
    LotUnavailable,
    PeriodLocked,
    StockOnHand,
    UnknownReference,
    ValidationFailed,
)
from domain.ids import tenant_id_for
from domain.inventory import InventoryApplication
from domain.metadata import EventMetadata
from eventstore.store import LedgerStore
from tests.orders import Clock, head, order_ledger

M = EventMetadata()
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def app(store: LedgerStore) -> InventoryApplication:
    """A registered tenant with a FEFO food product, a FIFO hardware product, two warehouses."""
    return order_ledger(store, Clock(NOW))


def test_a_repeated_command_under_its_key_returns_the_first_outcome_and_appends_nothing(
    app: InventoryApplication,
) -> None:
    keyed = EventMetadata(idempotency_key="rcv-1")
    first = app.receive("BOLT", "WH1", "A1", "2.5", "0.10", keyed, lot="B1")
    again = app.receive("BOLT", "WH1", "A1", Decimal("2.50"), "0.1", keyed, lot="B1")
    assert (again.position, again.lot, again.replayed) == (first.position, "B1", True)
    assert head(app) == first.position
    item = app.stock_item("BOLT", "WH1")
    assert item is not None
    assert item.on_hand() == Decimal("2.5")


def test_a_key_reused_for_another_request_is_refused(app: InventoryApplication) -> None:
    keyed = EventMetadata(idempotency_key="rcv-2")
    app.receive("BOLT", "WH1", "A1", 1, "1", keyed, lot="B1")
    with pytest.raises(IdempotencyKeyReused):
        app.receive("BOLT", "WH1", "A1", 2, "1", keyed, lot="B1")


def test_an_issue_replayed_under_its_key_returns_the_same_picks_and_cost(
    app: InventoryApplication,
) -> None:
    app.receive("BOLT", "WH1", "A1", 5, "0.25", M, lot="B1")
    keyed = EventMetadata(idempotency_key="iss-1")
    first = app.issue("BOLT", "WH1", 2, "sale", keyed)
    again = app.issue("BOLT", "WH1", 2, "sale", keyed)
    assert again.picks == first.picks
    assert again.cost == first.cost == Decimal("0.50")
    assert app.stock_item("BOLT", "WH1").on_hand() == 3  # type: ignore[union-attr]


def test_a_lot_has_one_expiry_across_warehouses(app: InventoryApplication) -> None:
    app.receive("MILK", "WH1", "A1", 5, "1", M, lot="L1", expires_on=date(2026, 7, 1))
    with pytest.raises(LotConflict):
        app.receive("MILK", "WH2", "A1", 5, "1", M, lot="L1", expires_on=date(2026, 7, 2))
    assert app.stock_item("MILK", "WH2") is None


def test_shelf_life_gives_the_expiry_of_a_receipt_that_names_none(
    app: InventoryApplication,
) -> None:
    app.receive("MILK", "WH1", "A1", 1, "1", M, lot="L1")
    assert app.stock_item("MILK", "WH1").expiry["L1"] == date(2026, 6, 25)  # type: ignore[union-attr]


def test_shelf_life_counts_from_the_receipts_business_date_in_its_warehouse(
    app: InventoryApplication,
) -> None:
    app.register_warehouse("AKL", "Auckland", "Pacific/Auckland", M)
    app.add_bin("AKL", "A1", M)
    evening = EventMetadata(effective_at=datetime(2026, 6, 14, 11, 30, tzinfo=UTC))  # 23:30 NZST
    app.receive("MILK", "AKL", "A1", 1, "1", evening, lot="L-NZ")
    assert app.lot("MILK", "L-NZ").expires_on == date(2026, 6, 24)  # type: ignore[union-attr]
    night = EventMetadata(effective_at=datetime(2026, 6, 14, 12, 30, tzinfo=UTC))  # 0:30, the 15th
    app.receive("MILK", "AKL", "A1", 1, "1", night, lot="L-NZ2")
    assert app.lot("MILK", "L-NZ2").expires_on == date(2026, 6, 25)  # type: ignore[union-attr]


def test_a_generated_lot_is_reported_when_the_receipt_names_none(
    app: InventoryApplication,
) -> None:
    result = app.receive("BOLT", "WH1", "A1", 1, "1", M)
    assert result.lot is not None
    assert result.lot.startswith("L-")


def test_a_transfer_moves_lot_expiry_cost_and_receipt_time_in_one_save(
    app: InventoryApplication,
) -> None:
    app.receive("MILK", "WH1", "A1", 5, "1.20", M, lot="L1", expires_on=date(2026, 7, 1))
    before = head(app)
    result = app.transfer("MILK", "WH1", "WH2", "A1", 3, M)
    source, destination = app.stock_item("MILK", "WH1"), app.stock_item("MILK", "WH2")
    assert source is not None
    assert destination is not None
    assert (source.on_hand(), destination.on_hand()) == (2, 3)
    layer = next(iter(destination.layers.values()))
    origin = next(iter(source.layers.values()))
    assert (layer.lot, layer.unit_cost, layer.received_at) == (
        "L1",
        Decimal("1.20"),
        origin.received_at,
    )
    assert destination.expiry["L1"] == date(2026, 7, 1)
    assert result.position > before
    events = app.recorder.select_notifications(start=before + 1, limit=100)
    assert {n.originator_id for n in events} >= {source.id, destination.id}


def test_a_lots_status_applies_in_every_warehouse_holding_it(app: InventoryApplication) -> None:
    app.receive("MILK", "WH1", "A1", 5, "1", M, lot="L1", expires_on=date(2026, 7, 1))
    app.transfer("MILK", "WH1", "WH2", "A1", 2, M)
    app.set_lot_status("MILK", "L1", "quarantine", M)
    for warehouse in ("WH1", "WH2"):
        with pytest.raises(LotUnavailable):
            app.issue("MILK", warehouse, 1, "sale", M, lot="L1")
    app.set_lot_status("MILK", "L1", "released", M)
    assert app.issue("MILK", "WH2", 1, "sale", M).picks[0].lot == "L1"


def test_a_lot_on_hold_arriving_in_another_warehouse_stays_on_hold(
    app: InventoryApplication,
) -> None:
    app.receive("MILK", "WH1", "A1", 5, "1", M, lot="L1", expires_on=date(2026, 7, 1))
    app.set_lot_status("MILK", "L1", "hold", M)
    app.receive("MILK", "WH2", "A1", 5, "1", M, lot="L1", expires_on=date(2026, 7, 1))
    with pytest.raises(InsufficientStock):
        app.reserve("MILK", "WH2", 1, "SO-1", M)


def test_decimals_cannot_change_while_the_product_has_stock_on_hand(
    app: InventoryApplication,
) -> None:
    app.receive("BOLT", "WH1", "A1", 1, "1", M, lot="B1")
    with pytest.raises(StockOnHand):
        app.change_product("BOLT", M, decimals=3)
    app.issue("BOLT", "WH1", 1, "sale", M)
    app.change_product("BOLT", M, decimals=3, name="Bolt M6 zinc")
    assert app.product("BOLT").decimals == 3


def test_a_quantity_with_more_decimals_than_the_unit_allows_is_refused(
    app: InventoryApplication,
) -> None:
    with pytest.raises(InvalidQuantity):
        app.receive("MILK", "WH1", "A1", "1.5", "1", M, lot="L1", expires_on=date(2026, 7, 1))
    with pytest.raises(InvalidQuantity):
        app.receive("BOLT", "WH1", "A1", "0", "1", M)


def test_an_entry_before_the_period_lock_date_is_refused(app: InventoryApplication) -> None:
    app.change_settings(M, period_lock_date=date(2026, 6, 1))
    late = EventMetadata(effective_at=datetime(2026, 5, 31, 12, tzinfo=UTC))
    with pytest.raises(PeriodLocked):
        app.receive("BOLT", "WH1", "A1", 1, "1", late)
    on_time = EventMetadata(effective_at=datetime(2026, 6, 2, 12, tzinfo=UTC))
    assert app.receive("BOLT", "WH1", "A1", 1, "1", on_time).position > 0


def test_configuration_takes_effect_when_recorded_and_takes_no_business_time(
    app: InventoryApplication,
) -> None:
    backdated = EventMetadata(effective_at=datetime(2026, 5, 31, 12, tzinfo=UTC))
    before = head(app)
    with pytest.raises(ValidationFailed, match="effective_at"):
        app.change_settings(backdated, period_lock_date=date(2026, 6, 1))
    with pytest.raises(ValidationFailed, match="effective_at"):
        app.register_product("NUT", "Nut M6", backdated)
    with pytest.raises(ValidationFailed, match="effective_at"):
        app.add_bin("WH1", "B9", backdated)
    assert head(app) == before
    assert app.tenant().period_lock_date is None


@pytest.mark.parametrize(
    ("sku", "warehouse", "bin_code"),
    [("NOPE", "WH1", "A1"), ("BOLT", "NOPE", "A1"), ("BOLT", "WH1", "NOPE")],
)
def test_unknown_references_are_refused_and_nothing_is_written(
    app: InventoryApplication, sku: str, warehouse: str, bin_code: str
) -> None:
    before = head(app)
    with pytest.raises(UnknownReference):
        app.receive(sku, warehouse, bin_code, 1, "1", M)
    assert head(app) == before


def test_a_sku_is_unique_in_the_tenant(app: InventoryApplication) -> None:
    with pytest.raises(AlreadyExists):
        app.register_product("BOLT", "Another bolt", M)


def test_fefo_needs_expiry_tracking(app: InventoryApplication) -> None:
    with pytest.raises(ValidationFailed, match="removal_policy"):
        app.register_product("SOAP", "Soap", M, removal_policy="fefo")


def test_an_unknown_reason_is_refused(app: InventoryApplication) -> None:
    with pytest.raises(ValidationFailed, match="reason"):
        app.issue("BOLT", "WH1", 1, "gift", M)


def test_writing_off_expired_stock_uses_the_warehouses_business_date(
    store: LedgerStore,
) -> None:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(slug)
    clock = [datetime(2026, 6, 30, 21, 30, tzinfo=UTC)]  # 1 July, 07:30 in Sydney
    app = InventoryApplication(tenant, store.factory_for(tenant), clock=lambda: clock[0])
    app.create_tenant(slug, None, "UTC", M)
    app.register_product("MILK", "Milk", M, expiry_tracked=True, removal_policy="fefo")
    app.register_warehouse("SYD", "Sydney", "Australia/Sydney", M)
    app.add_bin("SYD", "A1", M)
    app.receive("MILK", "SYD", "A1", 4, "1", M, lot="L1", expires_on=date(2026, 6, 30))

    written_off = app.write_off_expired("MILK", "SYD", M)

    assert [(p.lot, p.quantity) for p in written_off.picks] == [("L1", 4)]
    assert app.stock_item("MILK", "SYD").on_hand() == 0  # type: ignore[union-attr]


def test_a_keyed_command_that_changed_nothing_is_replayed_too(app: InventoryApplication) -> None:
    keyed = EventMetadata(idempotency_key="settings-1")
    first = app.change_settings(keyed, block_expired_issue=True)  # already the default
    again = app.change_settings(keyed, block_expired_issue=True)
    assert (first.replayed, again.replayed, again.position) == (False, True, first.position)
    with pytest.raises(IdempotencyKeyReused):
        app.change_settings(keyed, block_expired_issue=False)


def test_a_lot_received_again_without_an_expiry_keeps_its_own(store: LedgerStore) -> None:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(slug)
    clock = [NOW]
    app = InventoryApplication(tenant, store.factory_for(tenant), clock=lambda: clock[0])
    app.create_tenant(slug, None, "UTC", M)
    app.register_product("MILK", "Milk", M, expiry_tracked=True, shelf_life_days=10)
    app.register_warehouse("WH1", "WH1", "UTC", M)
    app.add_bin("WH1", "A1", M)
    app.receive("MILK", "WH1", "A1", 1, "1", M, lot="B1")
    clock[0] = NOW + timedelta(days=1)
    app.receive("MILK", "WH1", "A1", 1, "1", M, lot="B1")
    item = app.stock_item("MILK", "WH1")
    assert item is not None
    assert (item.on_hand(), item.expiry["B1"]) == (2, date(2026, 6, 25))


def test_lots_and_stock_loaded_from_snapshots_behave_as_replayed(store: LedgerStore) -> None:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(slug)
    app = InventoryApplication(tenant, store.factory_for(tenant), snapshot_interval=1)
    app.create_tenant(slug, None, "UTC", M)
    app.register_product("BOLT", "Bolt", M)
    for code in ("W1", "W2"):
        app.register_warehouse(code, code, "UTC", M)
        app.add_bin(code, "A1", M)
    app.receive("BOLT", "W1", "A1", 5, "1", M, lot="L1")
    app.set_lot_status("BOLT", "L1", "hold", M)
    app.set_lot_status("BOLT", "L1", "released", M)
    app.transfer("BOLT", "W1", "W2", "A1", 2, M)
    assert app.stock_item("BOLT", "W2").on_hand() == 2  # type: ignore[union-attr]


def test_a_command_without_an_idempotency_key_records_none_and_is_never_deduplicated(
    app: InventoryApplication, store: LedgerStore
) -> None:
    first = app.receive("BOLT", "WH1", "A1", 1, "1", M)
    second = app.receive("BOLT", "WH1", "A1", 1, "1", M)
    assert second.position > first.position
    events = store.read(app.tenant_id, after=first.position - 1, limit=10)
    assert [e.header["idempotency_key"] for e in events] == [None] * len(events)
