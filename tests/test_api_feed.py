"""`GET /v1/events` and `GET /v1/event-types`: the public change feed in position order, its
cursor, type filter, schemas, permissions and tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import jsonschema
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import feed
from ledger.public_events import CONVERTERS, TYPES
from ledger.settings import Settings
from tests.test_api_foundation import SECRET, bearer, head, seed, token


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    return seed(database_url, f"feed-a-{run}", 5), seed(database_url, f"feed-b-{run}", 6)


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def reader(tenant: UUID) -> dict[str, str]:
    return bearer(token(tenant, ["integrator"]))


def walk(client: TestClient, tenant: UUID, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of the feed, page by page along the cursors."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": limit} | params | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/events", params=query, headers=reader(tenant))
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) <= limit


def audit(client: TestClient, tenant: UUID) -> list[dict[str, Any]]:
    response = client.get(
        "/v1/audit/events", params={"limit": 1000}, headers=bearer(token(tenant, ["auditor"]))
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_feed_holds_every_published_event_of_the_tenant_in_position_order(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    items = walk(client, tenant, 1000)
    published = [e["position"] for e in audit(client, tenant) if e["type"] in CONVERTERS]
    assert [e["position"] for e in items] == published
    assert len(published) > 50


def test_cursor_pages_walk_the_feed_once(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    tenant = tenants[0]
    assert walk(client, tenant, 7) == walk(client, tenant, 1000)


def test_a_page_says_the_head_position(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    page = client.get("/v1/events", params={"limit": 3}, headers=reader(tenants[0])).json()
    assert page["position"] == head(database_url, tenants[0])
    assert len(page["items"]) == 3
    assert page["next_cursor"] == str(page["items"][-1]["position"])


def test_after_starts_the_feed_after_that_position(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    whole = walk(client, tenant, 1000)
    middle = whole[len(whole) // 2]["position"]
    assert walk(client, tenant, 1000, after=middle) == [e for e in whole if e["position"] > middle]


def test_a_type_filter_keeps_only_those_types(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    whole = walk(client, tenant, 1000)
    wanted = {"stock.moved", "purchase_order.received"}
    chosen = walk(client, tenant, 1000, types=" stock.moved,purchase_order.received")
    assert chosen == [e for e in whole if e["type"] in wanted]
    assert {e["type"] for e in chosen} == wanted


def test_an_empty_type_filter_keeps_every_type(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    assert walk(client, tenants[0], 1000, types=" ,") == walk(client, tenants[0], 1000)


def test_a_sparse_type_filter_goes_on_by_cursor_past_pages_without_items(
    client: TestClient, tenants: tuple[UUID, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = tenants[0]
    whole = walk(client, tenant, 1000)
    monkeypatch.setattr(feed, "SCAN", 5)
    chosen = walk(client, tenant, 2, types="stock.moved")
    assert chosen == [e for e in whole if e["type"] == "stock.moved"]
    assert chosen


def test_an_unknown_type_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    response = client.get(
        "/v1/events", params={"types": "stock.moved,stock.teleported"}, headers=reader(tenants[0])
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/errors/validation-error"
    assert "stock.teleported" in response.json()["errors"][0]["message"]


def test_every_item_follows_the_schema_its_type_publishes(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    items = walk(client, tenants[0], 1000)
    schemas = {
        kind["type"]: kind["schema"]
        for kind in client.get("/v1/event-types", headers=reader(tenants[0])).json()["items"]
    }
    checker = jsonschema.FormatChecker()
    for item in items:
        assert item["version"] == 1
        jsonschema.validate(item["data"], schemas[item["type"]], format_checker=checker)


def test_a_tenant_never_sees_another_tenants_events(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    a, b = (walk(client, t, 1000) for t in tenants)
    assert {e["event_id"] for e in a}.isdisjoint(e["event_id"] for e in b)
    assert {e["stream"] for e in a}.isdisjoint(e["stream"] for e in b)
    own = [e["position"] for e in audit(client, tenants[1]) if e["type"] in CONVERTERS]
    assert [e["position"] for e in b] == own


def test_the_feed_needs_stock_read(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    response = client.get("/v1/events", headers=bearer(token(tenants[0], ["nobody"])))
    assert response.status_code == 403
    assert response.json()["type"] == "/errors/forbidden"


def test_event_types_list_every_public_type_with_its_schema(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    listed = client.get("/v1/event-types", headers=reader(tenants[0])).json()["items"]
    assert {kind["type"]: kind["version"] for kind in listed} == {
        name: kind.version for name, kind in TYPES.items()
    }
    for kind in listed:
        assert kind["schema"] == TYPES[kind["type"]].schema
        assert kind["description"]


def test_one_event_type_is_found_by_name(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    response = client.get("/v1/event-types/stock.shipped", headers=reader(tenants[0]))
    assert response.status_code == 200
    assert response.json()["schema"] == TYPES["stock.shipped"].schema


def test_an_unknown_event_type_is_not_found(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    response = client.get("/v1/event-types/stock.teleported", headers=reader(tenants[0]))
    assert response.status_code == 404
    assert response.json()["type"] == "/errors/not-found"


def test_event_types_need_a_credential(client: TestClient) -> None:
    assert client.get("/v1/event-types").status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"after": 2**63},
        {"cursor": "\u00b2"},
        {"cursor": "9" * 5000},
        {"cursor": str(2**63)},
        {"cursor": "-1"},
    ],
    ids=["after beyond 2^63-1", "a superscript digit", "5000 digits", "beyond 2^63-1", "negative"],
)
def test_a_position_that_cannot_be_one_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID], params: dict[str, object]
) -> None:
    response = client.get("/v1/events", params=params, headers=reader(tenants[0]))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/errors/validation-error"


def test_the_event_type_routes_document_their_problem_responses(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, statuses in (
        ("/v1/event-types", {"401", "422", "429", "503"}),
        ("/v1/event-types/{name}", {"401", "404", "422", "429", "503"}),
    ):
        responses = paths[path]["get"]["responses"]
        assert statuses <= set(responses), (path, responses)
        for status in statuses:
            assert "application/problem+json" in responses[status]["content"], (path, status)
