"""Tenant settings and role maps over HTTP: read by callers, changed by admins, recorded as
events with who changed them, and a changed role map in force at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import RoleMaps
from domain.access import DEFAULT_ROLES
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from ledger.settings import Settings
from ledger.wiring import Ledger
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, head, token

SETTINGS = {
    "timezone": "Europe/Berlin",
    "currency": "EUR",
    "over_receipt_tolerance_pct": "2.5",
    "block_expired_issue": False,
    "default_removal_policy": "fefo",
    "period_lock_date": "2026-01-01",
    "rate_limit_per_second": 40,
}
CUSTOM_ROLES = {
    "admin": ["*"],
    "picker": ["stock:read", "stock:write"],
    "sales": ["catalog:read", "so:write"],
}


def registered_tenant(url: str, prefix: str) -> UUID:
    """A tenant of this test alone, registered and nothing else."""
    slug = f"{prefix}-{uuid4().hex[:8]}"
    tenant_id = tenant_id_for(slug)
    with open_store(url) as store:
        Ledger(store, snapshot_interval=0).app(tenant_id).create_tenant(
            slug, None, "UTC", EventMetadata()
        )
    return tenant_id


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    return registered_tenant(database_url, "adm-a"), registered_tenant(database_url, "adm-b")


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def as_admin(tenant: UUID, request_id: str = "admin-req") -> dict[str, str]:
    return bearer(token(tenant, ["admin"])) | {"X-Request-ID": request_id}


def put_roles(client: TestClient, tenant: UUID, roles: dict[str, list[str]]) -> Any:
    return client.put("/v1/roles", json={"roles": roles}, headers=as_admin(tenant, "roles-1"))


# -- settings -------------------------------------------------------------------------------------


def test_a_new_tenant_answers_the_default_settings(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    response = client.get("/v1/settings", headers=bearer(token(tenants[0], ["sales"])))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "timezone": "UTC",
        "currency": "USD",
        "over_receipt_tolerance_pct": "0",
        "block_expired_issue": True,
        "default_removal_policy": "fifo",
        "period_lock_date": None,
        "rate_limit_per_second": None,
        "position": 1,
    }


def test_settings_put_by_an_admin_are_answered_and_read_back(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    put = client.put("/v1/settings", json=SETTINGS, headers=as_admin(tenant))
    assert put.status_code == 200, put.text
    assert put.json() == SETTINGS | {"position": 2}
    assert head(database_url, tenant) == 2
    read = client.get("/v1/settings", headers=bearer(token(tenant, ["auditor"])))
    assert read.json() == SETTINGS | {"position": 2}
    other = client.get("/v1/settings", headers=bearer(token(tenants[1], ["admin"])))
    assert other.json()["currency"] == "USD"


def test_putting_the_same_settings_again_records_nothing(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    client.put("/v1/settings", json=SETTINGS, headers=as_admin(tenant))
    again = client.put(
        "/v1/settings",
        json=SETTINGS | {"over_receipt_tolerance_pct": 2.50},
        headers=as_admin(tenant),
    )
    assert again.status_code == 200
    assert again.json()["position"] == 2
    assert head(database_url, tenant) == 2


def test_a_settings_change_is_recorded_with_only_the_changed_fields_and_its_actor(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    body = client.get("/v1/settings", headers=as_admin(tenant)).json()
    body["currency"] = "CHF"
    client.put("/v1/settings", json=body, headers=as_admin(tenant, "settings-7"))
    feed = client.get("/v1/audit/events", headers=as_admin(tenant)).json()["items"]
    change = feed[-1]
    assert change["type"].endswith("Tenant.SettingsChanged")
    assert change["data"]["changes"] == {"currency": "CHF"}
    assert change["request_id"] == "settings-7"
    assert change["actor"] == {"kind": "jwt", "id": "user-1", "roles": ["admin"]}


@pytest.mark.parametrize("missing", sorted(SETTINGS))
def test_a_settings_document_missing_a_field_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID], missing: str
) -> None:
    body = {name: value for name, value in SETTINGS.items() if name != missing}
    response = client.put("/v1/settings", json=body, headers=as_admin(tenants[0]))
    assert response.status_code == 422
    assert f"body.{missing}" in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "EURO"),
        ("currency", "eur"),
        ("timezone", "Europe/Atlantis"),
        ("over_receipt_tolerance_pct", "-1"),
        ("rate_limit_per_second", 0),
        ("default_removal_policy", "lifo"),
    ],
)
def test_an_unacceptable_setting_is_a_validation_error_and_records_nothing(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], field: str, value: object
) -> None:
    response = client.put(
        "/v1/settings", json=SETTINGS | {field: value}, headers=as_admin(tenants[0])
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/errors/validation-error"
    assert any(field in error["field"] for error in response.json()["errors"])
    assert head(database_url, tenants[0]) == 1


@pytest.mark.parametrize("role", ["warehouse_operator", "auditor", "integrator", "sales"])
def test_changing_settings_needs_admin(
    client: TestClient, tenants: tuple[UUID, UUID], role: str
) -> None:
    response = client.put("/v1/settings", json=SETTINGS, headers=bearer(token(tenants[0], [role])))
    assert response.status_code == 403
    assert response.json()["type"] == "/errors/forbidden"


# -- roles ----------------------------------------------------------------------------------------


def test_a_new_tenant_answers_the_default_role_map(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    body = client.get("/v1/roles", headers=bearer(token(tenants[0], ["auditor"]))).json()
    assert body["roles"] == {name: sorted(perms) for name, perms in DEFAULT_ROLES.items()}
    assert "stock:backdate" in body["permissions"]
    assert body["position"] == 1


def test_reading_the_role_map_needs_admin_or_audit_read(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    for role, status in (("admin", 200), ("auditor", 200), ("sales", 403), ("integrator", 403)):
        response = client.get("/v1/roles", headers=bearer(token(tenants[0], [role])))
        assert response.status_code == status, role


def test_a_role_map_put_by_an_admin_is_answered_and_read_back(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    put = put_roles(client, tenants[0], CUSTOM_ROLES)
    assert put.status_code == 200, put.text
    assert (put.json()["roles"], put.json()["position"]) == (CUSTOM_ROLES, 2)
    read = client.get("/v1/roles", headers=as_admin(tenants[0])).json()
    assert read["roles"] == CUSTOM_ROLES
    other = client.get("/v1/roles", headers=as_admin(tenants[1])).json()
    assert "picker" not in other["roles"]


def test_a_permission_removed_from_a_role_is_refused_at_once(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    sales = bearer(token(tenant, ["sales"]))
    assert client.get("/v1/stock-levels", headers=sales).status_code == 200
    assert put_roles(client, tenant, CUSTOM_ROLES).status_code == 200
    refused = client.get("/v1/stock-levels", headers=sales)
    assert refused.status_code == 403
    assert refused.json()["type"] == "/errors/forbidden"
    picker = bearer(token(tenant, ["picker"]))
    assert client.get("/v1/stock-levels", headers=picker).status_code == 200
    other_sales = bearer(token(tenants[1], ["sales"]))
    assert client.get("/v1/stock-levels", headers=other_sales).status_code == 200


def test_a_role_granted_a_permission_may_use_it_at_once(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    sales = bearer(token(tenant, ["sales"]))
    assert client.get("/v1/audit/events", headers=sales).status_code == 403
    roles = {name: sorted(perms) for name, perms in DEFAULT_ROLES.items()}
    roles["sales"] = [*roles["sales"], "audit:read"]
    assert put_roles(client, tenant, roles).status_code == 200
    assert client.get("/v1/audit/events", headers=sales).status_code == 200


def test_an_api_key_whose_role_was_removed_grants_nothing_for_it(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    assert put_roles(client, tenant, CUSTOM_ROLES).status_code == 200
    issued = client.post(
        "/v1/api-keys", json={"name": "scanner", "roles": ["picker"]}, headers=as_admin(tenant)
    )
    assert issued.status_code == 201, issued.text
    key = bearer(issued.json()["key"])
    assert client.get("/v1/stock-levels", headers=key).status_code == 200
    assert put_roles(client, tenant, {"admin": ["*"]}).status_code == 200
    assert client.get("/v1/stock-levels", headers=key).status_code == 403


def test_keys_are_issued_only_with_roles_of_the_tenants_current_map(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    put_roles(client, tenant, CUSTOM_ROLES)
    refused = client.post(
        "/v1/api-keys", json={"name": "old", "roles": ["auditor"]}, headers=as_admin(tenant)
    )
    assert refused.status_code == 422
    assert "unknown role" in refused.json()["detail"]


@pytest.mark.parametrize(
    "roles",
    [
        {"picker": ["stock:read"]},
        {"admin": ["stock:read"]},
        {"admin": ["*"], "Bad Name": ["stock:read"]},
        {"admin": ["*"], "picker": ["stock:delete"]},
    ],
)
def test_an_unacceptable_role_map_is_a_validation_error_and_records_nothing(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], roles: dict[str, list[str]]
) -> None:
    response = put_roles(client, tenants[0], roles)
    assert response.status_code == 422
    assert response.json()["type"] == "/errors/validation-error"
    assert head(database_url, tenants[0]) == 1
    assert client.get("/v1/roles", headers=as_admin(tenants[0])).json()["roles"]["admin"] == ["*"]


def test_changing_the_role_map_needs_admin(client: TestClient, tenants: tuple[UUID, UUID]) -> None:
    response = client.put(
        "/v1/roles", json={"roles": CUSTOM_ROLES}, headers=bearer(token(tenants[0], ["auditor"]))
    )
    assert response.status_code == 403


def test_the_audit_feed_shows_a_role_map_change_and_who_made_it(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    position = put_roles(client, tenant, CUSTOM_ROLES).json()["position"]
    feed = client.get(
        "/v1/audit/events", params={"after": position - 1}, headers=as_admin(tenant)
    ).json()
    event = feed["items"][0]
    assert event["position"] == position
    assert event["type"].endswith("Tenant.RolesChanged")
    assert event["data"]["roles"] == CUSTOM_ROLES
    assert event["actor"] == {"kind": "jwt", "id": "user-1", "roles": ["admin"]}
    assert event["request_id"] == "roles-1"


def test_a_role_map_change_made_elsewhere_is_read_after_the_cache_lifetime() -> None:
    tenant = uuid4()
    maps = RoleMaps(ttl=60)
    loads: list[int] = []

    def load() -> dict[str, frozenset[str]]:
        loads.append(1)
        return {"admin": frozenset({"*"}), "n": frozenset({str(len(loads))})}

    assert maps.get(tenant, load)["n"] == {"1"}
    assert maps.get(tenant, load)["n"] == {"1"}  # kept within its lifetime
    expired = RoleMaps(ttl=0)
    expired.get(tenant, load)
    assert expired.get(tenant, load)["n"] == {"3"}  # read again once its lifetime is over
