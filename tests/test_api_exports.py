"""Streamed exports: stock levels and movements as CSV equal the JSON queries, the NDJSON export
equals the audit feed, each names its position, and a tenant exports only its own rows."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID, uuid4

import orjson
import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from api.app import create_app
from api.pages import MAX_POSITION
from api.routes import exports
from domain.metadata import EventMetadata
from ledger.settings import Settings
from ledger.wiring import Ledger
from projections.stock_levels import stock_levels
from projections.waiting import tracked, wait_for_position
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, head, seed, token

M = EventMetadata()
LEVEL_COLUMNS = ["sku", "warehouse", "on_hand", "reserved", "available", "incoming", "value"]


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    a, b = seed(database_url, f"exp-a-{run}", 7), seed(database_url, f"exp-b-{run}", 8)
    with Ledger(open_store(database_url)) as ledger:  # a SKU of tenant A alone
        ledger.app(a).register_product("ONLY-A", "Tenant A's own", EventMetadata())
    return a, b


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=10,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def auditor(tenant: UUID) -> dict[str, str]:
    return bearer(token(tenant, ["auditor"]))


def as_json(
    client: TestClient, path: str, tenant: UUID, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    response = client.get(path, params={"limit": 1000} | params, headers=auditor(tenant))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    return page["items"], page["position"]


def as_csv(
    client: TestClient, path: str, tenant: UUID, **params: Any
) -> tuple[list[dict[str, str]], int]:
    response = client.get(path, params=params, headers=auditor(tenant))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text, newline=""))
    return list(reader), int(response.headers["X-Ledger-Position"])


def text_of(item: dict[str, Any], columns: list[str]) -> dict[str, str]:
    return {c: "" if item[c] is None else str(item[c]) for c in columns}


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "PAGE", 3)  # every export reads many pages


@pytest.mark.usefixtures("small_pages")
def test_stock_levels_csv_has_the_values_of_the_stock_levels_query(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    wanted = head(database_url, tenant)
    rows, at = as_csv(client, "/v1/exports/stock-levels.csv", tenant, min_position=wanted)
    items, position = as_json(client, "/v1/stock-levels", tenant, min_position=wanted)
    assert rows == [text_of(item, LEVEL_COLUMNS) for item in items]
    assert list(rows[0]) == LEVEL_COLUMNS
    assert len(rows) > 3
    assert at == position >= wanted


def test_stock_levels_csv_takes_the_sku_and_warehouse_filters(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    wanted = head(database_url, tenant)
    items, _ = as_json(client, "/v1/stock-levels", tenant, min_position=wanted)
    sku = items[0]["sku"]
    rows, _ = as_csv(client, "/v1/exports/stock-levels.csv", tenant, sku=sku)
    assert rows == [text_of(i, LEVEL_COLUMNS) for i in items if i["sku"] == sku]


@pytest.mark.usefixtures("small_pages")
def test_movements_csv_has_the_values_of_the_movements_query(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    wanted = head(database_url, tenant)
    rows, at = as_csv(client, "/v1/exports/movements.csv", tenant, min_position=wanted)
    items, position = as_json(client, "/v1/movements", tenant, min_position=wanted)
    assert rows == [text_of(item, list(item)) for item in items]
    assert len(rows) > 3
    assert at == position


def test_movements_csv_takes_the_filters_of_the_movements_query(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    wanted = head(database_url, tenant)
    every, _ = as_json(client, "/v1/movements", tenant, min_position=wanted)
    middle = every[len(every) // 2]
    filters = {
        "sku": middle["sku"],
        "warehouse": middle["warehouse"],
        "from": every[0]["effective_at"],
        "to": every[-1]["effective_at"],
    }
    rows, _ = as_csv(client, "/v1/exports/movements.csv", tenant, **filters)
    items, _ = as_json(client, "/v1/movements", tenant, **filters)
    assert rows == [text_of(item, list(item)) for item in items]
    assert 0 < len(rows) < len(every)


@pytest.mark.usefixtures("small_pages")
def test_an_export_reads_one_snapshot_while_the_read_models_move_on(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    request = cast("Request", SimpleNamespace(app=client.app))
    with exports.snapshot(request, tenant, ["stock_levels"], head(database_url, tenant)) as (
        conn,
        at,
    ):
        before = stock_levels(conn, tenant, limit=1000)
        with Ledger(open_store(database_url)) as ledger:  # more stock, projected meanwhile
            app = ledger.app(tenant)
            [level] = before[:1]
            bins = [b.code for b in app.warehouse(level.warehouse).bins.values()]
            app.adjust(
                level.sku, level.warehouse, bins[0], 1, "correction", M, lot="SNAP-1", unit_cost=1
            )
        wait_for_position(
            engine, tenant, head(database_url, tenant), projections=["stock_levels"], timeout=10
        )
        assert stock_levels(conn, tenant, limit=1000) == before
        assert tracked(conn, tenant, ["stock_levels"])["stock_levels"] == at
    with engine.connect() as fresh:
        assert stock_levels(fresh, tenant, limit=1000) != before


def test_events_ndjson_lines_are_the_audit_feeds_items(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    response = client.get("/v1/exports/events.ndjson", headers=auditor(tenant))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    items, position = as_json(client, "/v1/audit/events", tenant)
    assert lines == items
    assert int(response.headers["X-Ledger-Position"]) == position == head(database_url, tenant)


def test_events_ndjson_starts_after_a_position(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    response = client.get(
        "/v1/exports/events.ndjson", params={"after": 40}, headers=auditor(tenant)
    )
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    items, _ = as_json(client, "/v1/audit/events", tenant, after=40)
    assert lines == items
    assert lines[0]["position"] == 41
    assert lines[0]["prev_hash"] is not None


def test_events_ndjson_after_the_head_is_empty(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    at = head(database_url, tenant)
    for after in (at, MAX_POSITION):
        response = client.get(
            "/v1/exports/events.ndjson", params={"after": after}, headers=auditor(tenant)
        )
        assert (response.status_code, response.text) == (200, "")
        assert response.headers["X-Ledger-Position"] == str(at)


def test_events_ndjson_needs_audit_read(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    response = client.get(
        "/v1/exports/events.ndjson", headers=bearer(token(tenants[0], ["warehouse_operator"]))
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/errors/forbidden"


def test_csv_exports_need_stock_read(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    for path in ("/v1/exports/stock-levels.csv", "/v1/exports/movements.csv"):
        response = client.get(path, headers=bearer(token(tenants[0], ["nobody"])))
        assert response.status_code == 403


def test_a_tenant_exports_only_its_own_rows(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    a, b = tenants
    for tenant in tenants:  # both read models are up to date
        as_json(client, "/v1/stock-levels", tenant, min_position=head(database_url, tenant))
    levels = {t: as_csv(client, "/v1/exports/stock-levels.csv", t)[0] for t in tenants}
    moves = {t: as_csv(client, "/v1/exports/movements.csv", t)[0] for t in tenants}
    assert levels[b] == [
        text_of(i, LEVEL_COLUMNS) for i in as_json(client, "/v1/stock-levels", b)[0]
    ]
    assert moves[b] == [text_of(i, list(i)) for i in as_json(client, "/v1/movements", b)[0]]
    assert levels[a] != levels[b]
    assert moves[a] != moves[b]
    events = {
        t: client.get("/v1/exports/events.ndjson", headers=auditor(t)).text.splitlines()
        for t in tenants
    }
    hashes = {t: {orjson.loads(line)["hash"] for line in events[t]} for t in tenants}
    assert hashes[a].isdisjoint(hashes[b])
    assert "ONLY-A" in "".join(events[a])
    assert "ONLY-A" not in "".join(events[b])


def test_events_ndjson_after_beyond_the_highest_position_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    response = client.get(
        "/v1/exports/events.ndjson", params={"after": MAX_POSITION + 1}, headers=auditor(tenants[0])
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/errors/validation-error"


def failing_database(*args: object, **kwargs: object) -> Any:
    raise OperationalError("SELECT", {}, Exception("database is locked"))


@pytest.mark.parametrize(
    ("path", "name"),
    [("/v1/exports/stock-levels.csv", "stock_levels"), ("/v1/exports/movements.csv", "movements")],
)
def test_a_csv_export_whose_first_read_fails_is_a_problem_response(
    client: TestClient,
    tenants: tuple[UUID, UUID],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    name: str,
) -> None:
    monkeypatch.setattr(exports, name, failing_database)
    response = client.get(path, headers=auditor(tenants[0]))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/errors/service-unavailable"


def test_an_events_export_whose_first_read_fails_is_a_problem_response(
    client: TestClient, tenants: tuple[UUID, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.ledger.store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "read_chain", failing_database)
    response = client.get("/v1/exports/events.ndjson", headers=auditor(tenants[0]))
    assert response.status_code == 503
    assert response.json()["type"] == "/errors/service-unavailable"
    assert response.headers["X-Request-ID"] == response.json()["request_id"]


def test_an_export_failing_after_its_first_chunk_is_logged_and_cut_short(
    client: TestClient,
    tenants: tuple[UUID, UUID],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = client.app.state.ledger.store  # type: ignore[attr-defined]
    read_chain = store.read_chain
    calls: list[int] = []

    def fails_on_the_second_page(tenant_id: UUID, after: int, limit: int) -> Any:
        calls.append(after)
        if len(calls) > 1:
            failing_database()
        return read_chain(tenant_id, after, limit)

    monkeypatch.setattr(exports, "PAGE", 5)
    monkeypatch.setattr(store, "read_chain", fails_on_the_second_page)
    failing = TestClient(client.app, raise_server_exceptions=False)
    headers = auditor(tenants[0]) | {"X-Request-ID": "export-cut-1"}
    with caplog.at_level(logging.ERROR, logger="ledger.http"):
        response = failing.get("/v1/exports/events.ndjson", headers=headers)
    assert response.status_code == 200
    assert len(response.text.splitlines()) == 5
    [record] = [r for r in caplog.records if r.name == "ledger.http"]
    assert "events.ndjson" in record.getMessage()
    assert "export-cut-1" in record.getMessage()
    assert record.exc_info is not None


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/exports/stock-levels.csv", "sku"),
        ("/v1/exports/stock-levels.csv", "warehouse"),
        ("/v1/exports/movements.csv", "lot"),
        ("/v1/exports/movements.csv", "reference"),
        ("/v1/stock-levels", "warehouse"),
        ("/v1/movements", "sku"),
        ("/v1/lots", "lot"),
    ],
)
def test_a_nul_character_in_a_filter_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID], path: str, name: str
) -> None:
    response = client.get(path, params={name: "a\x00b"}, headers=auditor(tenants[0]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert f"query.{name}" in [e["field"] for e in response.json()["errors"]]
