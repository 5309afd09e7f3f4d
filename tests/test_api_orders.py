"""Purchase and sales orders over /v1: lifecycles, receipts with lots, allocation, shipment,
returns, idempotent retries, tenant isolation and permissions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.settings import Settings
from tests.test_api_foundation import SECRET, bearer, head, seed, token

Json = dict[str, Any]


@pytest.fixture
def tenant(database_url: str) -> UUID:
    return seed(database_url, f"orders-{uuid4().hex[:8]}", 5)


@pytest.fixture
def client(database_url: str, tenant: UUID) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=10,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def as_role(tenant: UUID, role: str) -> dict[str, str]:
    return bearer(token(tenant, [role]))


def post(client: TestClient, path: str, headers: dict[str, str], body: Json | None = None) -> Json:
    response = client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    data: Json = response.json()
    return data


def stocked(client: TestClient, tenant: UUID, sku: str, quantity: int, bin_code: str) -> None:
    """Stock of `sku` received in BER1 through a purchase order."""
    headers = as_role(tenant, "purchasing_agent")
    line = {"sku": sku, "quantity": quantity, "unit_cost": "2.5"}
    body = {"supplier": "Acme", "warehouse": "BER1", "lines": [line]}
    order = post(client, "/v1/purchase-orders", headers, body)
    post(client, f"/v1/purchase-orders/{order['id']}/submit", headers)
    receipt = {"lines": [{"line": 1, "quantity": quantity, "bin": bin_code}]}
    post(client, f"/v1/purchase-orders/{order['id']}/receipts", headers, receipt)


def test_a_purchase_order_is_received_in_two_parts_as_lots_with_expiry(
    client: TestClient, tenant: UUID
) -> None:
    headers = as_role(tenant, "purchasing_agent")
    expires = date.today() + timedelta(days=60)
    created = client.post(
        "/v1/purchase-orders",
        json={
            "supplier": "Elbe Dairy Cooperative",
            "warehouse": "BER1",
            "expected_on": date.today().isoformat(),
            "reference": "REF-PO-1",
            "lines": [{"sku": "GOUDA-1KG", "quantity": 10, "unit_cost": 7.4}],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "draft"
    assert order["position"] > 0
    path = f"/v1/purchase-orders/{order['id']}"
    assert post(client, f"{path}/submit", headers)["status"] == "submitted"

    first = post(
        client,
        f"{path}/receipts",
        headers,
        {
            "lines": [
                {
                    "line": 1,
                    "quantity": "4",
                    "bin": "P-01",
                    "lot": "GX-1",
                    "expires_on": expires.isoformat(),
                }
            ]
        },
    )
    assert first["status"] == "partially_received"
    assert first["receipts"] == [
        {
            "line": 1,
            "sku": "GOUDA-1KG",
            "quantity": "4",
            "unit_cost": "7.4",
            "bin": "P-01",
            "lot": "GX-1",
            "expires_on": expires.isoformat(),
        }
    ]
    later = expires + timedelta(days=5)
    second = post(
        client,
        f"{path}/receipts",
        headers,
        {
            "lines": [
                {
                    "line": 1,
                    "quantity": 6,
                    "bin": "P-02",
                    "lot": "GX-2",
                    "expires_on": later.isoformat(),
                }
            ]
        },
    )
    assert second["status"] == "received"
    assert second["position"] > first["position"]

    read = client.get(path, params={"min_position": second["position"]}, headers=headers)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["position"] >= second["position"]
    assert (body["status"], body["supplier"], body["reference"]) == (
        "received",
        "Elbe Dairy Cooperative",
        "REF-PO-1",
    )
    [line] = body["lines"]
    assert (line["ordered"], line["received"], line["open"]) == ("10", "10", "0")
    found = client.get(
        "/v1/purchase-orders",
        params={"status": "received", "reference": "REF-PO-1", "min_position": second["position"]},
        headers=headers,
    ).json()
    assert [item["id"] for item in found["items"]] == [order["id"]]


def test_receiving_a_draft_is_invalid_state_and_unknown_ids_are_not_found(
    client: TestClient, tenant: UUID
) -> None:
    headers = as_role(tenant, "purchasing_agent")
    order = post(
        client,
        "/v1/purchase-orders",
        headers,
        {
            "supplier": "Acme",
            "warehouse": "BER1",
            "lines": [{"sku": "GLOVE-L", "quantity": 12, "unit_cost": "1.95"}],
        },
    )
    refused = client.post(
        f"/v1/purchase-orders/{order['id']}/receipts",
        json={"lines": [{"line": 1, "quantity": 12, "bin": "P-01"}]},
        headers=headers,
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert (refused.json()["type"], refused.json()["status"]) == ("/errors/invalid-state", "draft")
    for path in (f"/v1/purchase-orders/{uuid4()}", "/v1/purchase-orders/not-a-uuid"):
        missing = client.get(path, headers=headers)
        assert missing.status_code == 404, path
        assert missing.json()["type"] == "/errors/not-found"
        assert client.post(f"{path}/submit", headers=headers).status_code == 404
    assert client.get(f"/v1/sales-orders/{order['id']}", headers=headers).status_code == 404


def test_a_sales_order_is_allocated_shipped_with_costs_and_partly_returned(
    client: TestClient, tenant: UUID
) -> None:
    stocked(client, tenant, "SCR-4X40", 20, "P-03")
    headers = as_role(tenant, "sales")
    order = post(
        client,
        "/v1/sales-orders",
        headers,
        {
            "customer": "Baumarkt Nord",
            "warehouse": "BER1",
            "lines": [{"sku": "SCR-4X40", "quantity": 5}],
        },
    )
    assert order["status"] == "open"
    path = f"/v1/sales-orders/{order['id']}"
    allocated = post(client, f"{path}/allocate", headers)
    assert allocated["status"] == "allocated"
    assert allocated["reserved"] == [{"line": 1, "quantity": "5"}]
    assert allocated["backordered"] == []

    shipped = post(client, f"{path}/ship", headers)
    assert shipped["status"] == "shipped"
    picks = shipped["picks"]
    assert sum(Decimal(p["quantity"]) for p in picks) == 5
    assert Decimal(shipped["cost"]) == sum(
        Decimal(p["quantity"]) * Decimal(p["unit_cost"]) for p in picks
    )
    returned = post(
        client,
        f"{path}/returns",
        headers,
        {"lines": [{"line": 1, "quantity": "2", "bin": "P-04", "disposition": "restock"}]},
    )
    assert returned["status"] == "shipped"
    assert sum(Decimal(r["quantity"]) for r in returned["returns"]) == 2

    read = client.get(path, params={"min_position": returned["position"]}, headers=headers).json()
    [line] = read["lines"]
    assert (read["status"], line["shipped"], line["returned"], line["allocated"]) == (
        "shipped",
        "5",
        "2",
        "0",
    )


def test_cancelling_after_a_partial_shipment_closes_the_order(
    client: TestClient, tenant: UUID
) -> None:
    stocked(client, tenant, "BLT-M8X50", 10, "P-02")
    headers = as_role(tenant, "sales")
    order = post(
        client,
        "/v1/sales-orders",
        headers,
        {
            "customer": "Werkstatt Süd",
            "warehouse": "BER1",
            "lines": [{"sku": "BLT-M8X50", "quantity": 6}],
        },
    )
    path = f"/v1/sales-orders/{order['id']}"
    post(client, f"{path}/allocate", headers)
    partial = post(client, f"{path}/ship", headers, {"lines": [{"line": 1, "quantity": 2}]})
    assert partial["status"] == "partially_shipped"
    cancelled = post(client, f"{path}/cancel", headers)
    assert cancelled["status"] == "closed"
    read = client.get(path, params={"min_position": cancelled["position"]}, headers=headers).json()
    [line] = read["lines"]
    assert (read["status"], line["shipped"], line["cancelled"], line["allocated"]) == (
        "closed",
        "2",
        "4",
        "0",
    )
    again = client.post(f"{path}/allocate", headers=headers)
    assert (again.status_code, again.json()["status"]) == (409, "closed")


def test_a_retried_create_with_the_same_key_and_body_replays_the_first_response(
    client: TestClient, database_url: str, tenant: UUID
) -> None:
    headers = as_role(tenant, "sales") | {"Idempotency-Key": "so-create-1"}
    body = {
        "customer": "Retry GmbH",
        "warehouse": "BER1",
        "lines": [{"sku": "HOSE-19", "quantity": 12.5}],
    }
    first = client.post("/v1/sales-orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    before = head(database_url, tenant)
    same = body | {"lines": [{"sku": "HOSE-19", "quantity": "12.50"}]}
    again = client.post("/v1/sales-orders", json=same, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert head(database_url, tenant) == before
    other = client.post("/v1/sales-orders", json=body | {"customer": "Other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["type"] == "/errors/idempotency-key-reused"
    assert head(database_url, tenant) == before


def test_another_tenant_neither_finds_nor_lists_an_order(
    client: TestClient, database_url: str, tenant: UUID
) -> None:
    other = seed(database_url, f"orders-other-{uuid4().hex[:8]}", 6)
    order = post(
        client,
        "/v1/purchase-orders",
        as_role(tenant, "purchasing_agent"),
        {
            "supplier": "Acme",
            "warehouse": "BER1",
            "lines": [{"sku": "GLOVE-L", "quantity": 12, "unit_cost": "1.95"}],
        },
    )
    foreign = as_role(other, "admin")
    path = f"/v1/purchase-orders/{order['id']}"
    assert client.get(path, headers=foreign).status_code == 404
    assert client.post(f"{path}/submit", headers=foreign).status_code == 404
    listed = client.get(
        "/v1/purchase-orders",
        params={"limit": 1000, "min_position": head(database_url, other)},
        headers=foreign,
    ).json()
    assert order["id"] not in [item["id"] for item in listed["items"]]
    mine = client.get(
        "/v1/purchase-orders",
        params={"limit": 1000, "min_position": order["position"]},
        headers=as_role(tenant, "auditor"),
    ).json()
    assert order["id"] in [item["id"] for item in mine["items"]]
    own = client.get(path, headers=as_role(tenant, "auditor"))
    assert (own.status_code, own.json()["status"]) == (200, "draft")


def test_list_pages_walk_every_order_once_and_filter_by_reference(
    client: TestClient, tenant: UUID
) -> None:
    writer = as_role(tenant, "sales")
    created = [
        post(
            client,
            "/v1/sales-orders",
            writer,
            {
                "customer": f"Customer {n}",
                "warehouse": "HAM1",
                "reference": "WAVE-7" if n % 2 else None,
                "external_id": f"EXT-{n}",
                "lines": [{"sku": "GLOVE-L", "quantity": n + 1}],
            },
        )
        for n in range(5)
    ]
    headers = as_role(tenant, "auditor")
    latest = max(order["position"] for order in created)
    whole = client.get(
        "/v1/sales-orders", params={"limit": 1000, "min_position": latest}, headers=headers
    ).json()["items"]
    assert len(whole) >= 5
    walked: list[Json] = []
    cursor: str | None = None
    while True:
        params: Json = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/sales-orders", params=params, headers=headers).json()
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 2
    assert walked == whole
    waved: list[Json] = []
    cursor = None
    while True:
        params = {"limit": 1, "reference": "WAVE-7"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/sales-orders", params=params, headers=headers).json()
        waved += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(item["id"] for item in waved) == sorted(
        order["id"] for n, order in enumerate(created) if n % 2
    )
    by_external = client.get(
        "/v1/sales-orders", params={"external_id": "EXT-3", "status": "open"}, headers=headers
    ).json()["items"]
    assert [item["id"] for item in by_external] == [created[3]["id"]]
    bad = client.get("/v1/sales-orders", params={"cursor": "bm9wZQ"}, headers=headers)
    assert bad.status_code == 422


def test_the_sales_role_may_not_write_purchase_orders(client: TestClient, tenant: UUID) -> None:
    sales = as_role(tenant, "sales")
    body = {
        "supplier": "Acme",
        "warehouse": "BER1",
        "lines": [{"sku": "GLOVE-L", "quantity": 1, "unit_cost": 1}],
    }
    refused = client.post("/v1/purchase-orders", json=body, headers=sales)
    assert refused.status_code == 403
    assert refused.json()["type"] == "/errors/forbidden"
    order = post(client, "/v1/purchase-orders", as_role(tenant, "purchasing_agent"), body)
    assert (
        client.post(f"/v1/purchase-orders/{order['id']}/submit", headers=sales).status_code == 403
    )
    assert client.get(f"/v1/purchase-orders/{order['id']}", headers=sales).status_code == 200
    so = {"customer": "X", "warehouse": "BER1", "lines": [{"sku": "GLOVE-L", "quantity": 1}]}
    agent = as_role(tenant, "purchasing_agent")
    assert client.post("/v1/sales-orders", json=so, headers=agent).status_code == 403
