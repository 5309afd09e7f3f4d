"""What the ledger cannot record is a `validation-error`, never a 500: integers beyond 64 bits in
free-form attributes, day counts beyond a hundred years, oversized attributes, and text with
lone surrogates (not valid Unicode, so not storable as UTF-8) in any body of any command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from domain.errors import ValidationFailed
from domain.idempotency import fingerprint
from ledger.settings import Settings
from tests.test_api_catalog import create_tenant
from tests.test_api_foundation import SECRET, bearer, head, token

SURROGATE = "\udaf8"
HUGE = 10**30
SOAP: dict[str, Any] = {"sku": "SOAP-1", "name": "Olive soap"}
#: A body of every command with a lone surrogate in one of its strings.
WITH_SURROGATE: list[tuple[str, str, dict[str, Any]]] = [
    ("post", "/v1/products", {"sku": "S" + SURROGATE, "name": "x"}),
    ("post", "/v1/products", {"sku": "S-2", "name": "x" + SURROGATE}),
    ("post", "/v1/products", {"sku": "S-2", "name": "x", "attributes": {"k": SURROGATE}}),
    ("post", "/v1/products", {"sku": "S-2", "name": "x", "attributes": {SURROGATE: 1}}),
    ("patch", "/v1/products/SOAP-1", {"name": "x" + SURROGATE}),
    ("patch", "/v1/products/SOAP-1", {"attributes": {"k": [SURROGATE]}}),
    ("post", "/v1/warehouses", {"code": "W" + SURROGATE, "name": "x", "timezone": "UTC"}),
    ("post", "/v1/warehouses/MAIN/bins", {"code": "B", "zone": SURROGATE}),
    (
        "post",
        "/v1/stock/receipts",
        {
            "sku": "SOAP-1",
            "warehouse": "MAIN",
            "bin": "A1",
            "quantity": 1,
            "unit_cost": 1,
            "reference": "r" + SURROGATE,
        },
    ),
    (
        "post",
        "/v1/stock/adjustments",
        {
            "sku": "SOAP-1",
            "warehouse": "MAIN",
            "bin": "A1",
            "delta": 1.5,
            "reason": "correction",
            "lot": SURROGATE,
        },
    ),
    (
        "post",
        "/v1/stock/reservations",
        {"sku": "SOAP-1", "warehouse": "MAIN", "quantity": 1, "reference": SURROGATE},
    ),
    (
        "post",
        "/v1/purchase-orders",
        {
            "supplier": "Acme" + SURROGATE,
            "warehouse": "MAIN",
            "lines": [{"sku": "SOAP-1", "quantity": 1, "unit_cost": 1}],
        },
    ),
    (
        "post",
        "/v1/sales-orders",
        {
            "customer": SURROGATE,
            "warehouse": "MAIN",
            "lines": [{"sku": "SOAP-1", "quantity": 1}],
        },
    ),
    ("post", "/v1/api-keys", {"name": "k" + SURROGATE, "roles": ["auditor"]}),
    ("put", "/v1/roles", {"roles": {"clerk" + SURROGATE: ["stock:read"]}}),
    (
        "post",
        "/v1/webhooks",
        {"url": "https://example.com/" + SURROGATE, "events": ["*"], "secret": "s" * 16},
    ),
]


@pytest.fixture
def tenant(database_url: str) -> UUID:
    return create_tenant(database_url, f"unrec-{uuid4().hex[:8]}")


@pytest.fixture
def client(database_url: str, tenant: UUID) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def send(client: TestClient, tenant: UUID, method: str, path: str, body: Any) -> Response:
    """The body as JSON text, surrogates as `\\uXXXX` escapes (as a client may send them)."""
    headers = bearer(token(tenant, ["admin"])) | {"Content-Type": "application/json"}
    response: Response = client.request(method, path, content=json.dumps(body), headers=headers)
    return response


def invalid(response: Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    found: dict[str, Any] = response.json()
    assert found["type"] == "/errors/validation-error"
    errors: list[dict[str, str]] = found["errors"]
    return errors


def test_an_integer_beyond_64_bits_in_attributes_is_a_validation_error(
    client: TestClient, database_url: str, tenant: UUID
) -> None:
    before = head(database_url, tenant)
    for body in (SOAP | {"attributes": {"k": [HUGE]}}, SOAP | {"attributes": {"k": -HUGE}}):
        errors = invalid(send(client, tenant, "post", "/v1/products", body))
        assert any("64-bit" in e["message"] for e in errors), errors
    assert head(database_url, tenant) == before


def test_an_integer_beyond_64_bits_in_changed_attributes_is_a_validation_error(
    client: TestClient, database_url: str, tenant: UUID
) -> None:
    assert send(client, tenant, "post", "/v1/products", SOAP).status_code == 201
    before = head(database_url, tenant)
    body = {"attributes": {"k": {"deep": [HUGE]}}}
    invalid(send(client, tenant, "patch", "/v1/products/SOAP-1", body))
    assert head(database_url, tenant) == before


@pytest.mark.parametrize("field", ["shelf_life_days", "expiry_alert_days"])
def test_day_counts_beyond_a_hundred_years_are_validation_errors(
    client: TestClient, tenant: UUID, field: str
) -> None:
    for days in (HUGE, 36501):
        body = SOAP | {"expiry_tracked": True, field: days}
        errors = invalid(send(client, tenant, "post", "/v1/products", body))
        assert f"body.{field}" in [e["field"] for e in errors]
    assert send(client, tenant, "post", "/v1/products", SOAP).status_code == 201
    errors = invalid(send(client, tenant, "patch", "/v1/products/SOAP-1", {field: HUGE}))
    assert f"body.{field}" in [e["field"] for e in errors]


def test_a_hundred_years_of_days_is_accepted(client: TestClient, tenant: UUID) -> None:
    body = SOAP | {"expiry_tracked": True, "shelf_life_days": 36500, "expiry_alert_days": 36500}
    response = send(client, tenant, "post", "/v1/products", body)
    assert response.status_code == 201, response.text
    assert response.json()["shelf_life_days"] == 36500


@pytest.mark.parametrize(
    "attributes",
    [{f"k{i}": i for i in range(65)}, {"k": "x" * (16 * 1024)}],
    ids=["65 keys", "over 16 KiB"],
)
def test_oversized_attributes_are_a_validation_error(
    client: TestClient, tenant: UUID, attributes: dict[str, Any]
) -> None:
    errors = invalid(
        send(client, tenant, "post", "/v1/products", SOAP | {"attributes": attributes})
    )
    assert "body.attributes" in [e["field"] for e in errors]


def test_64_attributes_within_16_kib_are_kept(client: TestClient, tenant: UUID) -> None:
    attributes = {f"k{i}": "v" * 200 for i in range(64)}
    response = send(client, tenant, "post", "/v1/products", SOAP | {"attributes": attributes})
    assert response.status_code == 201, response.text
    assert response.json()["attributes"] == attributes


@pytest.mark.parametrize(("method", "path", "body"), WITH_SURROGATE)
def test_a_lone_surrogate_in_any_command_body_is_a_validation_error(
    client: TestClient,
    database_url: str,
    tenant: UUID,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    before = head(database_url, tenant)
    errors = invalid(send(client, tenant, method, path, body))
    assert any("surrogate" in e["message"] for e in errors), errors
    assert head(database_url, tenant) == before


def test_a_lone_surrogate_in_the_settings_is_a_validation_error(
    client: TestClient, tenant: UUID
) -> None:
    settings = client.get("/v1/settings", headers=bearer(token(tenant, ["admin"]))).json()
    body = {k: v for k, v in settings.items() if k != "position"} | {"timezone": SURROGATE}
    errors = invalid(send(client, tenant, "put", "/v1/settings", body))
    assert any("surrogate" in e["message"] for e in errors), errors


def test_a_percent_encoded_surrogate_in_a_path_is_not_found(
    client: TestClient, tenant: UUID
) -> None:
    headers = bearer(token(tenant, ["admin"]))
    response = client.get("/v1/products/%ED%A0%80", headers=headers)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"attributes": {"k": [HUGE]}}, "body.attributes.k.0"),
        ({"reference": SURROGATE}, "body.reference"),
        ({"attributes": {SURROGATE: 1}}, "body.attributes"),
    ],
)
def test_an_unencodable_request_fingerprints_as_a_validation_error(
    request_: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        fingerprint("register_product", request_)
    assert raised.value.field == field
    assert raised.value.code == "validation-error"


def test_a_rate_limit_beyond_a_million_per_second_is_a_validation_error(
    client: TestClient, database_url: str, tenant: UUID
) -> None:
    settings = client.get("/v1/settings", headers=bearer(token(tenant, ["admin"]))).json()
    body = {k: v for k, v in settings.items() if k != "position"}
    before = head(database_url, tenant)
    for rate in (HUGE, 1_000_001):
        response = send(
            client, tenant, "put", "/v1/settings", body | {"rate_limit_per_second": rate}
        )
        assert "body.rate_limit_per_second" in [e["field"] for e in invalid(response)]
    assert head(database_url, tenant) == before
