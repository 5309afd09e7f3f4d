"""The catalog over HTTP: products, warehouses and bins, created idempotently, read from the
catalog read model by cursor pages, scoped to the caller's tenant, and scanned codes looked up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from ledger.cli import app as cli
from ledger.settings import Settings
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, runner, token

FAR = date(2099, 1, 1)
SOAP: dict[str, Any] = {
    "sku": "SOAP-1",
    "name": "Olive soap",
    "uom": "each",
    "decimals": 0,
    "lot_tracked": True,
    "expiry_tracked": True,
    "removal_policy": "fefo",
    "shelf_life_days": 365,
    "expiry_alert_days": 30,
    "reorder_point": 12,
    "reorder_quantity": "48",
    "attributes": {"brand": "Verde", "pack": {"width": 3}},
}


def create_tenant(url: str, slug: str) -> UUID:
    result = runner.invoke(cli, ["tenant", "create", slug], env={"LEDGER_DATABASE_URL": url})
    assert result.exit_code == 0, result.stderr
    return tenant_id_for(slug)


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    return create_tenant(database_url, f"cat-a-{run}"), create_tenant(database_url, f"cat-b-{run}")


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=10,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def admin(tenant: UUID) -> dict[str, str]:
    return bearer(token(tenant, ["admin"]))


def head(url: str, tenant: UUID) -> int:
    with open_store(url) as store:
        return store.head(tenant).position


def post(
    client: TestClient, tenant: UUID, path: str, body: dict[str, Any], key: str | None = None
) -> Response:
    headers = admin(tenant) | ({"Idempotency-Key": key} if key else {})
    response: Response = client.post(path, json=body, headers=headers)
    return response


def problem(response: Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/errors/{kind}"
    return body


def without_position(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "position"}


def test_a_created_product_reads_back_with_the_same_fields(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    created = post(client, tenants[0], "/v1/products", SOAP)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["position"] == head(database_url, tenants[0])
    assert (body["reorder_point"], body["reorder_quantity"]) == ("12", "48")
    assert (body["active"], body["barcodes"]) == (True, [])
    read = client.get(
        "/v1/products/SOAP-1",
        params={"min_position": body["position"]},
        headers=bearer(token(tenants[0], ["auditor"])),
    )
    assert read.status_code == 200, read.text
    assert read.json()["position"] >= body["position"]
    assert without_position(read.json()) == without_position(body)


def test_defaults_apply_and_names_are_trimmed(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    created = post(client, tenants[0], "/v1/products", {"sku": "NAIL", "name": "  Nail  "})
    assert created.status_code == 201, created.text
    read = client.get(
        "/v1/products/NAIL",
        params={"min_position": created.json()["position"]},
        headers=admin(tenants[0]),
    ).json()
    assert without_position(read) == without_position(created.json())
    assert read["name"] == "Nail"
    assert (read["uom"], read["decimals"], read["removal_policy"]) == ("each", 0, "fifo")
    assert (read["lot_tracked"], read["expiry_tracked"], read["reorder_point"]) == (
        False,
        False,
        None,
    )


def test_a_sku_is_unique_in_its_tenant_only(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    assert post(client, tenants[0], "/v1/products", SOAP).status_code == 201
    before = head(database_url, tenants[0])
    again = post(client, tenants[0], "/v1/products", SOAP | {"name": "Other"})
    body = problem(again, 409, "already-exists")
    assert "SOAP-1" in body["detail"]
    assert head(database_url, tenants[0]) == before
    assert post(client, tenants[1], "/v1/products", SOAP).status_code == 201


INVALID: list[tuple[dict[str, Any], str]] = [
    (SOAP | {"expiry_tracked": False}, "removal_policy"),  # fefo needs expiry_tracked
    ({"sku": "X"}, "body.name"),
    (SOAP | {"name": "   "}, "name"),
    (SOAP | {"sku": ""}, "body.sku"),
    (SOAP | {"sku": "S" * 65}, "body.sku"),
    (SOAP | {"decimals": 7}, "body.decimals"),
    (SOAP | {"decimals": "2"}, "body.decimals"),
    (SOAP | {"removal_policy": "lifo"}, "body.removal_policy"),
    (SOAP | {"reorder_point": 1.5}, "reorder_point"),  # more decimals than the unit
    (SOAP | {"reorder_point": "-1"}, "body.reorder_point"),
    (SOAP | {"reorder_point": "twelve"}, "body.reorder_point"),
    (SOAP | {"reorder_point": "NaN"}, "body.reorder_point"),
    (SOAP | {"reorder_point": True}, "body.reorder_point"),
    (SOAP | {"shelf_life_days": -1}, "body.shelf_life_days"),
    (SOAP | {"attributes": [1]}, "body.attributes"),
]


def test_an_invalid_product_is_a_validation_error(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    before = head(database_url, tenants[0])
    for body, field in INVALID:
        found = problem(post(client, tenants[0], "/v1/products", body), 422, "validation-error")
        assert field in [error["field"] for error in found["errors"]], (body, found)
    assert head(database_url, tenants[0]) == before


def test_a_retry_with_the_same_key_replays_the_first_response(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    body = SOAP | {"reorder_point": 12.5, "decimals": 1}
    first = post(client, tenants[0], "/v1/products", body, key="k-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    after = head(database_url, tenants[0])
    # the same values written another way are the same request
    retry = post(client, tenants[0], "/v1/products", body | {"reorder_point": "12.50"}, key="k-1")
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert head(database_url, tenants[0]) == after
    other = post(client, tenants[0], "/v1/products", body | {"name": "Other"}, key="k-1")
    problem(other, 422, "idempotency-key-reused")
    assert head(database_url, tenants[0]) == after
    # keys are the tenant's own
    assert post(client, tenants[1], "/v1/products", body, key="k-1").status_code == 201
    # a refused request keeps nothing: the key may be used again once the body is right
    refused = post(client, tenants[0], "/v1/products", {"sku": "X", "name": ""}, key="k-2")
    problem(refused, 422, "validation-error")
    assert post(client, tenants[0], "/v1/products", {"sku": "X", "name": "X"}, key="k-2").is_success


def test_warehouses_and_bins_are_created_and_listed(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    created = post(
        client,
        tenant,
        "/v1/warehouses",
        {"code": "BER", "name": "Berlin", "timezone": "Europe/Berlin"},
        key="wh-1",
    )
    assert created.status_code == 201, created.text
    assert without_position(created.json()) == {
        "code": "BER",
        "name": "Berlin",
        "timezone": "Europe/Berlin",
    }
    again = post(
        client,
        tenant,
        "/v1/warehouses",
        {"code": "BER", "name": "Berlin", "timezone": "Europe/Berlin"},
        key="wh-1",
    )
    assert (again.json(), again.headers["Idempotent-Replayed"]) == (created.json(), "true")
    problem(
        post(client, tenant, "/v1/warehouses", {"code": "BER", "name": "B", "timezone": "UTC"}),
        409,
        "already-exists",
    )
    problem(
        post(client, tenant, "/v1/warehouses", {"code": "X", "name": "X", "timezone": "Mars/Base"}),
        422,
        "validation-error",
    )
    post(client, tenant, "/v1/warehouses", {"code": "AMS", "name": "Ams", "timezone": "UTC"})
    bins = [("DOCK", None, False), ("A-01", "A", True), ("A-02", "A", True)]
    for code, zone, pickable in bins:
        body: dict[str, Any] = {"code": code, "pickable": pickable}
        if zone:
            body["zone"] = zone
        made = post(client, tenant, "/v1/warehouses/BER/bins", body)
        assert made.status_code == 201, made.text
        assert without_position(made.json()) == {
            "warehouse": "BER",
            "code": code,
            "zone": zone,
            "pickable": pickable,
        }
    default = post(client, tenant, "/v1/warehouses/AMS/bins", {"code": "A-01"})
    assert default.json()["pickable"] is True
    problem(
        post(client, tenant, "/v1/warehouses/BER/bins", {"code": "A-01"}), 409, "already-exists"
    )
    problem(post(client, tenant, "/v1/warehouses/NOPE/bins", {"code": "A-01"}), 404, "not-found")
    position = head(database_url, tenant)
    reader = bearer(token(tenant, ["warehouse_operator"]))
    listed = client.get("/v1/warehouses", params={"min_position": position}, headers=reader)
    assert listed.status_code == 200, listed.text
    assert [w["code"] for w in listed.json()["items"]] == ["AMS", "BER"]
    assert listed.json()["next_cursor"] is None
    assert listed.json()["position"] >= position
    in_ber = client.get(
        "/v1/warehouses/BER/bins", params={"min_position": position}, headers=reader
    ).json()
    assert [(b["code"], b["zone"], b["pickable"]) for b in in_ber["items"]] == sorted(bins)
    assert {b["warehouse"] for b in in_ber["items"]} == {"BER"}
    walked, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/warehouses/BER/bins", params=params, headers=reader).json()
        walked += [b["code"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [code for code, _, _ in sorted(bins)]
    problem(client.get("/v1/warehouses/NOPE/bins", headers=reader), 404, "not-found")


def test_a_product_list_walks_every_product_once_by_cursor(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    skus = [f"P-{n:02d}" for n in (7, 3, 11, 1, 5, 9, 2)]
    for sku in skus:
        assert post(client, tenants[0], "/v1/products", {"sku": sku, "name": sku}).is_success
    position = head(database_url, tenants[0])
    walked, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 3, "min_position": position}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/products", params=params, headers=admin(tenants[0])).json()
        walked += [item["sku"] for item in page["items"]]
        assert all(item["position"] <= page["position"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # a cursor stays valid while rows are added
        post(client, tenants[0], "/v1/products", {"sku": f"A-{pages}", "name": "early"})
    assert walked == sorted(skus)
    assert pages == 3
    bad = client.get("/v1/products", params={"cursor": "nope"}, headers=admin(tenants[0]))
    problem(bad, 422, "validation-error")
    over = client.get("/v1/products", params={"limit": 1001}, headers=admin(tenants[0]))
    problem(over, 422, "validation-error")


def test_writes_need_catalog_write(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    for role in ("auditor", "warehouse_operator", "sales", "purchasing_agent"):
        headers = bearer(token(tenants[0], [role]))
        writes = [
            client.post("/v1/products", json=SOAP, headers=headers),
            client.patch("/v1/products/SOAP-1", json={"name": "x"}, headers=headers),
            client.post(
                "/v1/warehouses",
                json={"code": "W", "name": "W", "timezone": "UTC"},
                headers=headers,
            ),
            client.post("/v1/warehouses/W/bins", json={"code": "B"}, headers=headers),
        ]
        for response in writes:
            problem(response, 403, "forbidden")
        assert client.get("/v1/products", headers=headers).status_code == 200
    integrator = bearer(token(tenants[0], ["integrator"]))
    assert client.post("/v1/products", json=SOAP, headers=integrator).status_code == 201
    problem(client.get("/v1/products", headers=bearer(token(tenants[0], ["x"]))), 403, "forbidden")
    problem(client.get("/v1/products"), 401, "unauthenticated")


def test_another_tenants_catalog_is_not_found(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    a, b = tenants
    assert post(client, a, "/v1/products", SOAP).is_success
    post(client, a, "/v1/warehouses", {"code": "BER", "name": "Berlin", "timezone": "UTC"})
    assert post(client, a, "/v1/warehouses/BER/bins", {"code": "A-01"}).is_success
    assert post(client, b, "/v1/products", {"sku": "B-ONLY", "name": "b"}).is_success
    waits = {"min_position": head(database_url, b)}
    problem(client.get("/v1/products/SOAP-1", params=waits, headers=admin(b)), 404, "not-found")
    problem(
        client.patch("/v1/products/SOAP-1", json={"name": "x"}, headers=admin(b)), 404, "not-found"
    )
    problem(client.get("/v1/warehouses/BER/bins", params=waits, headers=admin(b)), 404, "not-found")
    problem(post(client, b, "/v1/warehouses/BER/bins", {"code": "A-02"}), 404, "not-found")
    listed = client.get("/v1/products", params=waits, headers=admin(b)).json()
    assert [p["sku"] for p in listed["items"]] == ["B-ONLY"]
    assert client.get("/v1/warehouses", params=waits, headers=admin(b)).json()["items"] == []
    problem(client.get("/v1/lookup", params={"code": "SOAP-1"}, headers=admin(b)), 404, "not-found")
    mine = client.get(
        "/v1/products/SOAP-1", params={"min_position": head(database_url, a)}, headers=admin(a)
    )
    assert mine.json()["name"] == "Olive soap"


def test_patch_changes_a_product(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    assert post(client, tenant, "/v1/products", SOAP).is_success
    changed = client.patch(
        "/v1/products/SOAP-1",
        json={"name": "Olive soap bar", "reorder_point": "20", "expiry_alert_days": 14},
        headers=admin(tenant),
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["position"] == head(database_url, tenant)
    assert (body["name"], body["reorder_point"], body["expiry_alert_days"]) == (
        "Olive soap bar",
        "20",
        14,
    )
    assert (body["reorder_quantity"], body["removal_policy"]) == ("48", "fefo")  # left as it was
    read = client.get(
        "/v1/products/SOAP-1", params={"min_position": body["position"]}, headers=admin(tenant)
    )
    assert without_position(read.json()) == without_position(body)
    cleared = client.patch(
        "/v1/products/SOAP-1",
        json={"reorder_point": None, "active": False},
        headers=admin(tenant),
    ).json()
    assert (cleared["reorder_point"], cleared["active"]) == (None, False)
    inactive = client.get(
        "/v1/products",
        params={"active": "false", "min_position": cleared["position"]},
        headers=admin(tenant),
    ).json()
    assert [p["sku"] for p in inactive["items"]] == ["SOAP-1"]
    same = client.patch("/v1/products/SOAP-1", json={"active": False}, headers=admin(tenant))
    assert same.status_code == 200
    assert head(database_url, tenant) == cleared["position"]  # nothing changed, nothing appended
    for bad, field in [
        ({"name": None}, "body.name"),
        ({"removal_policy": "fifo", "expiry_tracked": False, "name": ""}, "body.name"),
        ({"expiry_tracked": False}, "removal_policy"),
        ({"decimals": 9}, "body.decimals"),
    ]:
        refused = client.patch("/v1/products/SOAP-1", json=bad, headers=admin(tenant))
        found = problem(refused, 422, "validation-error")
        assert field in [e["field"] for e in found["errors"]], found
    problem(
        client.patch("/v1/products/NOPE", json={"name": "x"}, headers=admin(tenant)),
        404,
        "not-found",
    )
    problem(client.get("/v1/products/NOPE", headers=admin(tenant)), 404, "not-found")


def test_tracking_cannot_change_while_stock_is_on_hand_and_codes_are_looked_up(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    assert post(client, tenant, "/v1/products", SOAP).is_success
    post(client, tenant, "/v1/warehouses", {"code": "BER", "name": "Berlin", "timezone": "UTC"})
    assert post(client, tenant, "/v1/warehouses/BER/bins", {"code": "A-01"}).is_success
    ledger = client.app.state.ledger  # type: ignore[attr-defined]
    received = ledger.app(tenant).receive(
        "SOAP-1", "BER", "A-01", 5, "1.20", EventMetadata(), lot="LOT-7", expires_on=FAR
    )
    assert received.lot == "LOT-7"
    locked = client.patch("/v1/products/SOAP-1", json={"decimals": 2}, headers=admin(tenant))
    problem(locked, 409, "invalid-state")
    assert client.patch(
        "/v1/products/SOAP-1", json={"reorder_point": 3}, headers=admin(tenant)
    ).is_success
    waits = {"min_position": head(database_url, tenant)}
    reader = bearer(token(tenant, ["auditor"]))

    def look(code: str) -> dict[str, Any]:
        response = client.get("/v1/lookup", params={"code": code} | waits, headers=reader)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    product = look("SOAP-1")
    assert (product["kind"], product["product"]["sku"], product["also"]) == (
        "product",
        "SOAP-1",
        [],
    )
    place = look("A-01")
    assert (place["kind"], [(b["warehouse"], b["code"]) for b in place["bins"]]) == (
        "bin",
        [("BER", "A-01")],
    )
    lot = look("LOT-7")
    assert lot["kind"] == "lot"
    assert [(x["sku"], x["bin"], x["on_hand"], x["expires_on"]) for x in lot["lots"]] == [
        ("SOAP-1", "A-01", "5", "2099-01-01")
    ]
    problem(client.get("/v1/lookup", params={"code": "nothing"}, headers=reader), 404, "not-found")


def test_codes_in_paths_are_percent_encoded(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    for sku in ("A/B 1", "ä%x?#"):
        created = post(client, tenant, "/v1/products", {"sku": sku, "name": "odd"})
        assert created.status_code == 201, created.text
        read = client.get(
            f"/v1/products/{quote(sku, safe='')}",
            params={"min_position": created.json()["position"]},
            headers=admin(tenant),
        )
        assert read.status_code == 200, read.text
        assert read.json()["sku"] == sku
    post(client, tenant, "/v1/warehouses", {"code": "W/1", "name": "w", "timezone": "UTC"})
    made = post(client, tenant, f"/v1/warehouses/{quote('W/1', safe='')}/bins", {"code": "b"})
    assert made.status_code == 201, made.text
    assert made.json()["warehouse"] == "W/1"
    problem(client.get("/v1/products/a%2Fb", headers=admin(tenant)), 404, "not-found")
    lower = client.get("/v1/products/a%2Fb%201", params={"min_position": 1}, headers=admin(tenant))
    problem(lower, 404, "not-found")  # codes are case-sensitive


def test_the_openapi_document_describes_the_catalog(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/products"]) == {"get", "post"}
    assert {"201", "401", "403", "409", "422"} <= set(paths["/v1/products"]["post"]["responses"])
    one = paths["/v1/products/{sku}"]
    assert {"get", "patch"} <= set(one)
    assert "404" in one["get"]["responses"]
    assert "404" in paths["/v1/warehouses/{code}/bins"]["post"]["responses"]
    assert "/v1/lookup" in paths


# -- barcodes ----------------------------------------------------------------------------------

EAN13 = "4006381333931"
SCANNED = SOAP | {
    "barcodes": [
        {"code": EAN13, "kind": "ean13"},
        {"code": "SOAP-CASE", "kind": "code128", "pack_quantity": "12"},
    ]
}


def test_a_product_created_with_barcodes_reads_back_with_them(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    created = post(client, tenants[0], "/v1/products", SCANNED)
    assert created.status_code == 201, created.text
    assert created.json()["barcodes"] == [
        {"code": EAN13, "kind": "ean13", "pack_quantity": "1"},
        {"code": "SOAP-CASE", "kind": "code128", "pack_quantity": "12"},
    ]
    read = client.get(
        "/v1/products/SOAP-1",
        params={"min_position": created.json()["position"]},
        headers=admin(tenants[0]),
    )
    assert without_position(read.json()) == without_position(created.json())


def test_a_barcode_of_another_product_is_already_exists_naming_the_code(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    assert post(client, tenants[0], "/v1/products", SCANNED).is_success
    before = head(database_url, tenants[0])
    clash = {"sku": "SOAP-2", "name": "Soap 2", "barcodes": [{"code": "SOAP-CASE"}]}
    body = problem(post(client, tenants[0], "/v1/products", clash), 409, "already-exists")
    assert "SOAP-CASE" in body["detail"]
    assert (body["barcode"], body["sku"]) == ("SOAP-CASE", "SOAP-1")
    assert post(client, tenants[0], "/v1/products", {"sku": "NAIL", "name": "Nail"}).is_success
    patched = client.patch(
        "/v1/products/NAIL", json={"barcodes": [{"code": EAN13}]}, headers=admin(tenants[0])
    )
    assert problem(patched, 409, "already-exists")["barcode"] == EAN13
    assert head(database_url, tenants[0]) == before + 1  # only NAIL was recorded
    assert post(client, tenants[1], "/v1/products", clash).status_code == 201  # per tenant


INVALID_BARCODES: list[tuple[list[dict[str, Any]], str]] = [
    ([{"code": "4006381333932", "kind": "ean13"}], "barcodes.0.code"),  # wrong check digit
    ([{"code": "12345", "kind": "upc_a"}], "barcodes.0.code"),
    ([{"code": "C", "pack_quantity": 0}], "barcodes.0.pack_quantity"),
    ([{"code": "C", "pack_quantity": "1.5"}], "barcodes.0.pack_quantity"),  # decimals 0
    ([{"code": "C", "pack_quantity": 1.5}], "barcodes.0.pack_quantity"),
    ([{"code": "C"}, {"code": "C"}], "barcodes.1.code"),
    ([{"code": "C", "kind": "morse"}], "body.barcodes.0.kind"),
    ([{"code": ""}], "body.barcodes.0.code"),
    ([{"code": "C\tD"}], "barcodes.0.code"),
    ([{"code": "C", "pack_quantity": "1" + "0" * 30}], "body.barcodes.0.pack_quantity"),
]


def test_invalid_barcodes_are_validation_errors(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    before = head(database_url, tenants[0])
    for barcodes, field in INVALID_BARCODES:
        response = post(client, tenants[0], "/v1/products", SOAP | {"barcodes": barcodes})
        found = problem(response, 422, "validation-error")
        assert field in [error["field"] for error in found["errors"]], (barcodes, found)
    assert head(database_url, tenants[0]) == before


def test_patch_replaces_the_barcodes_and_a_released_code_can_be_taken(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    assert post(client, tenant, "/v1/products", SCANNED).is_success
    assert post(client, tenant, "/v1/products", {"sku": "NAIL", "name": "Nail"}).is_success
    replaced = client.patch(
        "/v1/products/SOAP-1",
        json={"barcodes": [{"code": "SOAP-CASE", "pack_quantity": 24}]},
        headers=admin(tenant),
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["barcodes"] == [
        {"code": "SOAP-CASE", "kind": "other", "pack_quantity": "24"}
    ]
    taken = client.patch(
        "/v1/products/NAIL",
        json={"barcodes": [{"code": EAN13, "kind": "ean13"}]},
        headers=admin(tenant),
    )
    assert taken.status_code == 200, taken.text
    read = client.get(
        "/v1/products/SOAP-1",
        params={"min_position": taken.json()["position"]},
        headers=admin(tenant),
    )
    assert read.json()["barcodes"] == replaced.json()["barcodes"]
    cleared = client.patch("/v1/products/SOAP-1", json={"barcodes": None}, headers=admin(tenant))
    assert cleared.json()["barcodes"] == []


def test_a_scanned_barcode_names_its_product_and_pack_quantity_in_its_tenant_only(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    a, b = tenants
    assert post(client, a, "/v1/products", SCANNED).is_success
    assert post(client, b, "/v1/products", {"sku": "B-ONLY", "name": "b"}).is_success
    found = client.get(
        "/v1/lookup",
        params={"code": "SOAP-CASE", "min_position": head(database_url, a)},
        headers=bearer(token(a, ["warehouse_operator"])),
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["kind"], body["sku"], body["product"]["sku"]) == ("product", "SOAP-1", "SOAP-1")
    assert body["barcode"] == {"code": "SOAP-CASE", "kind": "code128", "pack_quantity": "12"}
    assert [(m["matched_by"], m["product"]["sku"]) for m in body["products"]] == [
        ("barcode", "SOAP-1")
    ]
    assert (body["also"], body["ambiguous"]) == ([], False)
    by_sku = client.get("/v1/lookup", params={"code": "SOAP-1"}, headers=admin(a)).json()
    assert (by_sku["kind"], by_sku["barcode"]) == ("product", None)
    waits = {"min_position": head(database_url, b)}
    elsewhere = client.get("/v1/lookup", params={"code": "SOAP-CASE"} | waits, headers=admin(b))
    problem(elsewhere, 404, "not-found")
    problem(
        client.get("/v1/lookup", params={"code": "SOAP\x00"}, headers=admin(a)), 404, "not-found"
    )


def test_a_code_that_names_a_barcode_and_a_bin_answers_the_product_first(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    assert post(client, tenant, "/v1/products", SCANNED).is_success
    post(client, tenant, "/v1/warehouses", {"code": "BER", "name": "Berlin", "timezone": "UTC"})
    assert post(client, tenant, "/v1/warehouses/BER/bins", {"code": "SOAP-CASE"}).is_success
    body = client.get(
        "/v1/lookup",
        params={"code": "SOAP-CASE", "min_position": head(database_url, tenant)},
        headers=admin(tenant),
    ).json()
    assert (body["kind"], body["sku"], body["also"], body["ambiguous"]) == (
        "product",
        "SOAP-1",
        ["bin"],
        True,
    )
    assert [(b["warehouse"], b["code"]) for b in body["bins"]] == [("BER", "SOAP-CASE")]


def test_a_barcode_that_is_the_products_own_sku_is_one_match_with_its_pack_quantity(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    own = {"sku": EAN13, "name": "Pencil", "barcodes": [{"code": EAN13, "kind": "ean13"}]}
    assert post(client, tenant, "/v1/products", own).is_success
    body = client.get(
        "/v1/lookup",
        params={"code": EAN13, "min_position": head(database_url, tenant)},
        headers=admin(tenant),
    ).json()
    assert [(m["matched_by"], m["product"]["sku"]) for m in body["products"]] == [("sku", EAN13)]
    assert (body["barcode"]["pack_quantity"], body["ambiguous"]) == ("1", False)
    other = {"sku": "PEN", "name": "Pen", "barcodes": [{"code": "SOAP-NONE"}, {"code": EAN13}]}
    problem(post(client, tenant, "/v1/products", other), 409, "already-exists")


def test_a_replayed_creation_answers_the_barcodes_it_was_created_with(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    first = post(client, tenant, "/v1/products", SCANNED, key="scan-1")
    assert first.status_code == 201, first.text
    changed = client.patch("/v1/products/SOAP-1", json={"barcodes": []}, headers=admin(tenant))
    assert changed.json()["barcodes"] == []
    again = post(client, tenant, "/v1/products", SCANNED, key="scan-1")
    assert (again.status_code, again.json()) == (201, first.json())
    assert len(again.json()["barcodes"]) == 2
