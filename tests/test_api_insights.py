"""KPIs, alerts and the audit feed over the /v1 API, against the query functions and the store."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.pages import decimal_text
from ledger.settings import Settings
from projections.alerts import alerts
from projections.kpis import kpis
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, head, seed, token


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    return seed(database_url, f"insights-a-{run}", 3), seed(database_url, f"insights-b-{run}", 4)


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


def _get(client: TestClient, path: str, tenant: UUID, role: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=bearer(token(tenant, [role])))
    assert response.status_code == 200, response.text
    return response.json()


def _text(value: Any) -> str | None:
    return None if value is None else decimal_text(value)


def test_kpis_answer_what_the_query_computes(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], engine: Engine
) -> None:
    tenant = tenants[0]
    wanted = head(database_url, tenant)
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=400), today + timedelta(days=1)
    levels = _get(client, "/v1/stock-levels", tenant, "auditor", min_position=wanted, limit=1000)[
        "items"
    ]
    warehouses = sorted({row["warehouse"] for row in levels})
    assert warehouses
    for warehouse in (None, warehouses[0]):
        params: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
        if warehouse is not None:
            params["warehouse"] = warehouse
        body = _get(client, "/v1/kpis", tenant, "auditor", min_position=wanted, **params)
        assert body["position"] >= wanted
        assert body["warehouse"] == warehouse
        with engine.connect() as conn:
            found = kpis(conn, tenant, start=start, end=end, warehouse=warehouse)
        assert body["stockout_events"] == found.stockout_events
        for name in (
            "cogs",
            "average_inventory_value",
            "inventory_turnover",
            "days_of_inventory",
            "unit_fill_rate",
            "line_fill_rate",
            "expired_quantity",
            "expired_value",
            "record_accuracy",
            "supplier_on_time_rate",
        ):
            assert body[name] == _text(getattr(found, name)), name
    other = _get(client, "/v1/kpis", tenants[1], "auditor", **{"from": start, "to": end})
    assert other["position"] <= head(database_url, tenants[1])


def test_kpis_need_an_ordered_period_and_the_read_permission(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    headers = bearer(token(tenants[0], ["auditor"]))
    backwards = client.get(
        "/v1/kpis", params={"from": "2024-02-02", "to": "2024-02-01"}, headers=headers
    )
    assert backwards.status_code == 422
    assert backwards.headers["content-type"] == "application/problem+json"
    assert backwards.json()["type"] == "/errors/validation-error"
    assert backwards.json()["errors"][0]["field"] == "query.to"
    one_day = client.get(
        "/v1/kpis", params={"from": "2024-02-01", "to": "2024-02-01"}, headers=headers
    )
    assert one_day.status_code == 200, one_day.text
    quiet = one_day.json()  # a day before the history: nothing to divide by
    assert (quiet["cogs"], quiet["unit_fill_rate"], quiet["inventory_turnover"]) == (
        "0",
        None,
        None,
    )
    for params in ({"from": "2024-02-01"}, {"from": "yesterday", "to": "2024-02-01"}):
        response = client.get("/v1/kpis", params=params, headers=headers)
        assert response.status_code == 422
        assert response.json()["type"] == "/errors/validation-error"
    nobody = bearer(token(tenants[0], ["nobody"]))
    for path in ("/v1/kpis?from=2024-02-01&to=2024-02-01", "/v1/alerts"):
        assert client.get(path, headers=nobody).status_code == 403
        assert client.get(path).status_code == 401


def test_alert_pages_walk_what_the_query_finds(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], engine: Engine
) -> None:
    for tenant in tenants:
        wanted = head(database_url, tenant)
        whole = _get(client, "/v1/alerts", tenant, "auditor", min_position=wanted, limit=1000)
        assert whole["next_cursor"] is None
        assert whole["position"] >= wanted
        assert len(whole["items"]) > 2  # more than one page of 2
        with engine.connect() as conn:
            expected = alerts(conn, tenant, limit=1000)
        assert [
            (
                i["kind"],
                i["sku"],
                i["warehouse"],
                i["lot"],
                i["bin"],
                i["quantity"],
                i["expires_on"],
                i["reorder_point"],
                i["available"],
                i["incoming"],
            )
            for i in whole["items"]
        ] == [
            (
                a.kind,
                a.sku,
                a.warehouse,
                a.lot,
                a.bin,
                _text(a.quantity),
                None if a.expires_on is None else a.expires_on.isoformat(),
                _text(a.reorder_point),
                _text(a.available),
                _text(a.incoming),
            )
            for a in expected
        ]
        walked: list[Any] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({} if cursor is None else {"cursor": cursor})
            page = _get(client, "/v1/alerts", tenant, "warehouse_operator", **params)
            walked += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == whole["items"]
        lots = _get(client, "/v1/alerts", tenant, "auditor", kind=["expired", "expiring"])
        assert lots["items"] == [i for i in whole["items"] if i["kind"] != "low_stock"]
    headers = bearer(token(tenants[0], ["auditor"]))
    bad = client.get("/v1/alerts", params={"cursor": "nonsense"}, headers=headers)
    assert bad.status_code == 422


def _walk_audit(client: TestClient, tenant: UUID, limit: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({} if cursor is None else {"cursor": cursor})
        page = _get(client, "/v1/audit/events", tenant, "auditor", **params)
        events += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def test_the_audit_feed_reproduces_the_hash_chain(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    feeds = {}
    for tenant in tenants:
        events = _walk_audit(client, tenant, 7)
        last = head(database_url, tenant)
        assert [e["position"] for e in events] == list(range(1, last + 1))
        previous = bytes(32)
        for event in events:
            payload = base64.b64decode(event["payload"])
            assert event["prev_hash"] == previous.hex()
            previous = hashlib.sha256(previous + payload).digest()
            assert event["hash"] == previous.hex()
            header, _, data = payload.partition(b"\n")
            stored = orjson.loads(header)
            assert stored["tenant_id"] == str(tenant)
            assert event["stream"] == str(stored["stream_id"])
            assert event["version"] == stored["version"]
            assert event["type"] == stored["topic"].rpartition(":")[2]
            assert event["recorded_at"] == stored["recorded_at"]
            assert event["actor"] == stored["actor"]
            assert event["request_id"] == stored.get("request_id")
            assert event["data"].keys() == orjson.loads(data).keys()
        with open_store(database_url) as store:
            assert previous == store.head(tenant).hash
        feeds[tenant] = events
        after = _get(client, "/v1/audit/events", tenant, "admin", after=last - 3)
        assert after["items"] == events[-3:]
        assert (after["position"], after["next_cursor"]) == (last, None)
    a, b = (feeds[t] for t in tenants)
    assert {e["hash"] for e in a}.isdisjoint({e["hash"] for e in b})


def test_the_audit_feed_and_verify_need_audit_read(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    for path in ("/v1/audit/events", "/v1/audit/verify"):
        for role in ("warehouse_operator", "sales"):
            response = client.get(path, headers=bearer(token(tenant, [role])))
            assert response.status_code == 403
            assert response.json()["type"] == "/errors/forbidden"
        assert client.get(path).status_code == 401
    verified = _get(client, "/v1/audit/verify", tenant, "auditor")
    with open_store(database_url) as store:
        current = store.head(tenant)
    assert verified == {
        "ok": True,
        "checked_to_position": current.position,
        "first_bad_position": None,
        "head_hash": current.hash.hex(),
        "reason": None,
    }
    fresh = uuid4()  # a tenant without events: an empty feed and an empty chain
    assert _get(client, "/v1/audit/events", fresh, "auditor") == {
        "items": [],
        "next_cursor": None,
        "position": 0,
    }
    assert _get(client, "/v1/audit/verify", fresh, "auditor")["checked_to_position"] == 0
    headers = bearer(token(tenant, ["auditor"]))
    for params in ({"after": -1}, {"limit": 0}, {"cursor": "x1"}):
        response = client.get("/v1/audit/events", params=params, headers=headers)
        assert response.status_code == 422, params


def test_the_routes_are_documented() -> None:
    app = create_app(Settings(jwt_secret=SECRET))  # type: ignore[arg-type]
    paths = app.openapi()["paths"]
    for path in ("/v1/kpis", "/v1/alerts", "/v1/audit/events", "/v1/audit/verify"):
        assert set(paths[path]["get"]["responses"]) >= {"200", "401", "403", "422"}
