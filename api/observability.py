"""Structured request logs, Prometheus metrics and per-tenant rate limiting."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import Principal
from api.metrics import Metrics
from api.problems import problem
from api.ratelimit import RateLimited, RateLimiter
from api.request_log import RequestTelemetry
from domain.errors import NotFound
from domain.tenant import Tenant
from ledger.settings import Settings
from ledger.wiring import Ledger, key_claims

#: Only the versioned API is rate limited (never health, readiness, metrics or the docs).
LIMITED_PREFIX = "/v1/"


def install(app: FastAPI) -> None:
    """Adds logging, metrics and rate limiting to `app`."""
    settings: Settings = app.state.settings
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(RequestTelemetry, metrics=metrics, log_requests=settings.log_requests)
    app.state.caller_checks.append(limit_rate)
    app.add_exception_handler(RateLimited, _rate_limited)  # type: ignore[arg-type]

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """The service's metrics in the Prometheus text format."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def limit_rate(request: Request, caller: Principal) -> None:
    """Counts an authenticated request against its tenant's rate (429 `rate-limited` when
    over it)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None and request.url.path.startswith(LIMITED_PREFIX):
        try:
            limiter.check(caller.tenant_id)
        except RateLimited:
            request.app.state.metrics.rate_limited.inc()
            raise


async def _rate_limited(request: Request, error: RateLimited) -> JSONResponse:
    response = problem(request, error.code, error.detail, **error.fields)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def started(app: FastAPI) -> None:
    """Once the app's lifespan has opened the ledger and the engine: the command observer, the
    idempotency key claims, the rate limiter and the projection lag."""
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    ledger: Ledger = app.state.ledger
    engine = app.state.engine
    ledger.instrument(metrics, key_claims(engine))
    app.state.rate_limiter = RateLimiter(
        engine, _tenant_limit(ledger), settings.rate_limit_per_second
    )
    metrics.watch_projections(app.state.read_side.lag)


def _tenant_limit(ledger: Ledger) -> Callable[[UUID], int | None]:
    """The tenant's own rate setting (None: the service default)."""

    def limit_of(tenant_id: UUID) -> int | None:
        try:
            tenant = ledger.app(tenant_id).load(tenant_id, Tenant)
        except NotFound:
            return None
        limit = getattr(tenant, "rate_limit_per_second", None)
        return int(limit) if limit is not None else None

    return limit_of
