"""A retry while the first request with its idempotency key is still running is 409
`idempotency-key-in-progress` (retryable); once the first has finished, the key replays it, and
a first request that failed leaves the key free."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import create_engine

from api.app import create_app
from domain.errors import UnknownReference
from domain.idempotency import IdempotencyKeyInProgress, LocalKeyClaims
from ledger.settings import Settings
from ledger.wiring import AdvisoryKeyClaims, key_claims
from tests.test_api_foundation import SECRET, bearer, token
from tests.test_api_stock import setup_tenant

RECEIPT = {"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "quantity": "5", "unit_cost": "2"}
WAIT = 10.0


class Gate:
    """Holds a command inside its action (after its key was claimed) until opened."""

    def __init__(self, fail: bool = False) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.fail = fail

    def around(self, load: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            assert self.opened.wait(WAIT), "the gate was never opened"
            if self.fail:
                raise UnknownReference("the first request fails")
            return load(*args, **kwargs)

        return held


def settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        projections="off",
    )


@pytest.fixture
def tenant(database_url: str) -> UUID:
    return setup_tenant(database_url, f"inprog-{uuid4().hex[:10]}")


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings(database_url))) as test_client:
        yield test_client


def post(client: TestClient, tenant: UUID, key: str) -> Response:
    headers = bearer(token(tenant, ["warehouse_operator"])) | {"Idempotency-Key": key}
    response: Response = client.post("/v1/stock/receipts", json=RECEIPT, headers=headers)
    return response


def hold(
    client: TestClient, tenant: UUID, key: str, gate: Gate, pool: ThreadPoolExecutor
) -> Future[Response]:
    """Starts the first request and returns once it is running under its claimed key."""
    app = client.app.state.ledger.app(tenant)  # type: ignore[attr-defined]
    app.product = gate.around(app.product)
    first = pool.submit(post, client, tenant, key)
    assert gate.entered.wait(WAIT), "the first request never ran"
    return first


def test_a_retry_while_the_first_runs_is_in_progress_and_retryable(
    client: TestClient, tenant: UUID
) -> None:
    gate = Gate()
    with ThreadPoolExecutor(1) as pool:
        first = hold(client, tenant, "k-1", gate, pool)
        retry = post(client, tenant, "k-1")
        gate.opened.set()
        finished = first.result(WAIT)
    assert retry.status_code == 409
    assert retry.headers["content-type"] == "application/problem+json"
    body = retry.json()
    assert (body["type"], body["retryable"]) == ("/errors/idempotency-key-in-progress", True)
    assert finished.status_code == 201


def test_once_the_first_has_finished_the_key_replays_it(client: TestClient, tenant: UUID) -> None:
    gate = Gate()
    with ThreadPoolExecutor(1) as pool:
        first = hold(client, tenant, "k-2", gate, pool)
        assert post(client, tenant, "k-2").status_code == 409
        gate.opened.set()
        finished = first.result(WAIT)
    replayed = post(client, tenant, "k-2")
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == finished.json()


def test_a_failed_first_request_leaves_the_key_free(client: TestClient, tenant: UUID) -> None:
    gate = Gate(fail=True)
    with ThreadPoolExecutor(1) as pool:
        first = hold(client, tenant, "k-3", gate, pool)
        gate.opened.set()
        assert first.result(WAIT).status_code == 422
    app = client.app.state.ledger.app(tenant)  # type: ignore[attr-defined]
    del app.product  # the gate is gone: the class's loader again
    again = post(client, tenant, "k-3")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers


def test_another_key_of_the_tenant_is_not_held_up(client: TestClient, tenant: UUID) -> None:
    gate = Gate()
    with ThreadPoolExecutor(1) as pool:
        first = hold(client, tenant, "k-4", gate, pool)
        claims = client.app.state.ledger.key_claims  # type: ignore[attr-defined]
        with claims.claim(tenant, "k-5"):  # free while k-4 is held
            pass
        gate.opened.set()
        assert first.result(WAIT).status_code == 201


@pytest.mark.postgres
def test_a_retry_on_another_replica_is_in_progress(pg_url: str) -> None:
    tenant = setup_tenant(pg_url, f"inprog-pg-{uuid4().hex[:10]}")
    gate = Gate()
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        one, other = (
            stack.enter_context(TestClient(create_app(settings(pg_url)))) for _ in range(2)
        )
        first = hold(one, tenant, "k-6", gate, pool)
        retry = post(other, tenant, "k-6")
        gate.opened.set()
        assert first.result(WAIT).status_code == 201
    assert retry.status_code == 409
    assert retry.json()["type"] == "/errors/idempotency-key-in-progress"


@pytest.mark.postgres
def test_advisory_claims_are_shared_between_engines_and_freed_on_exit(pg_url: str) -> None:
    url = Settings(database_url=pg_url).sqlalchemy_url
    engines = [create_engine(url) for _ in range(2)]
    try:
        one, other = (key_claims(engine) for engine in engines)
        assert isinstance(one, AdvisoryKeyClaims)
        tenant = uuid4()
        with one.claim(tenant, "key"):
            with pytest.raises(IdempotencyKeyInProgress), other.claim(tenant, "key"):
                pass
            with other.claim(uuid4(), "key"):  # the same key of another tenant is free
                pass
        with other.claim(tenant, "key"):
            pass
    finally:
        for engine in engines:
            engine.dispose()


def test_process_claims_refuse_a_held_key_until_it_is_released() -> None:
    claims, tenant = LocalKeyClaims(), uuid4()
    with (
        claims.claim(tenant, "key"),
        pytest.raises(IdempotencyKeyInProgress),
        claims.claim(tenant, "key"),
    ):
        pass
    with claims.claim(tenant, "key"):
        pass
