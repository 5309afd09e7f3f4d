"""The /v1 service's foundation: problems, request ids, bearer JWTs, permissions, tenant scope,
cursor pages and read-your-writes, in process and over a real uvicorn server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.app import create_app
from api.pages import decimal_text
from domain.ids import tenant_id_for
from ledger.cli import app as cli
from ledger.settings import Settings
from projections.stock_levels import stock_levels
from tests.conftest import open_store

SECRET = "test-secret-of-at-least-32-bytes-long"
runner = CliRunner()


def seed(url: str, slug: str, seed_number: int) -> UUID:
    result = runner.invoke(
        cli,
        ["demo", "seed", "--tenant", slug, "--events", "80", "--seed", str(seed_number)],
        env={"LEDGER_DATABASE_URL": url},
    )
    assert result.exit_code == 0, result.stderr
    return tenant_id_for(slug)


def token(tenant: UUID, roles: list[str], **claims: Any) -> str:
    body = {
        "sub": "user-1",
        "tenant_id": str(tenant),
        "roles": roles,
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    return jwt.encode(body | claims, claims.pop("key", SECRET), algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    return seed(database_url, f"api-a-{run}", 1), seed(database_url, f"api-b-{run}", 2)


@pytest.fixture
def client(database_url: str, tenants: tuple[UUID, UUID]) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=30,  # the read models catch up from scratch, on a busy machine too
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def head(url: str, tenant: UUID) -> int:
    with open_store(url) as store:
        return store.head(tenant).position


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "send Authorization: Bearer"),
        ({"Authorization": "Basic abc"}, "send Authorization: Bearer"),
        (bearer("not-a-jwt"), "not valid"),
        (bearer(jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")), "not valid"),
        (bearer(token(UUID(int=1), ["admin"], key="another-secret-of-32-bytes-or-more")), "valid"),
        (
            bearer(token(UUID(int=1), ["admin"], exp=datetime.now(UTC) - timedelta(seconds=5))),
            "expired",
        ),
        (bearer(token(UUID(int=1), ["admin"], tenant_id="acme")), "not a UUID"),
        (bearer(token(UUID(int=1), "admin")), "not a list"),  # type: ignore[arg-type]
    ],
)
def test_a_missing_or_bad_credential_is_unauthenticated(
    client: TestClient, headers: dict[str, str], detail: str
) -> None:
    response = client.get("/v1/stock-levels", headers=headers | {"X-Request-ID": "req-42"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "req-42"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["type"] == "/errors/unauthenticated"
    assert (body["status"], body["request_id"], body["retryable"]) == (401, "req-42", False)
    assert detail in body["detail"]


def test_a_role_without_the_permission_is_forbidden(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    response = client.get("/v1/stock-levels", headers=bearer(token(tenants[0], ["sales-x"])))
    assert response.status_code == 403
    assert response.json()["type"] == "/errors/forbidden"
    for role in ("auditor", "sales", "warehouse_operator", "admin"):
        allowed = client.get("/v1/stock-levels", headers=bearer(token(tenants[0], [role])))
        assert allowed.status_code == 200, role


def test_a_request_id_is_generated_when_absent_or_unusable(
    client: TestClient, tenants: tuple[UUID, UUID]
) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(first) == 36
    assert len(second.headers["X-Request-ID"]) == 36
    assert first != second.headers["X-Request-ID"]


def test_stock_levels_are_the_callers_tenants_only(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID], engine: Engine
) -> None:
    for tenant in tenants:
        wanted = head(database_url, tenant)
        response = client.get(
            "/v1/stock-levels",
            params={"min_position": wanted, "limit": 1000},
            headers=bearer(token(tenant, ["auditor"])),
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["position"] >= wanted
        assert page["next_cursor"] is None
        with engine.connect() as conn:
            expected = stock_levels(conn, tenant, limit=1000)
        assert [(i["sku"], i["warehouse"], i["on_hand"], i["value"]) for i in page["items"]] == [
            (r.sku, r.warehouse, decimal_text(r.on_hand), decimal_text(r.value)) for r in expected
        ]
        assert expected
    a, b = (
        client.get("/v1/stock-levels", headers=bearer(token(t, ["auditor"]))).json()["items"]
        for t in tenants
    )
    assert a != b  # two histories, each tenant sees its own


def test_cursor_pages_walk_the_whole_list_once(
    client: TestClient, database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    tenant = tenants[0]
    headers = bearer(token(tenant, ["auditor"]))
    wanted = head(database_url, tenant)
    whole = client.get(
        "/v1/stock-levels", params={"min_position": wanted, "limit": 1000}, headers=headers
    ).json()["items"]
    walked: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/stock-levels", params=params, headers=headers).json()
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 2
    assert walked == whole
    assert len(whole) > 2
    filtered = client.get(
        "/v1/stock-levels", params={"sku": whole[0]["sku"]}, headers=headers
    ).json()["items"]
    assert filtered == [item for item in whole if item["sku"] == whole[0]["sku"]]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"cursor": "bm9wZQ"}, {"min_position": -1}]
)
def test_bad_query_parameters_are_a_validation_error(
    client: TestClient, tenants: tuple[UUID, UUID], params: dict[str, Any]
) -> None:
    response = client.get(
        "/v1/stock-levels", params=params, headers=bearer(token(tenants[0], ["auditor"]))
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "/errors/validation-error"
    assert body["errors"]
    assert all("field" in e and "message" in e for e in body["errors"])


def test_a_position_not_reached_in_time_is_projection_lagging(
    database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=0.3,
    )
    with TestClient(create_app(settings)) as client:
        response = client.get(
            "/v1/stock-levels",
            params={"min_position": 10**9},
            headers=bearer(token(tenants[0], ["auditor"])),
        )
    assert response.status_code == 503
    body = response.json()
    assert (body["type"], body["retryable"], body["wanted"]) == (
        "/errors/projection-lagging",
        True,
        10**9,
    )


def test_unknown_paths_are_not_found_problems(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/errors/not-found"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_ledger_serve_answers_over_http(sqlite_url: str) -> None:
    tenant = seed(sqlite_url, "served", 3)
    port = free_port()
    env = os.environ | {"LEDGER_DATABASE_URL": sqlite_url, "LEDGER_JWT_SECRET": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        position = head(sqlite_url, tenant)
        response = httpx.get(
            f"{base}/v1/stock-levels",
            params={"min_position": position},
            headers=bearer(token(tenant, ["auditor"])),
        )
        assert response.status_code == 200, response.text
        assert response.json()["position"] >= position
        assert response.json()["items"]
        assert httpx.get(f"{base}/openapi.json").json()["paths"]["/v1/stock-levels"]["get"]
    finally:
        server.terminate()
        code = server.wait(timeout=30)
    output = server.stdout.read().decode() if server.stdout else ""
    # uvicorn shuts down gracefully, then re-raises the signal (exit status of SIGTERM)
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def test_rs256_tokens_are_checked_with_the_public_key(
    database_url: str, tenants: tuple[UUID, UUID]
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(
        database_url=database_url,
        jwt_public_key=public.decode(),
        jwt_issuer="https://id.example",
        jwt_audience="ledger",
    )
    claims = {
        "sub": "svc",
        "tenant_id": str(tenants[0]),
        "roles": ["auditor"],
        "exp": datetime.now(UTC) + timedelta(minutes=5),
        "iss": "https://id.example",
        "aud": "ledger",
    }
    signed = jwt.encode(claims, private, algorithm="RS256")
    wrong_audience = jwt.encode(claims | {"aud": "other"}, private, algorithm="RS256")
    hs256 = jwt.encode(claims, SECRET, algorithm="HS256")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/stock-levels", headers=bearer(signed)).status_code == 200
        for refused in (wrong_audience, hs256):
            assert client.get("/v1/stock-levels", headers=bearer(refused)).status_code == 401


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5.000000000000", "5"),
        ("12.500", "12.5"),
        ("100", "100"),
        ("1E+2", "100"),
        ("0.000", "0"),
        ("-0.000", "0"),
        ("-3.140", "-3.14"),
        ("0.000001", "0.000001"),
    ],
)
def test_decimals_are_written_plainly(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text
