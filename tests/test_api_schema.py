"""Schemathesis against the live `/openapi.json` of a served ledger: every operation, fed
schema-conforming and schema-violating requests, never answers 5xx and always answers with a
status, content type and body its OpenAPI document declares."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx
import schemathesis
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.problems import PROBLEM
from ledger.settings import Settings
from tests.http_server import served as served_at
from tests.test_api_foundation import SECRET, bearer, seed, token

AnyCase = Case[Any]
Operation = APIOperation[Any, Any, Any, Any]


def no_server_error(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """`not_a_server_error`, except the contract's 503 `projection-lagging` for a
    `min_position` the tenant's ledger has not reached (its answer after the wait)."""
    if response.status_code == 503 and response.headers.get("content-type") == [PROBLEM]:
        body = response.json()
        sent = (case.query or {}).get("min_position")
        wanted = body.get("wanted")
        if body.get("type") == "/errors/projection-lagging" and (
            wanted == sent or (isinstance(sent, list) and wanted in sent)
        ):
            assert isinstance(wanted, int), body
            assert wanted > body["reached"], body
            return None
    return not_a_server_error(ctx, response, case)


CHECKS: list[CheckFunction] = [
    no_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
#: Examples per operation and generation mode; the whole run stays within a few minutes.
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 12}
#: Examples per operation whose path parameters are the seeded tenant's real identifiers.
REAL_EXAMPLES = 6
REQUEST_TIMEOUT = 30.0
#: Seconds the served read models may take to reflect the seeded tenant.
CATCH_UP_SECONDS = 60.0
METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


@dataclass
class Served:
    base: str
    tenant: UUID
    headers: dict[str, str]


@dataclass
class Run:
    """What the run tried and what failed, per operation."""

    cases: int = 0
    operations: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)


@contextmanager
def serving(database_url: str) -> Iterator[Served]:
    """`ledger serve` on a free loopback port over a seeded tenant, with an admin JWT (a
    failure inside the block shows the server's last output)."""
    tenant = seed(database_url, f"schema-{uuid4().hex[:8]}", 7)
    env = {
        "LEDGER_LOG_REQUESTS": "false",
        "LEDGER_MIN_POSITION_TIMEOUT": "0.2",
        "LEDGER_SECRET_KEY": Fernet.generate_key().decode(),
    }
    with served_at(database_url, env) as base:
        yield Served(base, tenant, bearer(token(tenant, ["admin"], exp=time.time() + 3600)))


def _real_identifiers(served: Served) -> dict[str, str]:
    """Path parameter values that name the seeded tenant's own resources."""

    def first(path: str, key: str) -> str:
        deadline = time.monotonic() + CATCH_UP_SECONDS  # the read models fill after start-up
        while True:
            response = httpx.get(f"{served.base}{path}", headers=served.headers, timeout=30)
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            if items or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert items, path
        return str(items[0][key])

    issued = httpx.post(
        f"{served.base}/v1/api-keys",
        json={"name": "schema run", "roles": ["auditor"]},
        headers=served.headers,
        timeout=30,
    )
    assert issued.status_code == 201, issued.text
    found = {
        "sku": first("/v1/products", "sku"),
        "code": first("/v1/warehouses", "code"),
        "lot": first("/v1/lots", "lot"),
        "key_id": first("/v1/api-keys", "id"),
    }
    found["order_id"] = first("/v1/sales-orders", "id")
    return found


def _exercise(
    operation: Operation,
    strategy: st.SearchStrategy[AnyCase],
    examples: int,
    call: Callable[[AnyCase], None],
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: AnyCase) -> None:
        call(case)

    check()


def _run_all(served: Served) -> Run:
    schema = schemathesis.openapi.from_url(f"{served.base}/openapi.json")
    real = _real_identifiers(served)
    run = Run()
    paths: dict[str, dict[str, Any]] = schema.raw_schema["paths"]
    run.declared = {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops if m in METHODS}

    def call(case: AnyCase) -> None:
        run.cases += 1
        case.call_and_validate(
            base_url=served.base, headers=served.headers, checks=CHECKS, timeout=REQUEST_TIMEOUT
        )

    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here
        run.operations.add(operation.label)
        names = {p.name for p in operation.path_parameters}
        passes: list[tuple[str, st.SearchStrategy[AnyCase], int]] = [
            (mode.value, operation.as_strategy(generation_mode=mode), n)
            for mode, n in EXAMPLES.items()
        ]
        if names and names <= real.keys():
            fixed: dict[str, Any] = {name: real[name] for name in names}
            passes.append(("real", operation.as_strategy(path_parameters=fixed), REAL_EXAMPLES))
        for name, strategy, examples in passes:
            try:
                _exercise(operation, strategy, examples, call)
            except Unsatisfiable:  # no request can violate this operation's schema
                pass
            except (Exception, BaseExceptionGroup) as error:  # every operation's is reported
                run.failures[f"{operation.label} [{name}]"] = str(error)[:2000]
    return run


def test_every_operation_answers_as_declared_and_never_with_a_server_error(
    database_url: str,
) -> None:
    with serving(database_url) as served:
        started = time.monotonic()
        run = _run_all(served)
        elapsed = time.monotonic() - started
        print(f"schemathesis: {len(run.operations)} operations, {run.cases} cases, {elapsed:.0f}s")
        assert run.operations == run.declared
        assert any(label.startswith("POST /v1/") for label in run.operations)
        failures = sorted(run.failures.items())
        assert not failures, "\n\n".join(f"{label}:\n{why}" for label, why in failures)


#: Values past what the service can store or compute, each once answered with a 500.
EDGES: list[tuple[str, str, dict[str, Any], Any, int]] = [
    ("GET", "/v1/stock-levels", {"changed_after": 2**70}, None, 422),
    ("GET", "/v1/stock-levels", {"min_position": 2**63}, None, 422),
    ("GET", "/v1/audit/events", {"after": 2**70}, None, 422),
    ("GET", "/v1/audit/events", {"cursor": str(2**70)}, None, 422),
    ("GET", "/v1/lots", {"expiring_within_days": 10**7}, None, 200),
    ("GET", "/v1/movements", {"from": "0001-01-01T00:00:00+05:00"}, None, 422),
    ("GET", "/v1/stock-levels/as-of", {"at": "9999-12-31T23:59:59-05:00"}, None, 422),
    (
        "GET",
        "/v1/lots/as-of",
        {"at": "2026-01-01T00:00Z", "known_at": "0001-01-01T00:00+01:00"},
        None,
        422,
    ),
    (
        "POST",
        f"/v1/sales-orders/{uuid4()}/ship",
        {},
        {"lines": [{"line": 10**30, "quantity": 1}]},
        422,
    ),
    ("POST", "/v1/stock/receipts", {}, b"{not json", 422),
    ("POST", "/v1/products", {}, {"sku": "E-1", "name": "x", "attributes": {"k": [10**30]}}, 422),
    ("POST", "/v1/products", {}, {"sku": "E-1", "name": "x", "shelf_life_days": 10**30}, 422),
    ("POST", "/v1/products", {}, {"sku": "E-1", "name": "x", "attributes": {"k": "\udaf8"}}, 422),
    ("PATCH", "/v1/products/E-0", {}, {"expiry_alert_days": 10**30}, 422),
    ("GET", "/v1/exports/events.ndjson", {"after": 2**63}, None, 422),
    ("GET", "/v1/events", {"after": 2**63}, None, 422),
    ("GET", "/v1/events", {"cursor": "\u00b2"}, None, 422),
]


def test_out_of_range_values_are_answered_as_problems_not_server_errors(
    database_url: str,
) -> None:
    tenant = seed(database_url, f"edges-{uuid4().hex[:8]}", 3)
    settings = Settings(database_url=database_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    headers = bearer(token(tenant, ["admin"])) | {"Content-Type": "application/json"}
    answers = []
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for method, path, params, body, _ in EDGES:
            content = body if isinstance(body, bytes) else json.dumps(body) if body else None
            response = client.request(method, path, params=params, content=content, headers=headers)
            kind = response.headers["content-type"]
            answers.append((response.status_code, kind if response.status_code >= 400 else "-"))
    assert answers == [(status, PROBLEM if status >= 400 else "-") for *_, status in EDGES]
