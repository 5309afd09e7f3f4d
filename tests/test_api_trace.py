"""`GET /v1/lots/{lot}/trace`: everything that happened to a lot, with the orders, customers and
suppliers behind it, for one tenant only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.metadata import EventMetadata
from domain.orders import ReceiveLine, ReturnLine
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger.settings import Settings
from tests.conftest import open_store
from tests.orders import Clock, order_ledger
from tests.test_api_foundation import SECRET, bearer, token

M = EventMetadata()


@pytest.fixture
def ledger_store(database_url: str) -> Iterator[LedgerStore]:
    with open_store(database_url) as store:
        yield store


@pytest.fixture
def app(ledger_store: LedgerStore) -> LedgerApplication:
    return order_ledger(ledger_store, Clock())


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def trace(client: TestClient, tenant: UUID, lot: str, sku: str = "MILK") -> dict[str, Any]:
    response = client.get(
        f"/v1/lots/{lot}/trace", params={"sku": sku}, headers=bearer(token(tenant, ["sales"]))
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def entries(found: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(type, on-hand change, partner) of each stock entry."""
    return [
        (
            item["type"],
            item["on_hand_change"],
            None
            if item["order"] is None
            else item["order"]["customer"] or item["order"]["supplier"],
        )
        for item in found["items"]
        if item["type"].startswith("stock.")
    ]


def recall(app: LedgerApplication) -> tuple[UUID, UUID]:
    """A lot bought on a purchase order, moved, allocated, shipped and partly returned."""
    po = app.create_purchase_order(
        "Dairy Co", "WH1", [("MILK", 10, "1.5")], M, external_id="PO-EXT-1"
    ).order_id
    app.submit_purchase_order(po, M)
    app.receive_purchase_order(po, [ReceiveLine(1, 10, "A1", "RC-1")], M)
    app.move("MILK", "WH1", "A1", "A2", 4, M, lot="RC-1")
    later = date(2026, 7, 30)
    app.receive("MILK", "WH1", "A1", 7, "2", M, lot="OTHER", expires_on=later)  # never picked
    so = app.create_sales_order(
        "Corner Shop", "WH1", [("MILK", 6)], M, external_id="SO-EXT-1", reference="web-17"
    ).order_id
    app.allocate_sales_order(so, M)
    app.ship_sales_order(so, M)
    app.return_sales_order(so, [ReturnLine(1, 2, "restock", "A1")], M)
    return po, so


def test_a_recalled_lot_shows_its_purchase_move_reservation_shipment_and_return(
    client: TestClient, app: LedgerApplication
) -> None:
    po, so = recall(app)
    found = trace(client, app.tenant_id, "RC-1")
    assert entries(found) == [
        ("stock.received", "10", "Dairy Co"),
        ("stock.moved", "0", None),
        ("stock.reserved", "0", "Corner Shop"),
        ("stock.shipped", "-6", "Corner Shop"),
        ("stock.returned", "2", "Corner Shop"),
    ]
    orders = [item["order"] for item in found["items"] if item["order"] is not None]
    assert orders[0] == {
        "kind": "purchase_order",
        "order_id": str(po),
        "line": 1,
        "external_id": "PO-EXT-1",
        "reference": None,
        "customer": None,
        "supplier": "Dairy Co",
    }
    assert {(o["kind"], o["order_id"], o["external_id"], o["reference"]) for o in orders[1:]} == {
        ("sales_order", str(so), "SO-EXT-1", "web-17")
    }
    assert sum(Decimal(item["on_hand_change"]) for item in found["items"]) == 6


def test_a_trace_is_in_position_order_with_the_lots_quantities_and_bins(
    client: TestClient, app: LedgerApplication
) -> None:
    recall(app)
    found = trace(client, app.tenant_id, "RC-1")
    positions = [item["position"] for item in found["items"]]
    assert positions == sorted(positions)
    assert [item["type"] for item in found["items"]].count("lot.registered") == 1
    moved = next(item for item in found["items"] if item["type"] == "stock.moved")
    assert (moved["quantity"], moved["bins"], moved["warehouse"]) == ("4", ["A1", "A2"], "WH1")
    assert (found["sku"], found["lot"], found["status"]) == ("MILK", "RC-1", "released")
    assert found["expires_on"] == "2026-06-25"


def test_a_transfer_a_count_and_a_status_change_are_in_the_trace(
    client: TestClient, app: LedgerApplication
) -> None:
    app.receive("MILK", "WH1", "A1", 5, "1", M, lot="T-1")
    app.receive("MILK", "WH1", "A1", 9, "1", M, lot="T-2")
    app.issue("MILK", "WH1", 1, "sample", M, lot="T-2")
    app.transfer("MILK", "WH1", "WH2", "A1", 2, M, lot="T-1")
    app.count("MILK", "WH2", "A1", 1, M, lot="T-1")
    app.set_lot_status("MILK", "T-1", "hold", M)
    found = trace(client, app.tenant_id, "T-1")
    seen = [(i["type"], i["warehouse"], i["on_hand_change"]) for i in found["items"]]
    assert set(seen[:2]) == {("lot.registered", "WH1", "0"), ("stock.received", "WH1", "5")}
    assert seen[2:] == [  # one save records the receipt and the lot's registration
        ("stock.transferred_out", "WH1", "-2"),
        ("stock.transferred_in", "WH2", "2"),
        ("stock.counted", "WH2", "0"),
        ("stock.adjusted", "WH2", "-1"),
        ("lot.status_changed", None, "0"),
    ]
    assert found["status"] == "hold"


def test_a_scrapped_return_is_in_the_trace(client: TestClient, app: LedgerApplication) -> None:
    app.receive("MILK", "WH1", "A1", 3, "1", M, lot="S-1")
    so = app.create_sales_order("Corner Shop", "WH1", [("MILK", 3)], M).order_id
    app.allocate_sales_order(so, M)
    app.ship_sales_order(so, M)
    app.return_sales_order(so, [ReturnLine(1, 1, "scrap")], M)
    last = trace(client, app.tenant_id, "S-1")["items"][-1]
    assert (last["type"], last["quantity"], last["on_hand_change"]) == (
        "sales_order.returned",
        "1",
        "0",
    )
    assert last["order"]["customer"] == "Corner Shop"


def test_a_lot_id_with_a_slash_is_traced(client: TestClient, app: LedgerApplication) -> None:
    app.receive("MILK", "WH1", "A1", 3, "1", M, lot="B/7")
    found = trace(client, app.tenant_id, "B%2F7")
    assert found["lot"] == "B/7"
    assert sorted(i["type"] for i in found["items"]) == ["lot.registered", "stock.received"]


def test_an_unknown_lot_is_not_found(client: TestClient, app: LedgerApplication) -> None:
    app.receive("MILK", "WH1", "A1", 3, "1", M, lot="K-1")
    headers = bearer(token(app.tenant_id, ["sales"]))
    for lot, sku in (("NOPE", "MILK"), ("K-1", "BOLT")):
        response = client.get(f"/v1/lots/{lot}/trace", params={"sku": sku}, headers=headers)
        assert response.status_code == 404
        assert response.json()["type"] == "/errors/not-found"


def test_another_tenants_lot_is_not_found(
    client: TestClient, app: LedgerApplication, ledger_store: LedgerStore
) -> None:
    recall(app)
    other = order_ledger(ledger_store, Clock())
    response = client.get(
        "/v1/lots/RC-1/trace",
        params={"sku": "MILK"},
        headers=bearer(token(other.tenant_id, ["sales"])),
    )
    assert response.status_code == 404
    other.receive("MILK", "WH2", "A2", 1, "9", M, lot="RC-1")  # the same lot id, its own lot
    found = trace(client, other.tenant_id, "RC-1")
    assert entries(found) == [("stock.received", "1", None)]


def test_the_sku_is_required(client: TestClient, app: LedgerApplication) -> None:
    response = client.get("/v1/lots/RC-1/trace", headers=bearer(token(app.tenant_id, ["sales"])))
    assert response.status_code == 422


def test_the_trace_needs_stock_read(client: TestClient, app: LedgerApplication) -> None:
    response = client.get(
        "/v1/lots/RC-1/trace",
        params={"sku": "MILK"},
        headers=bearer(token(app.tenant_id, ["nobody"])),
    )
    assert response.status_code == 403


def test_lots_as_of_still_answers_beside_the_trace(
    client: TestClient, app: LedgerApplication
) -> None:
    app.receive("MILK", "WH1", "A1", 3, "1", M, lot="AS-1")
    response = client.get(
        "/v1/lots/as-of",
        params={"at": datetime.now(UTC).isoformat(), "sku": "MILK"},
        headers=bearer(token(app.tenant_id, ["sales"])),
    )
    assert response.status_code == 200, response.text
    assert [item["lot"] for item in response.json()["items"]] == ["AS-1"]
    assert trace(client, app.tenant_id, "AS-1")["items"]
