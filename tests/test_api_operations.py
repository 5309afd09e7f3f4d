"""Operations: one JSON log line per request, and Prometheus metrics of requests, commands,
appended events and projection lag, with no tenant in any label."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
import pytest
from eventsourcing.persistence import IntegrityError
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.request_log import LOGGER, JsonFormatter
from ledger.settings import Settings
from tests.test_api_foundation import SECRET, bearer, free_port, token
from tests.test_api_stock import setup_tenant

RECEIPT = {"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "quantity": "5", "unit_cost": "2"}
ISSUE = {"sku": "SCREW", "warehouse": "W1", "quantity": "500", "reason": "sale"}


def settings(url: str, **changes: object) -> Settings:
    return Settings(
        database_url=url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        projections="off",
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture
def tenant(database_url: str) -> UUID:
    return setup_tenant(database_url, f"ops-{uuid4().hex[:10]}")


@pytest.fixture
def client(database_url: str, tenant: UUID) -> Iterator[TestClient]:
    with TestClient(create_app(settings(database_url))) as test_client:
        yield test_client


def operator(tenant: UUID, **extra: str) -> dict[str, str]:
    return bearer(token(tenant, ["warehouse_operator"])) | extra


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by name and sorted labels."""
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [orjson.loads(formatter.format(r)) for r in caplog.records if r.name == LOGGER]


def test_each_request_is_one_json_line_with_caller_route_template_and_status(
    client: TestClient, tenant: UUID, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    response = client.get(
        "/v1/products/NO-SUCH", headers=operator(tenant, **{"X-Request-ID": "r-1"})
    )
    [line] = lines(caplog)
    assert line["tenant"] == str(tenant)
    assert line["request_id"] == "r-1"
    assert line["actor"] == {"kind": "jwt", "id": "user-1"}
    assert (line["method"], line["route"]) == ("GET", "/v1/products/{sku}")
    assert line["status"] == response.status_code == 404
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert str(line["time"]).endswith("+00:00")


def test_an_unauthenticated_request_is_logged_without_a_caller(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    client.get("/v1/stock-levels")
    [line] = lines(caplog)
    assert (line["tenant"], line["actor"], line["status"]) == (None, None, 401)


def test_request_logs_can_be_switched_off(
    database_url: str, tenant: UUID, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with TestClient(create_app(settings(database_url, log_requests=False))) as quiet:
        assert quiet.get("/healthz").status_code == 200
    assert lines(caplog) == []


def test_requests_are_counted_by_route_template_and_status(
    client: TestClient, tenant: UUID
) -> None:
    for sku in ("A", "B"):
        client.get(f"/v1/products/{sku}", headers=operator(tenant))
    client.get("/no/such/path")
    found = samples(client)
    labels = (("method", "GET"), ("route", "/v1/products/{sku}"), ("status", "404"))
    assert found[("ledger_http_requests_total", labels)] == 2
    timed = (("method", "GET"), ("route", "/v1/products/{sku}"))
    assert found[("ledger_http_request_duration_seconds_count", timed)] == 2
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found[("ledger_http_requests_total", unmatched)] == 1


def test_commands_are_counted_by_type_and_outcome_with_the_events_they_appended(
    client: TestClient, tenant: UUID
) -> None:
    before = client.app.state.ledger.store.head(tenant).position  # type: ignore[attr-defined]
    for _ in range(2):
        client.post(
            "/v1/stock/receipts", json=RECEIPT, headers=operator(tenant, **{"Idempotency-Key": "r"})
        )
    client.post("/v1/stock/issues", json=ISSUE, headers=operator(tenant))
    found = samples(client)
    after = client.app.state.ledger.store.head(tenant).position  # type: ignore[attr-defined]
    for outcome in ("applied", "replayed"):
        assert found[("ledger_commands_total", (("command", "receive"), ("outcome", outcome)))] == 1
    assert found[("ledger_commands_total", (("command", "issue"), ("outcome", "refused")))] == 1
    assert found[("ledger_events_appended_total", ())] == after - before > 0
    assert found[("ledger_concurrency_retries_total", ())] == 0


def test_projection_lag_is_the_events_each_projection_has_still_to_apply(
    client: TestClient, tenant: UUID
) -> None:
    read_side = client.app.state.read_side  # type: ignore[attr-defined]
    behind = samples(client)
    read_side.runner.run_tenant(tenant)
    caught_up = samples(client)
    recorded = client.app.state.ledger.store.head(tenant).position  # type: ignore[attr-defined]
    names = [p.name for p in read_side.runner.projections]
    for name in names:
        key = ("ledger_projection_lag_events", (("projection", name),))
        assert behind[key] - caught_up[key] == recorded > 0


def test_no_label_names_a_tenant(client: TestClient, tenant: UUID) -> None:
    client.get("/v1/stock-levels", headers=operator(tenant))
    client.post("/v1/stock/receipts", json=RECEIPT, headers=operator(tenant))
    text = client.get("/metrics").text
    assert "ledger_commands_total" in text
    assert str(tenant) not in text
    assert str(tenant).replace("-", "") not in text
    assert "tenant" not in {label for key in samples(client) for label, _ in key[1]}


def test_metrics_need_no_credential_and_are_not_in_the_openapi_schema(
    client: TestClient,
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_two_apps_in_one_process_keep_their_own_metrics(database_url: str, tenant: UUID) -> None:
    with (
        TestClient(create_app(settings(database_url))) as one,
        TestClient(create_app(settings(database_url))) as other,
    ):
        one.get("/healthz")
        labels = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
        assert samples(one)[("ledger_http_requests_total", labels)] == 1
        assert ("ledger_http_requests_total", labels) not in samples(other)


def test_ledger_serve_writes_one_json_line_per_request_to_stderr_and_no_access_log(
    sqlite_url: str,
) -> None:
    tenant = setup_tenant(sqlite_url, f"ops-served-{uuid4().hex[:8]}")
    port = free_port()
    env = os.environ | {"LEDGER_DATABASE_URL": sqlite_url, "LEDGER_JWT_SECRET": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{base}/healthz"):
            assert server.poll() is None, "the server stopped"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        headers = operator(tenant, **{"X-Request-ID": "served-1"})
        assert httpx.get(f"{base}/v1/stock-levels", headers=headers).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = server.stderr.read().decode() if server.stderr else ""
    logged = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    [served] = [line for line in logged if line.get("request_id") == "served-1"]
    assert (served["route"], served["status"], served["tenant"]) == (
        "/v1/stock-levels",
        200,
        str(tenant),
    )
    assert '"GET /v1/stock-levels HTTP/1.1"' not in output  # uvicorn's access log line


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def test_a_lost_concurrency_race_is_counted_as_a_retry(client: TestClient, tenant: UUID) -> None:
    app = client.app.state.ledger.app(tenant)  # type: ignore[attr-defined]
    save = app.save
    lost: list[bool] = []

    def losing_once(*args: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(True)
            raise IntegrityError("another writer changed the stream first")
        return save(*args, **kwargs)

    app.save = losing_once
    response = client.post("/v1/stock/receipts", json=RECEIPT, headers=operator(tenant))
    assert response.status_code == 201
    assert samples(client)[("ledger_concurrency_retries_total", ())] == 1
