"""32 HTTP clients racing for the last 10 units through a real server: exactly 10 reservations,
22 `insufficient-stock` refusals, nothing else, and the stock level says so afterwards."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.http_server import register_tenant, served
from tests.test_api_foundation import bearer, token

CLIENTS = 32
UNITS = 10
SKU = "LAST-10"
WAREHOUSE = "RACE"
#: Every racing request may hold a database connection at once.
SERVER_ENV = {"LEDGER_DB_POOL_SIZE": "16", "LEDGER_DB_MAX_OVERFLOW": "24"}

Json = dict[str, Any]


@pytest.fixture
def base_url(database_url: str) -> Iterator[str]:
    with served(database_url, SERVER_ENV) as url:
        yield url


def created(client: httpx.Client, path: str, body: Json) -> Json:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    data: Json = response.json()
    return data


def stocked_tenant(base_url: str, database_url: str) -> UUID:
    """A tenant with exactly `UNITS` of `SKU` on hand in one pickable bin, none reserved."""
    tenant = register_tenant(database_url, f"race-{uuid.uuid4().hex[:10]}")
    headers = bearer(token(tenant, ["admin"]))
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        created(client, "/v1/products", {"sku": SKU, "name": "The last ten"})
        created(client, "/v1/warehouses", {"code": WAREHOUSE, "name": "Race", "timezone": "UTC"})
        created(client, f"/v1/warehouses/{WAREHOUSE}/bins", {"code": "A-01"})
        receipt = {
            "sku": SKU,
            "warehouse": WAREHOUSE,
            "bin": "A-01",
            "quantity": UNITS,
            "unit_cost": "4.20",
        }
        created(client, "/v1/stock/receipts", receipt)
    return tenant


def race(base_url: str, headers: dict[str, str]) -> list[httpx.Response]:
    """Each client reserves 1 unit for its own reference; all are released by one barrier."""
    barrier = threading.Barrier(CLIENTS)
    answers: list[httpx.Response | BaseException | None] = [None] * CLIENTS
    clients = [httpx.Client(base_url=base_url, headers=headers, timeout=60) for _ in range(CLIENTS)]

    def reserve(i: int) -> None:
        body = {"sku": SKU, "warehouse": WAREHOUSE, "quantity": 1, "reference": f"SO-{i:02d}"}
        try:
            clients[i].get("/healthz")  # the connection is open before the barrier
            barrier.wait(timeout=30)
            answers[i] = clients[i].post(
                "/v1/stock/reservations",
                json=body,
                headers={"Idempotency-Key": f"reserve-{i}", "X-Request-ID": f"race-{i}"},
            )
        except BaseException as error:  # every outcome is checked below
            answers[i] = error

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for client in clients:
            client.close()
    assert not any(thread.is_alive() for thread in threads), "a client did not finish"
    failures = [a for a in answers if not isinstance(a, httpx.Response)]
    assert failures == []
    return [a for a in answers if isinstance(a, httpx.Response)]


def test_thirty_two_clients_reserving_the_last_ten_units_make_ten_reservations(
    base_url: str, database_url: str
) -> None:
    tenant = stocked_tenant(base_url, database_url)
    headers = bearer(token(tenant, ["warehouse_operator"]))

    answers = race(base_url, headers)

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: UNITS, 409: CLIENTS - UNITS}, [a.text for a in answers]
    won = [a.json() for a in answers if a.status_code == 201]
    assert all(w["reserved"] == "1" and w["shortage"] == "0" for w in won)
    assert all(sum(int(p["quantity"]) for p in w["picks"]) == 1 for w in won)
    assert len({w["position"] for w in won}) == UNITS
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"] == "/errors/insufficient-stock", problem
        assert (problem["status"], problem["retryable"]) == (409, False)
        assert (problem["requested"], problem["available"]) == ("1", "0")
        assert problem["request_id"] == refused.headers["X-Request-ID"]

    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        response = client.get(
            "/v1/stock-levels",
            params={
                "sku": SKU,
                "warehouse": WAREHOUSE,
                "min_position": max(w["position"] for w in won),
            },
        )
    assert response.status_code == 200, response.text
    [level] = response.json()["items"]
    assert (level["on_hand"], level["reserved"], level["available"]) == ("10", "10", "0")
