"""API keys: issued by the CLI or over HTTP, shown once, kept as a hash, revocable, with roles."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.access import parse_key
from ledger.cli import app as cli
from ledger.settings import Settings
from tests.conftest import open_store
from tests.test_api_foundation import SECRET, bearer, head, runner, seed, token


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]
    return seed(database_url, f"keys-a-{run}", 1), seed(database_url, f"keys-b-{run}", 2)


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _slug(url: str, tenant: UUID) -> str:
    result = runner.invoke(cli, ["tenant", "list"], env={"LEDGER_DATABASE_URL": url})
    return next(line.split()[1] for line in result.stdout.splitlines() if str(tenant) in line)


def cli_key(url: str, tenant: UUID, *roles: str) -> str:
    args = ["apikey", "create", "--tenant", _slug(url, tenant), "--name", "scanner"]
    for role in roles:
        args += ["--role", role]
    result = runner.invoke(cli, args, env={"LEDGER_DATABASE_URL": url})
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def levels(
    client: TestClient, credential: str, min_position: int = 0
) -> tuple[int, list[dict[str, str]]]:
    response = client.get(
        "/v1/stock-levels", params={"min_position": min_position}, headers=bearer(credential)
    )
    return response.status_code, response.json().get("items", [])


def test_a_cli_key_authenticates_as_its_tenant_with_its_roles(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    a_key = cli_key(database_url, tenants[0], "auditor")
    b_key = cli_key(database_url, tenants[1], "auditor")
    a_head, b_head = (head(database_url, t) for t in tenants)
    a_status, a_items = levels(client, a_key, a_head)
    b_status, b_items = levels(client, b_key, b_head)
    assert (a_status, b_status) == (200, 200)
    a_jwt = levels(client, token(tenants[0], ["auditor"]), a_head)[1]
    assert a_items == a_jwt
    assert a_items != b_items
    no_read = cli_key(database_url, tenants[0], "purchasing_agent")
    assert levels(client, no_read)[0] == 200  # purchasing agents read stock
    admin_only = client.get("/v1/api-keys", headers=bearer(a_key))
    assert admin_only.status_code == 403


def test_wrong_malformed_or_foreign_keys_are_unauthenticated(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    key = cli_key(database_url, tenants[0], "auditor")
    presented = parse_key(key)
    assert presented is not None
    other_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    other_tenant = key.replace(tenants[0].hex, tenants[1].hex)
    unknown_tenant = key.replace(tenants[0].hex, uuid4().hex)
    for bad in (other_secret, other_tenant, unknown_tenant, "ldg_short", key + "x"):
        response = client.get("/v1/stock-levels", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert response.json()["type"] == "/errors/unauthenticated"


def test_keys_are_issued_listed_and_revoked_over_http(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    admin = bearer(token(tenants[0], ["admin"]))
    issued = client.post(
        "/v1/api-keys",
        json={"name": "shop sync", "roles": ["integrator"]},
        headers=admin | {"X-Request-ID": "issue-1"},
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    key = body["key"]
    assert (body["name"], body["roles"], body["revoked_at"]) == ("shop sync", ["integrator"], None)
    assert levels(client, key)[0] == 200
    listed = client.get("/v1/api-keys", headers=admin).json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "key" not in listed[0]

    revoked = client.post(f"/v1/api-keys/{body['id']}/revoke", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert revoked.json()["position"] > body["position"]
    assert levels(client, key)[0] == 401
    again = client.post(f"/v1/api-keys/{body['id']}/revoke", headers=admin)
    assert again.status_code == 200  # revoking twice records nothing more
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]

    with open_store(database_url) as store:
        events = list(store.iter_events(tenants[0]))
    issued_event = next(e for e in events if e.topic.endswith("Tenant.ApiKeyIssued"))
    assert issued_event.header["actor"] == {"kind": "jwt", "id": "user-1", "roles": ["admin"]}
    assert issued_event.header["request_id"] == "issue-1"
    secret = key.split("_", 3)[3]
    assert all(secret.encode() not in e.payload for e in events)  # only its hash is kept


def test_an_issue_retried_with_its_idempotency_key_is_answered_again_without_the_key(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    admin = bearer(token(tenants[0], ["admin"])) | {"Idempotency-Key": "issue-once"}
    request = {"name": "scanner", "roles": ["warehouse_operator"]}
    first = client.post("/v1/api-keys", json=request, headers=admin)
    assert first.status_code == 201, first.text
    position = head(database_url, tenants[0])
    again = client.post("/v1/api-keys", json=request, headers=admin)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() | {"key": None}
    assert head(database_url, tenants[0]) == position  # no second key
    assert len(client.get("/v1/api-keys", headers=admin).json()["items"]) == 1
    other = client.post("/v1/api-keys", json=request | {"name": "other"}, headers=admin)
    assert other.status_code == 422
    assert other.json()["type"] == "/errors/idempotency-key-reused"


def test_a_revocation_retried_with_its_idempotency_key_is_answered_again(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    admin = bearer(token(tenants[0], ["admin"]))
    made = client.post("/v1/api-keys", json={"name": "n", "roles": ["sales"]}, headers=admin)
    path = f"/v1/api-keys/{made.json()['id']}/revoke"
    keyed = admin | {"Idempotency-Key": "revoke-once"}
    first = client.post(path, headers=keyed)
    again = client.post(path, headers=keyed)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "roles": ["boss"]}, "roles"),
        ({"name": "x", "roles": []}, "body.roles"),
        ({"name": "", "roles": ["admin"]}, "body.name"),
        ({"roles": ["admin"]}, "body.name"),
    ],
)
def test_a_bad_key_request_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID], body: dict[str, object], field: str
) -> None:
    response = client.post("/v1/api-keys", json=body, headers=bearer(token(tenants[0], ["admin"])))
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]


def test_keys_need_admin_and_stay_in_their_tenant(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    a_admin, b_admin = (bearer(token(t, ["admin"])) for t in tenants)
    made = client.post("/v1/api-keys", json={"name": "k", "roles": ["auditor"]}, headers=a_admin)
    key_id = made.json()["id"]
    assert client.get("/v1/api-keys", headers=b_admin).json()["items"] == []
    foreign = client.post(f"/v1/api-keys/{key_id}/revoke", headers=b_admin)
    assert foreign.status_code == 404
    assert foreign.json()["type"] == "/errors/not-found"
    auditor = bearer(token(tenants[0], ["auditor"]))
    denied = client.post("/v1/api-keys", json={"name": "k", "roles": ["admin"]}, headers=auditor)
    assert denied.status_code == 403
