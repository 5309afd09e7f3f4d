"""Stock movements over HTTP (`POST /v1/stock/...`): receipts, issues, reservations, moves,
transfers, adjustments, counts, write-offs and lot status, with idempotency, permissions and
request ids recorded in the events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from ledger.settings import Settings
from ledger.wiring import Ledger
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, token

TODAY = date.today()


@dataclass(frozen=True)
class Shop:
    """A tenant of one test, with its client and an operator's headers."""

    client: TestClient
    url: str
    tenant: UUID

    def headers(self, *roles: str, **extra: str) -> dict[str, str]:
        return bearer(token(self.tenant, list(roles) or ["warehouse_operator"])) | extra

    def post(self, path: str, body: dict[str, Any], **headers: str) -> Response:
        sent = self.headers() | {k.replace("_", "-"): v for k, v in headers.items()}
        response: Response = self.client.post(f"/v1/stock/{path}", json=body, headers=sent)
        return response

    def head(self) -> int:
        with open_store(self.url) as store:
            return store.head(self.tenant).position


def setup_tenant(url: str, slug: str) -> UUID:
    """A tenant with FIFO screws, FEFO milk (lot and expiry tracked), cable by the metre, and
    two warehouses with pickable bins and a receiving dock."""
    tenant = tenant_id_for(slug)
    meta = EventMetadata()
    with open_store(url) as store:
        app = Ledger(store, snapshot_interval=0).app(tenant)
        app.create_tenant(slug, None, "Europe/Berlin", meta)
        app.register_product("SCREW", "Wood screws", meta)
        app.register_product("CABLE", "Cable", meta, uom="m", decimals=2)
        app.register_product(
            "MILK",
            "Milk",
            meta,
            lot_tracked=True,
            expiry_tracked=True,
            removal_policy="fefo",
        )
        for code in ("W1", "W2"):
            app.register_warehouse(code, f"Warehouse {code}", "Europe/Berlin", meta)
            app.add_bin(code, "A-01", meta)
            app.add_bin(code, "A-02", meta)
            app.add_bin(code, "DOCK", meta, zone="inbound", pickable=False)
    return tenant


@pytest.fixture
def shop(database_url: str) -> Iterator[Shop]:
    tenant = setup_tenant(database_url, f"stock-{uuid4().hex[:10]}")
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=10,
    )
    with TestClient(create_app(settings)) as client:
        yield Shop(client, database_url, tenant)


def receive(shop: Shop, sku: str, quantity: Any, **fields: Any) -> dict[str, Any]:
    body = {"sku": sku, "warehouse": "W1", "bin": "A-01", "quantity": quantity}
    response = shop.post("receipts", body | {"unit_cost": "1.50"} | fields)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def level(shop: Shop, sku: str, warehouse: str, position: int) -> dict[str, Any]:
    response = shop.client.get(
        "/v1/stock-levels",
        params={"sku": sku, "warehouse": warehouse, "min_position": position},
        headers=shop.headers("auditor"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["position"] >= position
    [item] = response.json()["items"]
    return {
        k: Decimal(v) if isinstance(v, str) and k not in ("sku", "warehouse") else v
        for k, v in item.items()
    }


def problem(response: Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/errors/{kind}"
    return body


def test_a_receipt_is_201_with_its_lot_and_position_and_shows_in_stock_levels(shop: Shop) -> None:
    before = shop.head()
    body = receive(shop, "CABLE", 12.5, lot="C-1", unit_cost="0.62", reference="GRN-1")
    assert body["lot"] == "C-1"
    assert body["picks"] == []
    assert body["position"] == shop.head() > before
    row = level(shop, "CABLE", "W1", body["position"])
    assert (row["on_hand"], row["reserved"]) == (Decimal("12.5"), 0)
    assert row["value"] == Decimal("7.75")

    generated = receive(shop, "SCREW", "4")
    assert generated["lot"].startswith("L-")
    assert level(shop, "SCREW", "W1", generated["position"])["on_hand"] == 4


def test_an_issue_beyond_available_is_insufficient_stock_and_appends_nothing(shop: Shop) -> None:
    receive(shop, "SCREW", 10)
    before = shop.head()
    refused = shop.post(
        "issues", {"sku": "SCREW", "warehouse": "W1", "quantity": 11, "reason": "sale"}
    )
    body = problem(refused, 409, "insufficient-stock")
    assert (body["requested"], body["available"]) == ("11", "10")
    assert body["retryable"] is False
    assert shop.head() == before


def test_an_issue_picks_by_policy_and_returns_its_cost(shop: Shop) -> None:
    late, soon = (TODAY + timedelta(days=20)).isoformat(), (TODAY + timedelta(days=5)).isoformat()
    receive(shop, "MILK", 5, lot="M-LATE", expires_on=late, unit_cost="1.00")
    receive(shop, "MILK", 5, lot="M-SOON", expires_on=soon, unit_cost="2.00")
    response = shop.post(
        "issues",
        {"sku": "MILK", "warehouse": "W1", "quantity": "7", "reason": "sale", "reference": "X"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    picks = [
        (p["lot"], p["bin"], p["quantity"], Decimal(p["unit_cost"]), p["expires_on"])
        for p in body["picks"]
    ]
    assert picks == [
        ("M-SOON", "A-01", "5", Decimal(2), soon),
        ("M-LATE", "A-01", "2", Decimal(1), late),
    ]
    assert Decimal(body["cost"]) == Decimal(12)
    assert body["position"] == shop.head()
    assert level(shop, "MILK", "W1", body["position"])["on_hand"] == 3


def test_a_reservation_holds_stock_until_it_is_released(shop: Shop) -> None:
    receive(shop, "SCREW", 10, lot="S-1")
    reserved = shop.post(
        "reservations", {"sku": "SCREW", "warehouse": "W1", "quantity": 6, "reference": "R-1"}
    )
    assert reserved.status_code == 201, reserved.text
    body = reserved.json()
    assert [(p["lot"], p["bin"], p["quantity"]) for p in body["picks"]] == [("S-1", "A-01", "6")]
    assert (body["reference"], body["reserved"], body["shortage"]) == ("R-1", "6", "0")
    row = level(shop, "SCREW", "W1", body["position"])
    assert (row["on_hand"], row["reserved"]) == (10, 6)

    issue = {"sku": "SCREW", "warehouse": "W1", "quantity": 5, "reason": "consumption"}
    assert problem(shop.post("issues", issue), 409, "insufficient-stock")["available"] == "4"
    partial = shop.post(
        "reservations",
        {"sku": "SCREW", "warehouse": "W1", "quantity": 9, "reference": "R-2", "allow_partial": 1},
    )
    assert partial.status_code == 201, partial.text
    assert (partial.json()["reserved"], partial.json()["shortage"]) == ("4", "5")

    for reference in ("R-1", "R-2"):
        released = shop.post(
            "reservations/release", {"sku": "SCREW", "warehouse": "W1", "reference": reference}
        )
        assert released.status_code == 201, released.text
        assert released.json()["picks"] == []
    assert shop.post("issues", issue).status_code == 201
    again = shop.post(
        "reservations/release", {"sku": "SCREW", "warehouse": "W1", "reference": "R-1"}
    )
    problem(again, 422, "unknown-reference")


def test_the_same_key_and_an_equal_body_replays_the_first_response(shop: Shop) -> None:
    receive(shop, "CABLE", 20, lot="C-1")
    issue = {"sku": "CABLE", "warehouse": "W1", "reason": "sale", "reference": "job 7"}
    first = shop.post("issues", issue | {"quantity": 2.5}, Idempotency_Key="issue-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    head = shop.head()
    for equal in ("2.50", 2.5, "2.5"):
        again = shop.post("issues", issue | {"quantity": equal}, Idempotency_Key="issue-1")
        assert again.status_code == first.status_code
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
    assert shop.head() == head

    receipt = {"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "unit_cost": 0.5}
    made = shop.post("receipts", receipt | {"quantity": 3}, Idempotency_Key="grn-1")
    replayed = shop.post("receipts", receipt | {"quantity": "3.0"}, Idempotency_Key="grn-1")
    assert (made.status_code, replayed.status_code) == (201, 201)
    assert replayed.json() == made.json()  # the generated lot too
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert level(shop, "SCREW", "W1", shop.head())["on_hand"] == 3


def test_the_same_key_with_another_body_is_idempotency_key_reused(shop: Shop) -> None:
    receive(shop, "SCREW", 10)
    issue = {"sku": "SCREW", "warehouse": "W1", "reason": "sale"}
    assert shop.post("issues", issue | {"quantity": 2}, Idempotency_Key="k").status_code == 201
    head = shop.head()
    other = shop.post("issues", issue | {"quantity": 3}, Idempotency_Key="k")
    problem(other, 422, "idempotency-key-reused")
    elsewhere = shop.post(
        "reservations",
        {"sku": "SCREW", "warehouse": "W1", "quantity": 2, "reference": "R"},
        Idempotency_Key="k",
    )
    problem(elsewhere, 422, "idempotency-key-reused")
    assert shop.head() == head
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    late = issue | {"quantity": 2, "effective_at": earlier}
    problem(shop.post("issues", late, Idempotency_Key="k"), 422, "idempotency-key-reused")
    assert shop.head() == head
    long_key = shop.post("issues", issue | {"quantity": 1}, Idempotency_Key="x" * 256)
    problem(long_key, 422, "validation-error")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("receipts", {"sku": "NOPE", "warehouse": "W1", "bin": "A-01", "quantity": 1}),
        ("receipts", {"sku": "SCREW", "warehouse": "W9", "bin": "A-01", "quantity": 1}),
        ("receipts", {"sku": "SCREW", "warehouse": "W1", "bin": "Z-99", "quantity": 1}),
        ("issues", {"sku": "NOPE", "warehouse": "W1", "quantity": 1, "reason": "sale"}),
        ("moves", {"sku": "SCREW", "warehouse": "W1", "from_bin": "A-01", "to_bin": "Z-99"}),
    ],
)
def test_an_unknown_sku_warehouse_or_bin_is_unknown_reference(
    shop: Shop, path: str, body: dict[str, Any]
) -> None:
    receive(shop, "SCREW", 5)
    head = shop.head()
    sent = {"unit_cost": "1", "quantity": 1} | body
    problem(shop.post(path, sent, X_Request_ID="unknown-1"), 422, "unknown-reference")
    assert shop.head() == head


def test_invalid_values_are_validation_errors(shop: Shop) -> None:
    receive(shop, "SCREW", 5)
    base = {"sku": "SCREW", "warehouse": "W1", "reason": "sale"}
    for refused in (
        base | {"quantity": 1.5},  # screws are counted in whole units
        base | {"quantity": True},
        base | {"quantity": "lots"},
        base | {"quantity": "NaN"},
        base | {"quantity": -1},
        base | {"quantity": "1e100000000"},
        base | {"quantity": 1, "reason": "gift"},
        base | {"quantity": 1, "effective_at": "2024-01-01T10:00:00"},  # no offset
        {"warehouse": "W1", "quantity": 1, "reason": "sale"},
    ):
        body = problem(shop.post("issues", refused), 422, "validation-error")
        assert body["errors"], refused


def test_a_role_without_stock_write_is_forbidden(shop: Shop) -> None:
    head = shop.head()
    for path in (
        "receipts",
        "issues",
        "reservations",
        "reservations/release",
        "moves",
        "transfers",
        "adjustments",
        "counts",
        "write-offs",
        "lots/L-1/status",
    ):
        response = shop.client.post(f"/v1/stock/{path}", json={}, headers=shop.headers("auditor"))
        problem(response, 403, "forbidden")
        unauthenticated = shop.client.post(f"/v1/stock/{path}", json={})
        problem(unauthenticated, 401, "unauthenticated")
    assert shop.head() == head


def test_the_request_id_is_recorded_in_every_event_of_the_request(shop: Shop) -> None:
    receive(shop, "SCREW", 10)
    before = shop.head()
    response = shop.post(
        "transfers",
        {"sku": "SCREW", "from_warehouse": "W1", "to_warehouse": "W2", "to_bin": "A-01"}
        | {"quantity": 4},
        X_Request_ID="req-transfer-1",
        Idempotency_Key="t-1",
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == "req-transfer-1"
    with open_store(shop.url) as store:
        events = store.read(shop.tenant, after=before)
    assert len(events) >= 2  # both stock items change together
    assert {e.header["request_id"] for e in events} == {"req-transfer-1"}
    assert {e.header["idempotency_key"] for e in events} == {"t-1"}
    assert events[-1].position == response.json()["position"]


def test_moves_and_transfers_take_stock_from_one_place_to_another(shop: Shop) -> None:
    receive(shop, "SCREW", 10, lot="S-1")
    moved = shop.post(
        "moves",
        {"sku": "SCREW", "warehouse": "W1", "from_bin": "A-01", "to_bin": "A-02", "quantity": 4},
    )
    assert moved.status_code == 201, moved.text
    assert [(p["lot"], p["bin"], p["quantity"]) for p in moved.json()["picks"]] == [
        ("S-1", "A-01", "4")
    ]
    transfer = {"sku": "SCREW", "from_warehouse": "W1", "to_warehouse": "W2", "to_bin": "A-02"}
    sent = shop.post("transfers", transfer | {"quantity": "3", "from_bin": "A-02"})
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert [(p["lot"], p["bin"], p["quantity"]) for p in body["picks"]] == [("S-1", "A-02", "3")]
    assert Decimal(body["picks"][0]["unit_cost"]) == Decimal("1.5")
    assert level(shop, "SCREW", "W1", body["position"])["on_hand"] == 7
    assert level(shop, "SCREW", "W2", body["position"])["on_hand"] == 3
    too_much = shop.post("transfers", transfer | {"quantity": 2, "from_bin": "A-02"})
    assert problem(too_much, 409, "insufficient-stock")["available"] == "1"
    same = shop.post("transfers", transfer | {"quantity": 1, "to_warehouse": "W1"})
    problem(same, 422, "validation-error")


def test_adjustments_and_counts_correct_the_ledger(shop: Shop) -> None:
    receive(shop, "SCREW", 10, lot="S-1")
    adjustment = {"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "reason": "damage"}
    down = shop.post("adjustments", adjustment | {"delta": -2})
    assert down.status_code == 201, down.text
    assert [(p["lot"], p["quantity"]) for p in down.json()["picks"]] == [("S-1", "2")]
    assert Decimal(down.json()["cost"]) == Decimal(3)
    new_lot = shop.post("adjustments", adjustment | {"delta": 1, "lot": "S-2", "reason": "other"})
    problem(new_lot, 422, "unknown-reference")  # a new lot needs a unit cost
    up = shop.post(
        "adjustments",
        adjustment | {"delta": 1, "lot": "S-2", "unit_cost": "2", "reason": "correction"},
    )
    assert up.status_code == 201, up.text
    assert (up.json()["lot"], up.json()["picks"], up.json()["cost"]) == ("S-2", [], "0")

    count = {"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "lot": "S-1"}
    mismatch = shop.post("counts", count | {"counted_quantity": 7, "expected_quantity": 9})
    problem(mismatch, 409, "count-mismatch")
    counted = shop.post("counts", count | {"counted_quantity": 7, "expected_quantity": "8"})
    assert counted.status_code == 201, counted.text
    assert (counted.json()["lot"], counted.json()["difference"]) == ("S-1", "-1")
    assert level(shop, "SCREW", "W1", counted.json()["position"])["on_hand"] == 8


def test_expired_stock_is_written_off_and_lot_status_blocks_issues(shop: Shop) -> None:
    expired = (TODAY - timedelta(days=5)).isoformat()
    fresh = (TODAY + timedelta(days=9)).isoformat()
    receive(shop, "MILK", 4, lot="M-OLD", expires_on=expired, unit_cost="0.75")
    receive(shop, "MILK", 6, lot="M-NEW", expires_on=fresh)
    named = {"sku": "MILK", "warehouse": "W1", "quantity": 1, "reason": "sale", "lot": "M-OLD"}
    problem(shop.post("issues", named), 409, "lot-expired")
    written = shop.post("write-offs", {"sku": "MILK", "warehouse": "W1"})
    assert written.status_code == 201, written.text
    body = written.json()
    assert [(p["lot"], p["quantity"], p["expires_on"]) for p in body["picks"]] == [
        ("M-OLD", "4", expired)
    ]
    assert Decimal(body["cost"]) == Decimal(3)

    held = shop.client.post(
        "/v1/stock/lots/M-NEW/status",
        json={"sku": "MILK", "status": "hold"},
        headers=shop.headers(),
    )
    assert held.status_code == 200, held.text
    assert (held.json()["lot"], held.json()["status"]) == ("M-NEW", "hold")
    problem(shop.post("issues", named | {"lot": "M-NEW"}), 409, "lot-unavailable")
    problem(
        shop.post("issues", named | {"lot": None}), 409, "insufficient-stock"
    )  # a held lot is never picked by policy
    released = shop.client.post(
        "/v1/stock/lots/M-NEW/status",
        json={"sku": "MILK", "status": "released"},
        headers=shop.headers(),
    )
    assert released.status_code == 200, released.text
    assert shop.post("issues", named | {"lot": None}).status_code == 201

    missing = shop.client.post(
        "/v1/stock/lots/M%2FX/status",
        json={"sku": "MILK", "status": "hold"},
        headers=shop.headers(),
    )
    problem(missing, 404, "not-found")
    unknown_sku = shop.client.post(
        "/v1/stock/lots/M-NEW/status",
        json={"sku": "NOPE", "status": "hold"},
        headers=shop.headers(),
    )
    problem(unknown_sku, 422, "unknown-reference")


def test_an_entry_more_than_a_day_back_needs_stock_backdate(shop: Shop) -> None:
    now = datetime.now(UTC)
    receipt = {"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "quantity": 5, "unit_cost": 1}
    head = shop.head()
    old = (now - timedelta(days=2)).isoformat()
    problem(shop.post("receipts", receipt | {"effective_at": old}), 403, "forbidden")
    assert shop.head() == head
    recent = (now - timedelta(hours=3)).isoformat()
    assert shop.post("receipts", receipt | {"effective_at": recent}).status_code == 201
    as_admin = shop.client.post(
        "/v1/stock/receipts",
        json=receipt | {"effective_at": old},
        headers=shop.headers("admin"),
    )
    assert as_admin.status_code == 201, as_admin.text
    future = (now + timedelta(hours=3)).isoformat()
    problem(shop.post("receipts", receipt | {"effective_at": future}), 422, "validation-error")
