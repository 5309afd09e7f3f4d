"""The /v1 service: FastAPI app with the ledger, its read models and their background runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import observability, problems
from api.auth import RoleMaps, verifier
from api.context import RequestIds
from api.exact_numbers import ExactNumbers
from api.pages import reader_role
from api.routes import (
    admin,
    alert_log,
    api_keys,
    catalog,
    exports,
    feed,
    health,
    insights,
    purchase_orders,
    sales_orders,
    stock,
    stock_history,
    stock_levels,
    trace,
    webhooks,
)
from ledger.read_side import ReadSide, read_engine
from ledger.settings import Settings
from ledger.wiring import Ledger, check_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for `settings` (default: from the environment). The schema is checked and the
    ledger opened when the app starts; the read models follow in a background thread unless
    `LEDGER_PROJECTIONS=off`."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_schema(settings)
        ledger = Ledger.from_settings(settings)
        engine = read_engine(settings)
        read_side = ReadSide.from_settings(settings, ledger.store, engine)
        app.state.ledger, app.state.engine, app.state.read_side = ledger, engine, read_side
        app.state.read_role = reader_role(engine, settings.read_role)
        observability.started(app)
        read_side.start()
        try:
            yield
        finally:
            read_side.stop()
            engine.dispose()
            ledger.close()

    app = FastAPI(
        title="Inventory ledger",
        version="1",
        summary="Event-sourced, multi-tenant stock ledger: commands, read models, audit.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verify = verifier(settings)
    app.state.role_maps = RoleMaps()
    app.state.caller_checks = []
    app.add_middleware(ExactNumbers)
    app.add_middleware(RequestIds)
    problems.install(app)
    observability.install(app)
    app.include_router(health.router)
    app.include_router(stock_levels.router)
    app.include_router(stock_history.router)
    app.include_router(alert_log.router)
    app.include_router(insights.router)
    app.include_router(api_keys.router)
    app.include_router(catalog.router)
    app.include_router(stock.router)
    app.include_router(purchase_orders.router)
    app.include_router(sales_orders.router)
    app.include_router(trace.router)
    app.include_router(feed.router)
    app.include_router(exports.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    return app
