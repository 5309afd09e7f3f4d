"""Per-tenant rate limits shared by every replica: 429 `rate-limited` with `Retry-After` once a
tenant is over its requests per second, counted in the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import create_engine, pool, text

from api.app import create_app
from api.ratelimit import RateLimiter
from ledger.settings import Settings
from tests.test_api_foundation import SECRET, bearer, token
from tests.test_api_stock import setup_tenant

#: A fixed instant a quarter into its one-second window.
NOW = 1_900_000_000.25
LIMIT = 5


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def replicas(database_url: str, clock: Clock) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps on one database, as two replicas behind a load balancer, on one clock."""
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        rate_limit_per_second=LIMIT,
        projections="off",
    )
    with ExitStack() as stack:
        clients = [stack.enter_context(TestClient(create_app(settings))) for _ in range(2)]
        for client in clients:
            limiter(client).clock = clock
        yield clients[0], clients[1]


@pytest.fixture
def tenants(database_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]
    return setup_tenant(database_url, f"rl-a-{run}"), setup_tenant(database_url, f"rl-b-{run}")


def limiter(client: TestClient) -> RateLimiter:
    found: RateLimiter = client.app.state.rate_limiter  # type: ignore[attr-defined]
    return found


def levels(client: TestClient, tenant: UUID) -> Response:
    response: Response = client.get("/v1/stock-levels", headers=bearer(token(tenant, ["auditor"])))
    return response


def test_two_replicas_share_a_tenants_limit(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID]
) -> None:
    first, second = replicas
    statuses = [levels(client, tenants[0]).status_code for client in (first, second) * 3]
    assert statuses == [200] * LIMIT + [429]


def test_a_refusal_is_a_retryable_problem_with_retry_after(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID], clock: Clock
) -> None:
    first, second = replicas
    clock.now = NOW + 0.5  # half a second left in the window: retry after 1 s (rounded up)
    for _ in range(LIMIT):
        assert levels(first, tenants[0]).status_code == 200
    refused = levels(second, tenants[0])
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert (body["type"], body["status"], body["retryable"]) == ("/errors/rate-limited", 429, True)
    assert body["request_id"] == refused.headers["X-Request-ID"]


def test_a_tenant_over_its_limit_does_not_limit_another(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID]
) -> None:
    first, second = replicas
    for _ in range(LIMIT):
        levels(first, tenants[0])
    assert levels(second, tenants[0]).status_code == 429
    assert [levels(second, tenants[1]).status_code for _ in range(LIMIT)] == [200] * LIMIT


def test_the_next_window_counts_afresh(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID], clock: Clock
) -> None:
    first, second = replicas
    for _ in range(LIMIT):
        levels(first, tenants[0])
    assert levels(second, tenants[0]).status_code == 429
    clock.now = NOW + 1
    assert levels(second, tenants[0]).status_code == 200


def test_a_tenants_own_limit_replaces_the_service_default(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID]
) -> None:
    first, second = replicas
    own = {tenants[0]: 2}
    for client in replicas:
        limiter(client).limit_of = own.get
    statuses = [levels(client, tenants[0]).status_code for client in (first, second, first)]
    assert statuses == [200, 200, 429]
    assert levels(first, tenants[1]).status_code == 200  # the default of 5 still applies there


def test_operations_endpoints_are_never_rate_limited(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID]
) -> None:
    first, _ = replicas
    headers = bearer(token(tenants[0], ["admin"]))
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        statuses = {first.get(path, headers=headers).status_code for _ in range(LIMIT + 1)}
        assert statuses == {200}, path
    assert levels(first, tenants[0]).status_code == 200


def test_refused_requests_are_counted_in_the_metrics(
    replicas: tuple[TestClient, TestClient], tenants: tuple[UUID, UUID]
) -> None:
    first, _ = replicas
    for _ in range(LIMIT + 2):
        levels(first, tenants[0])
    text = first.get("/metrics").text
    assert "ledger_rate_limited_total 2.0" in text.splitlines()


@pytest.mark.postgres
def test_the_counters_write_no_write_ahead_log_on_postgresql(pg_url: str) -> None:
    engine = create_engine(Settings(database_url=pg_url).sqlalchemy_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        persistence = conn.execute(
            text("SELECT relpersistence FROM pg_class WHERE relname = 'api_rate_limits'")
        ).scalar()
    engine.dispose()
    assert persistence == "u"  # unlogged: a request's count commits without a disk flush
