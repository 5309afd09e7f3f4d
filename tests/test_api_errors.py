"""Every response carries the request id in `X-Request-ID`, a 500 `internal-error` answered
for a fault of the service included, and the header is never sent twice."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.settings import Settings
from tests.test_api_foundation import SECRET


def failing_app() -> FastAPI:
    """The service with one more route, in this test only, that fails unexpectedly."""
    app = create_app(Settings(database_url="sqlite:///unused.db", jwt_secret=SECRET))  # type: ignore[arg-type]

    def fail() -> None:
        raise RuntimeError("a fault of the service")

    app.add_api_route("/test-only/fail", fail)
    return app


def test_an_internal_error_carries_the_request_id_header() -> None:
    client = TestClient(failing_app(), raise_server_exceptions=False)
    response = client.get("/test-only/fail")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/errors/internal-error"
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_an_internal_error_echoes_the_clients_request_id() -> None:
    client = TestClient(failing_app(), raise_server_exceptions=False)
    response = client.get("/test-only/fail", headers={"X-Request-ID": "client-id-1"})
    assert response.status_code == 500
    assert response.headers.get_list("X-Request-ID") == ["client-id-1"]
    assert response.json()["request_id"] == "client-id-1"


def test_a_problem_answered_by_a_handler_has_the_request_id_header_once() -> None:
    client = TestClient(failing_app(), raise_server_exceptions=False)
    response = client.get("/v1/products", headers={"X-Request-ID": "client-id-2"})
    assert response.status_code == 401
    assert response.headers.get_list("X-Request-ID") == ["client-id-2"]
    assert response.json()["request_id"] == "client-id-2"


def test_a_method_not_allowed_keeps_its_allow_header_and_the_request_id() -> None:
    client = TestClient(failing_app(), raise_server_exceptions=False)
    response = client.delete("/healthz", headers={"X-Request-ID": "client-id-3"})
    assert response.status_code == 405
    assert response.headers.get_list("X-Request-ID") == ["client-id-3"]
    assert "GET" in response.headers["Allow"]
