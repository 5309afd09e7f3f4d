"""Purchase orders: every transition and refusal, partial receipts, over-receipt tolerance."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest

from domain.errors import (
    AlreadyExists,
    IdempotencyKeyReused,
    InvalidState,
    NotFound,
    OverReceipt,
    UnknownReference,
    ValidationFailed,
)
from domain.metadata import EventMetadata
from domain.ordering import order_by_external_id
from domain.orders import ReceiveLine
from domain.purchasing import PurchaseOrder
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from tests.orders import START, Clock, M, head, item, on_hand, order_ledger

EXPIRES = date(2026, 7, 1)


@pytest.fixture
def app(store: LedgerStore) -> LedgerApplication:
    return order_ledger(store, Clock())


def submitted(app: LedgerApplication, *lines: tuple[str, int | str, str]) -> uuid.UUID:
    order = app.create_purchase_order(
        "Dairy Co", "WH1", list(lines), M, expected_on=date(2026, 6, 20), reference="PO-1"
    )
    app.submit_purchase_order(order.order_id, M)
    return order.order_id


def order(app: LedgerApplication, order_id: uuid.UUID) -> PurchaseOrder:
    found: object = app.repository.get(order_id)
    assert isinstance(found, PurchaseOrder)
    return found


def test_an_order_is_drafted_submitted_and_received_in_parts(app: LedgerApplication) -> None:
    draft = app.create_purchase_order("Dairy Co", "WH1", [("MILK", 10, "0.80")], M)
    assert draft.status == "draft"
    assert order(app, draft.order_id).open_quantity == 0  # a draft is not incoming yet
    assert app.submit_purchase_order(draft.order_id, M).status == "submitted"
    assert order(app, draft.order_id).open_quantity == 10

    first = app.receive_purchase_order(
        draft.order_id, [ReceiveLine(1, 4, "DOCK", lot="M1", expires_on=EXPIRES)], M
    )
    assert first.status == "partially_received"
    assert [(r.line, r.lot, r.quantity, r.unit_cost) for r in first.receipts] == [
        (1, "M1", 4, Decimal("0.80"))
    ]
    second = app.receive_purchase_order(
        draft.order_id, [ReceiveLine(1, 6, "A1", lot="M2", expires_on=EXPIRES)], M
    )
    assert second.status == "received"
    assert on_hand(app, "MILK") == 10
    assert item(app, "MILK").on_hand("M1", "DOCK") == 4
    assert order(app, draft.order_id).lines[0].received == 10
    assert order(app, draft.order_id).open_quantity == 0


def test_one_receipt_takes_several_lines_and_lots_in_one_save(app: LedgerApplication) -> None:
    order_id = submitted(app, ("MILK", 10, "0.80"), ("BOLT", "2.5", "0.10"))
    before = head(app)
    result = app.receive_purchase_order(
        order_id,
        [
            ReceiveLine(1, 6, "A1", lot="M1", expires_on=EXPIRES),
            ReceiveLine(1, 4, "A2", lot="M2", expires_on=EXPIRES + timedelta(days=3)),
            ReceiveLine(2, "2.5", "A1"),
        ],
        M,
    )
    assert result.status == "received"
    assert on_hand(app, "MILK") == 10
    assert on_hand(app, "BOLT") == Decimal("2.5")
    recorded = app.recorder.select_notifications(start=before + 1, limit=100)
    assert max(n.id for n in recorded) == result.position
    assert len({n.originator_id for n in recorded}) >= 4  # order, 2 stock items, lots: one save


def test_a_receipt_without_lot_or_expiry_gets_a_generated_lot_and_the_shelf_life(
    app: LedgerApplication,
) -> None:
    order_id = submitted(app, ("MILK", 5, "0.80"))
    result = app.receive_purchase_order(order_id, [ReceiveLine(1, 5, "A1")], M)
    lot = result.receipts[0].lot
    assert lot.startswith("L-")
    assert result.receipts[0].expires_on == START.date() + timedelta(days=10)
    assert item(app, "MILK").expiry[lot] == START.date() + timedelta(days=10)


def test_receiving_at_the_tolerance_limit_is_accepted_and_beyond_it_refused(
    app: LedgerApplication,
) -> None:
    app.change_settings(M, over_receipt_tolerance_pct="10")
    order_id = submitted(app, ("BOLT", 100, "0.10"))
    app.receive_purchase_order(order_id, [ReceiveLine(1, 60, "A1")], M)
    before = head(app)
    with pytest.raises(OverReceipt) as refused:
        app.receive_purchase_order(order_id, [ReceiveLine(1, "50.01", "A1")], M)
    assert refused.value.receivable == 50
    assert head(app) == before
    assert app.receive_purchase_order(order_id, [ReceiveLine(1, 50, "A1")], M).status == "received"
    assert on_hand(app, "BOLT") == 110
    with pytest.raises(InvalidState, match="received"):
        app.receive_purchase_order(order_id, [ReceiveLine(1, "0.01", "A1")], M)


def test_without_tolerance_not_one_unit_more_than_ordered_is_received(
    app: LedgerApplication,
) -> None:
    order_id = submitted(app, ("BOLT", 10, "0.10"))
    with pytest.raises(OverReceipt):
        app.receive_purchase_order(order_id, [ReceiveLine(1, 6, "A1"), ReceiveLine(1, 5, "A2")], M)
    assert on_hand(app, "BOLT") == 0
    assert order(app, order_id).status == "submitted"


def test_closing_short_closes_the_open_remainder(app: LedgerApplication) -> None:
    order_id = submitted(app, ("BOLT", 10, "0.10"), ("MILK", 5, "0.80"))
    app.receive_purchase_order(order_id, [ReceiveLine(1, 4, "A1")], M)
    assert app.close_purchase_order(order_id, M).status == "closed"
    closed = order(app, order_id)
    assert closed.open_quantity == 0
    events = app.events.get(order_id)
    short = next(e for e in events if isinstance(e, PurchaseOrder.Closed)).short
    assert [(s.line, s.quantity) for s in short] == [(1, 6), (2, 5)]
    with pytest.raises(InvalidState, match="closed") as refused:
        app.receive_purchase_order(order_id, [ReceiveLine(1, 1, "A1")], M)
    assert refused.value.status == "closed"


@pytest.mark.parametrize(
    ("steps", "command", "status"),
    [
        ((), "close", "draft"),
        ((), "receive", "draft"),
        (("submit",), "submit", "submitted"),
        (("submit", "receive"), "cancel", "partially_received"),
        (("submit", "receive"), "submit", "partially_received"),
        (("cancel",), "submit", "cancelled"),
        (("cancel",), "cancel", "cancelled"),
        (("cancel",), "receive", "cancelled"),
        (("submit", "close"), "close", "closed"),
        (("submit", "close"), "cancel", "closed"),
        (("submit", "receive_all"), "close", "received"),
        (("submit", "receive_all"), "cancel", "received"),
    ],
)
def test_each_command_the_status_does_not_allow_is_refused_naming_it(
    app: LedgerApplication, steps: tuple[str, ...], command: str, status: str
) -> None:
    order_id = app.create_purchase_order("Acme", "WH1", [("BOLT", 10, "0.10")], M).order_id

    def run(name: str) -> None:
        if name == "receive":
            app.receive_purchase_order(order_id, [ReceiveLine(1, 3, "A1")], M)
        elif name == "receive_all":
            app.receive_purchase_order(order_id, [ReceiveLine(1, 10, "A1")], M)
        else:
            getattr(app, f"{name}_purchase_order")(order_id, M)

    for step in steps:
        run(step)
    before = head(app)
    with pytest.raises(InvalidState) as refused:
        run(command)
    assert refused.value.status == status
    assert status in str(refused.value)
    assert head(app) == before


def test_cancelling_a_draft_or_a_submitted_order(app: LedgerApplication) -> None:
    draft = app.create_purchase_order("Acme", "WH1", [("BOLT", 1, "1")], M).order_id
    assert app.cancel_purchase_order(draft, M).status == "cancelled"
    sent = submitted(app, ("BOLT", 1, "1"))
    assert app.cancel_purchase_order(sent, M).status == "cancelled"
    assert order(app, sent).open_quantity == 0


def test_an_external_id_is_unique_per_tenant_and_kind(app: LedgerApplication) -> None:
    first = app.create_purchase_order("Acme", "WH1", [("BOLT", 1, "1")], M, external_id="ERP-7")
    before = head(app)
    with pytest.raises(AlreadyExists):
        app.create_purchase_order("Acme", "WH1", [("BOLT", 2, "1")], M, external_id="ERP-7")
    assert head(app) == before
    assert order(app, first.order_id).external_id == "ERP-7"
    assert order_by_external_id(app, "purchase_order", "ERP-7") == first.order_id
    app.create_sales_order("Shop", "WH1", [("BOLT", 1)], M, external_id="ERP-7")


@pytest.mark.parametrize(
    ("lines", "warehouse", "error"),
    [
        ([("NOPE", 1, "1")], "WH1", UnknownReference),
        ([("BOLT", 1, "1")], "NOPE", UnknownReference),
        ([("BOLT", "0.001", "1")], "WH1", ValidationFailed),
        ([("BOLT", 0, "1")], "WH1", ValidationFailed),
        ([("BOLT", 1, "-1")], "WH1", ValidationFailed),
        ([], "WH1", ValidationFailed),
    ],
)
def test_an_order_naming_what_does_not_exist_or_bad_quantities_is_refused(
    app: LedgerApplication,
    lines: list[tuple[str, int | str, str]],
    warehouse: str,
    error: type[Exception],
) -> None:
    before = head(app)
    with pytest.raises(error):
        app.create_purchase_order("Acme", warehouse, lines, M)
    assert head(app) == before


@pytest.mark.parametrize(
    ("receipt", "error"),
    [
        (ReceiveLine(2, 1, "A1"), UnknownReference),
        (ReceiveLine(1, 1, "NOPE"), UnknownReference),
        (ReceiveLine(1, "0.5", "A1", lot="M1", expires_on=EXPIRES), ValidationFailed),
    ],
)
def test_a_receipt_naming_an_unknown_line_or_bin_or_a_bad_quantity_writes_nothing(
    app: LedgerApplication, receipt: ReceiveLine, error: type[Exception]
) -> None:
    order_id = submitted(app, ("MILK", 5, "0.80"))
    before = head(app)
    with pytest.raises(error):
        app.receive_purchase_order(order_id, [receipt], M)
    assert head(app) == before


def test_an_unknown_order_is_not_found(app: LedgerApplication) -> None:
    with pytest.raises(NotFound):
        app.submit_purchase_order(uuid.uuid4(), M)
    stock_item = item_id_of(app)
    with pytest.raises(NotFound):  # a stream that is no purchase order
        app.submit_purchase_order(stock_item, M)


def item_id_of(app: LedgerApplication) -> uuid.UUID:
    app.receive("BOLT", "WH1", "A1", 1, "1", M)
    return item(app, "BOLT").id


def test_a_receipt_is_idempotent_under_its_key(app: LedgerApplication) -> None:
    order_id = submitted(app, ("BOLT", 10, "0.10"))
    keyed = EventMetadata(idempotency_key="grn-1")
    first = app.receive_purchase_order(order_id, [ReceiveLine(1, 4, "A1")], keyed)
    again = app.receive_purchase_order(order_id, [ReceiveLine(1, "4.00", "A1")], keyed)
    assert again.replayed
    assert (again.position, again.status, again.receipts) == (
        first.position,
        first.status,
        first.receipts,
    )
    assert on_hand(app, "BOLT") == 4
    with pytest.raises(IdempotencyKeyReused):
        app.receive_purchase_order(order_id, [ReceiveLine(1, 5, "A1")], keyed)


def test_a_receipt_records_the_expected_date_and_its_business_time(
    app: LedgerApplication,
) -> None:
    order_id = submitted(app, ("BOLT", 10, "0.10"))
    late = START - timedelta(hours=3)
    app.receive_purchase_order(
        order_id, [ReceiveLine(1, 10, "A1")], EventMetadata(effective_at=late)
    )
    received = next(e for e in app.events.get(order_id) if isinstance(e, PurchaseOrder.Received))
    assert (received.expected_on, received.effective_at) == (date(2026, 6, 20), late)
