"""`GET /v1/lots` and `GET /v1/movements`: the read models' rows, filters, cursors, permissions
and tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.pages import decimal_text
from ledger.settings import Settings
from projections.catalog import business_dates
from projections.history import lots_as_of, stock_levels_as_of
from projections.lots import LotLevel, lots
from projections.movements import Movement, movements
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, head, seed, token


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    return seed(database_url, f"hist-a-{run}", 3), seed(database_url, f"hist-b-{run}", 4)


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=10,
    )
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client


def read_all(client: TestClient, path: str, tenant: UUID, **params: Any) -> dict[str, Any]:
    response = client.get(
        path,
        params={"limit": 1000} | params,
        headers=bearer(token(tenant, ["auditor"])),
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["next_cursor"] is None
    return page


def walk(client: TestClient, path: str, tenant: UUID, **params: Any) -> list[dict[str, Any]]:
    headers = bearer(token(tenant, ["auditor"]))
    walked: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 3} | params | ({"cursor": cursor} if cursor else {})
        page = client.get(path, params=query, headers=headers).json()
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return walked
        assert len(page["items"]) == 3


def lot_item(row: LotLevel, today: dict[str, Any]) -> dict[str, Any]:
    cost = (
        None
        if row.on_hand == 0
        else decimal_text(
            (row.value / row.on_hand).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
        )
    )
    expired = row.expires_on is not None and row.expires_on < today[row.warehouse]
    return {
        "lot": row.lot,
        "sku": row.sku,
        "warehouse": row.warehouse,
        "bin": row.bin,
        "on_hand": decimal_text(row.on_hand),
        "reserved": decimal_text(row.reserved),
        "expires_on": None if row.expires_on is None else row.expires_on.isoformat(),
        "expired": expired,
        "unit_cost": cost,
        "status": row.status,
        "position": row.position,
    }


def expected_lots(engine: Engine, tenant: UUID) -> tuple[list[dict[str, Any]], list[LotLevel]]:
    with engine.connect() as conn:
        rows = lots(conn, tenant, limit=100_000)
        today = business_dates(conn, tenant, {r.warehouse for r in rows})
    return [lot_item(r, today) for r in rows], rows


def without_times(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for item in items:
        assert datetime.fromisoformat(item["received_at"]).tzinfo is not None
    return [{k: v for k, v in item.items() if k != "received_at"} for item in items]


def movement_item(row: Movement) -> tuple[Any, ...]:
    return (
        row.position,
        row.seq,
        row.sku,
        row.warehouse,
        row.lot,
        row.bin,
        decimal_text(row.quantity),
        decimal_text(row.unit_cost),
        row.reason,
        row.reference,
        row.actor,
        row.request_id,
    )


def as_tuple(item: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("position", "seq", "sku", "warehouse", "lot", "bin", "quantity", "unit_cost")
    rest = ("reason", "reference", "actor", "request_id")
    return tuple(item[k] for k in keys + rest)


def test_lots_are_the_read_models_rows_of_the_callers_tenant(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], engine: Engine
) -> None:
    pages = []
    for tenant in tenants:
        page = read_all(client, "/v1/lots", tenant, min_position=head(database_url, tenant))
        assert page["position"] >= head(database_url, tenant)
        expected, rows = expected_lots(engine, tenant)
        assert expected
        assert without_times(page["items"]) == expected
        assert [datetime.fromisoformat(i["received_at"]) for i in page["items"]] == [
            r.received_at for r in rows
        ]
        pages.append(page["items"])
    a_lots = {(i["sku"], i["lot"]) for i in pages[0]}
    b_lots = {(i["sku"], i["lot"]) for i in pages[1]}
    assert a_lots != b_lots
    # tenant B asking for one of A's lots by name sees nothing of A's
    sku, lot = sorted(a_lots - b_lots)[0]
    only_b = read_all(client, "/v1/lots", tenants[1], sku=sku, lot=lot)["items"]
    assert only_b == []


def test_lot_filters_and_cursor_walks(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], engine: Engine
) -> None:
    tenant = tenants[0]
    whole = read_all(client, "/v1/lots", tenant, min_position=head(database_url, tenant))["items"]
    assert len(whole) > 3
    assert walk(client, "/v1/lots", tenant) == whole
    first = whole[0]
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"sku": first["sku"]}, lambda i: i["sku"] == first["sku"]),
        ({"warehouse": first["warehouse"]}, lambda i: i["warehouse"] == first["warehouse"]),
        ({"bin": first["bin"]}, lambda i: i["bin"] == first["bin"]),
        ({"lot": first["lot"]}, lambda i: i["lot"] == first["lot"]),
        ({"status": "released"}, lambda i: i["status"] == "released"),
        ({"status": "hold"}, lambda i: i["status"] == "hold"),
        ({"expired": "true"}, lambda i: i["expired"]),
        ({"expired": "false"}, lambda i: not i["expired"]),
    ]
    with engine.connect() as conn:
        today = business_dates(conn, tenant, {i["warehouse"] for i in whole})
    for days in (0, 30, 3650):

        def expiring(item: dict[str, Any], days: int = days) -> bool:
            if item["expires_on"] is None:
                return False
            on = datetime.fromisoformat(item["expires_on"]).date()
            base = today[item["warehouse"]]
            return base <= on <= base + timedelta(days=days)

        cases.append(({"expiring_within_days": days}, expiring))
    for params, keep in cases:
        wanted = [item for item in whole if keep(item)]
        assert read_all(client, "/v1/lots", tenant, **params)["items"] == wanted, params
        assert walk(client, "/v1/lots", tenant, **params) == wanted, params


def test_movements_are_the_read_models_rows_of_the_callers_tenant(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], engine: Engine
) -> None:
    for tenant in tenants:
        page = read_all(client, "/v1/movements", tenant, min_position=head(database_url, tenant))
        with engine.connect() as conn:
            rows = movements(conn, tenant, limit=100_000)
        assert rows
        assert [as_tuple(i) for i in page["items"]] == [movement_item(r) for r in rows]
        assert [datetime.fromisoformat(i["effective_at"]) for i in page["items"]] == [
            r.effective_at for r in rows
        ]
    a, b = (
        {i["position"]: i for i in read_all(client, "/v1/movements", t)["items"]} for t in tenants
    )
    assert a != b


def test_movement_filters_and_cursor_walks(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    whole = read_all(client, "/v1/movements", tenant, min_position=head(database_url, tenant))[
        "items"
    ]
    assert len(whole) > 3
    assert walk(client, "/v1/movements", tenant) == whole
    first = whole[0]
    reference = next(i["reference"] for i in whole if i["reference"] is not None)
    times = sorted({datetime.fromisoformat(i["effective_at"]) for i in whole})
    middle = times[len(times) // 2]
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"sku": first["sku"]}, lambda i: i["sku"] == first["sku"]),
        ({"warehouse": first["warehouse"]}, lambda i: i["warehouse"] == first["warehouse"]),
        ({"lot": first["lot"]}, lambda i: i["lot"] == first["lot"]),
        ({"reference": reference}, lambda i: i["reference"] == reference),
        (
            {"from": middle.isoformat()},
            lambda i: datetime.fromisoformat(i["effective_at"]) >= middle,
        ),
        (
            {"to": middle.astimezone(UTC).isoformat()},
            lambda i: datetime.fromisoformat(i["effective_at"]) < middle,
        ),
    ]
    for params, keep in cases:
        wanted = [item for item in whole if keep(item)]
        assert wanted, params
        assert read_all(client, "/v1/movements", tenant, **params)["items"] == wanted, params
        assert walk(client, "/v1/movements", tenant, **params) == wanted, params


def test_reading_needs_stock_read(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    now = {"at": datetime.now(UTC).isoformat()}
    for path, params in (
        ("/v1/lots", {}),
        ("/v1/movements", {}),
        ("/v1/stock-levels/as-of", now),
        ("/v1/lots/as-of", now),
    ):
        response = client.get(path, params=params, headers=bearer(token(tenants[0], ["nobody"])))
        assert response.status_code == 403, path
        assert response.json()["type"] == "/errors/forbidden"
        assert client.get(path, params=params).status_code == 401
        for role in ("auditor", "sales", "warehouse_operator", "admin"):
            allowed = client.get(path, params=params, headers=bearer(token(tenants[0], [role])))
            assert allowed.status_code == 200, (path, role)


def test_as_of_views_are_the_ledgers_fold(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    for tenant in tenants:
        moved = read_all(client, "/v1/movements", tenant, min_position=head(database_url, tenant))
        times = sorted({datetime.fromisoformat(i["effective_at"]) for i in moved["items"]})
        with open_store(database_url) as store:
            moments = [(times[len(times) // 2], None), (datetime.now(UTC), times[len(times) // 3])]
            for at, known in moments:
                params = {"at": at.isoformat()} | (
                    {} if known is None else {"known_at": known.isoformat()}
                )
                levels = stock_levels_as_of(store, tenant, at, known)
                lots_then = lots_as_of(store, tenant, at, known)
                page = read_all(client, "/v1/stock-levels/as-of", tenant, **params)
                assert page["position"] == store.head(tenant).position
                assert [
                    (i["sku"], i["warehouse"], i["on_hand"], i["reserved"], i["value"])
                    for i in page["items"]
                ] == sorted(
                    (
                        r.sku,
                        r.warehouse,
                        decimal_text(r.on_hand),
                        decimal_text(r.reserved),
                        decimal_text(r.value),
                    )
                    for r in levels
                )
                items = read_all(client, "/v1/lots/as-of", tenant, **params)["items"]
                assert [
                    (i["sku"], i["warehouse"], i["lot"], i["bin"], i["on_hand"], i["status"])
                    for i in items
                ] == sorted(
                    (r.sku, r.warehouse, r.lot, r.bin, decimal_text(r.on_hand), r.status)
                    for r in lots_then
                )
                assert walk(client, "/v1/lots/as-of", tenant, **params) == items
                assert levels or lots_then or known is not None
    ahead = head(database_url, tenants[0]) + 1000
    lagging = client.get(
        "/v1/lots/as-of",
        params={"at": datetime.now(UTC).isoformat(), "min_position": ahead},
        headers=bearer(token(tenants[0], ["auditor"])),
    )
    assert lagging.status_code == 503
    assert lagging.json()["type"] == "/errors/projection-lagging"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/lots", {"status": "lost"}),
        ("/v1/lots", {"expiring_within_days": -1}),
        ("/v1/lots", {"cursor": "bm9wZQ"}),
        ("/v1/lots", {"limit": 1001}),
        ("/v1/movements", {"from": "2024-01-01T00:00:00"}),
        ("/v1/movements", {"to": "yesterday"}),
        ("/v1/movements", {"cursor": "WyJhIiwiYiJd"}),  # ["a","b"]
        ("/v1/lots/as-of", {}),
        ("/v1/stock-levels/as-of", {"at": "2024-01-01T00:00:00"}),
    ],
)
def test_bad_query_parameters_are_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID], path: str, params: dict[str, Any]
) -> None:
    response = client.get(path, params=params, headers=bearer(token(tenants[0], ["auditor"])))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/errors/validation-error"
