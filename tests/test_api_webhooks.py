"""Webhooks over HTTP: registered and disabled by admins as tenant events, listed without
their secrets, kept within their tenant, refused for private addresses unless allowed."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from domain.tenant import Tenant
from ledger.sealing import new_key, unseal
from ledger.settings import Settings
from ledger.wiring import Ledger
from projections.webhook_log import Delivery, record_attempt
from tests.conftest import open_store
from tests.test_api_admin import as_admin, registered_tenant
from tests.test_api_foundation import SECRET, bearer, head, token

HOOK_SECRET = "whsec-0123456789abcdef-never-shown"
SEALING_KEY = new_key()
HOOK = {"url": "http://127.0.0.1:9/hooks", "events": ["stock.received"], "secret": HOOK_SECRET}


@contextmanager
def serving(url: str, *, allow_private: bool) -> Iterator[TestClient]:
    settings = Settings(
        database_url=url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        webhook_allow_private=allow_private,
        secret_key=SEALING_KEY,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    return registered_tenant(database_url, "hook-a"), registered_tenant(database_url, "hook-b")


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    """A service whose operator allows private webhook addresses (the tests' loopback)."""
    with serving(database_url, allow_private=True) as test_client:
        yield test_client


def register(client: TestClient, tenant: UUID, **changes: Any) -> Any:
    return client.post("/v1/webhooks", json=HOOK | changes, headers=as_admin(tenant, "hook-1"))


def test_a_registered_webhook_is_answered_without_its_secret(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    response = register(client, tenants[0])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["url"], body["events"], body["active"]) == (HOOK["url"], HOOK["events"], True)
    assert body["position"] == 2
    assert set(body) == {"id", "url", "events", "active", "created_at", "disabled_at", "position"}
    assert HOOK_SECRET not in response.text


def test_webhooks_are_listed_without_their_secrets(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    made = register(client, tenants[0]).json()
    listed = client.get("/v1/webhooks", headers=as_admin(tenants[0]))
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [made["id"]]
    assert listed.json()["position"] == made["position"]
    assert HOOK_SECRET not in listed.text


def test_registration_and_disabling_are_tenant_events_with_their_actor(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    made = register(client, tenants[0]).json()
    disabled = client.post(
        f"/v1/webhooks/{made['id']}/disable", headers=as_admin(tenants[0], "off-1")
    )
    assert disabled.status_code == 200, disabled.text
    assert (disabled.json()["active"], disabled.json()["position"]) == (False, 3)
    assert disabled.json()["disabled_at"] is not None
    assert HOOK_SECRET not in disabled.text
    with open_store(database_url) as store:
        events = list(store.iter_events(tenants[0]))
    kinds = [(e.topic.rsplit(".", 1)[-1], e.header["request_id"]) for e in events[1:]]
    assert kinds == [("WebhookRegistered", "hook-1"), ("WebhookDisabled", "off-1")]
    assert all(e.header["actor"]["roles"] == ["admin"] for e in events[1:])


def test_the_stored_event_holds_the_secret_only_sealed_with_the_service_key(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    made = register(client, tenants[0]).json()
    with open_store(database_url) as store:
        stored = list(store.iter_events(tenants[0]))[-1]
    assert HOOK_SECRET.encode() not in stored.payload
    audit = client.get("/v1/audit/events", headers=as_admin(tenants[0]))
    assert audit.status_code == 200, audit.text
    assert HOOK_SECRET not in audit.text
    settings = Settings(secret_key=SEALING_KEY)  # type: ignore[arg-type]
    with open_store(database_url) as store:
        tenant = Ledger(store).app(tenants[0]).load(tenants[0], Tenant)
    assert unseal(settings, tenant.sealed_webhook_secret(made["id"])) == HOOK_SECRET


def test_without_a_sealing_key_no_webhook_is_registered(
    database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        webhook_allow_private=True,
    )
    with TestClient(create_app(settings)) as bare:
        response = register(bare, tenants[0])
    assert response.status_code == 503, response.text
    assert "LEDGER_SECRET_KEY" in response.json()["detail"]
    assert head(database_url, tenants[0]) == 1


def test_disabling_a_disabled_webhook_records_nothing(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    made = register(client, tenants[0]).json()
    first = client.post(f"/v1/webhooks/{made['id']}/disable", headers=as_admin(tenants[0]))
    again = client.post(f"/v1/webhooks/{made['id']}/disable", headers=as_admin(tenants[0]))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert head(database_url, tenants[0]) == 3


def test_a_webhook_url_resolving_to_a_private_address_is_refused_by_default(
    database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    with serving(database_url, allow_private=False) as client:
        for url in ("http://127.0.0.1:9/hooks", "http://localhost:9/hooks", "http://[::1]:9/"):
            response = register(client, tenants[0], url=url)
            assert response.status_code == 422, url
            body = response.json()
            assert body["type"] == "/errors/validation-error"
            assert [error["field"] for error in body["errors"]] == ["url"]
            assert "private" in body["detail"]
    assert head(database_url, tenants[0]) == 1


def test_a_webhook_url_resolving_to_a_private_address_is_accepted_when_allowed(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    response = register(client, tenants[0], url="http://localhost:9/hooks")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
        ({"events": []}, "body.events"),
        ({"events": ["Stock Received"]}, "events"),
        ({"events": ["stock.received", "stock.teleported"]}, "events"),
        ({"secret": "too-short"}, "body.secret"),
        ({"secret": None}, "body.secret"),
    ],
)
def test_an_unacceptable_webhook_is_a_validation_error(
    client: TestClient,
    database_url: str,
    tenants: tuple[UUID, UUID],
    changes: dict[str, Any],
    field: str,
) -> None:
    response = register(client, tenants[0], **changes)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]
    assert head(database_url, tenants[0]) == 1


def test_another_tenants_webhook_is_not_found_and_never_listed(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    a, b = tenants
    made = register(client, a).json()
    assert client.get("/v1/webhooks", headers=as_admin(b)).json()["items"] == []
    for path in (f"/v1/webhooks/{made['id']}/disable", f"/v1/webhooks/{made['id']}/deliveries"):
        method = client.post if path.endswith("disable") else client.get
        response = method(path, headers=as_admin(b))
        assert response.status_code == 404, path
        assert response.json()["type"] == "/errors/not-found"
    still = client.get("/v1/webhooks", headers=as_admin(a)).json()["items"]
    assert [(item["id"], item["active"]) for item in still] == [(made["id"], True)]


@pytest.mark.parametrize("role", ["auditor", "integrator", "warehouse_operator"])
def test_webhooks_need_admin(client: TestClient, tenants: tuple[UUID, UUID], role: str) -> None:
    headers = bearer(token(tenants[0], [role]))
    assert client.post("/v1/webhooks", json=HOOK, headers=headers).status_code == 403
    assert client.get("/v1/webhooks", headers=headers).status_code == 403


def test_a_registration_retried_with_its_key_is_answered_again_and_appends_nothing(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    headers = as_admin(tenants[0]) | {"Idempotency-Key": "hook-once"}
    first = client.post("/v1/webhooks", json=HOOK, headers=headers)
    again = client.post("/v1/webhooks", json=HOOK, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert head(database_url, tenants[0]) == 2
    other = client.post("/v1/webhooks", json=HOOK | {"events": ["*"]}, headers=headers)
    assert other.status_code == 422
    assert other.json()["type"] == "/errors/idempotency-key-reused"


def test_webhook_pages_walk_every_webhook_once(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    made = [register(client, tenants[0]).json()["id"] for _ in range(5)]
    walked: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/webhooks", params=params, headers=as_admin(tenants[0])).json()
        walked += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == made


def test_a_cursor_of_another_list_is_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    made = register(client, tenants[0]).json()
    foreign = base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("=")
    for path in ("/v1/webhooks", f"/v1/webhooks/{made['id']}/deliveries"):
        response = client.get(path, params={"cursor": foreign}, headers=as_admin(tenants[0]))
        assert response.status_code == 422, path


def test_the_delivery_log_is_paged_in_event_order_for_its_webhook_and_tenant(
    client: TestClient, engine: Engine, tenants: tuple[UUID, UUID]
) -> None:
    a, b = tenants
    hook = register(client, a).json()["id"]
    other = register(client, b).json()["id"]
    now = datetime.now(UTC)
    attempts = [
        Delivery("d-2", 1, 7, "stock.received", "failed", 500, "server error", now, now),
        Delivery("d-1", 1, 5, "stock.received", "failed", None, "timeout", now, now),
        Delivery("d-1", 2, 5, "stock.received", "delivered", 204, None, now, None),
        Delivery("d-3", 1, 9, "stock.received", "pending", None, None, None, now),
    ]
    with engine.begin() as conn:
        for attempt in attempts:
            record_attempt(conn, a, hook, attempt)
        record_attempt(conn, b, other, attempts[0])
        record_attempt(conn, a, other, attempts[0])  # another tenant's id: never a's log
    walked: list[tuple[str, int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(
            f"/v1/webhooks/{hook}/deliveries", params=params, headers=as_admin(a)
        ).json()
        walked += [(item["delivery_id"], item["attempt"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [("d-1", 1), ("d-1", 2), ("d-2", 1), ("d-3", 1)]
    first = client.get(f"/v1/webhooks/{hook}/deliveries", headers=as_admin(a)).json()["items"][0]
    assert (first["status"], first["error"], first["response_status"]) == (
        "failed",
        "timeout",
        None,
    )
    assert datetime.fromisoformat(first["attempted_at"]) == now
