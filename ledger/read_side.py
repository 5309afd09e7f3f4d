"""The read side's wiring: the read-model engine, the projections, and a runner loop."""

from __future__ import annotations

import threading
import time
from uuid import UUID

from sqlalchemy import Engine, create_engine, select

from eventstore.store import LedgerStore
from ledger.settings import Settings
from projections.audit_log import AuditLog
from projections.catalog import Catalog
from projections.kpis import KpiFacts
from projections.lots import Lots
from projections.movements import Movements
from projections.orders import Orders
from projections.runner import Projection, Runner
from projections.schema import ProjectionFailure
from projections.stock_levels import StockLevels


def projections() -> list[Projection]:
    """Every read model the runner keeps up to date."""
    return [StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog(), KpiFacts()]


def read_engine(settings: Settings) -> Engine:
    """The read models' engine: the same database as the event store."""
    return create_engine(settings.sqlalchemy_url, pool_pre_ping=True)


def runner(store: LedgerStore, engine: Engine, *, batch_size: int = 2000) -> Runner:
    return Runner(store, engine, projections(), batch_size=batch_size)


def follow(
    runner: Runner, stop: threading.Event, *, interval: float = 0.5, idle_max: float = 5.0
) -> int:
    """Applies new events until `stop` is set: at once while there is work, then polling at
    `interval`, backing off to `idle_max` while nothing arrives. Returns the events applied."""
    applied, wait = 0, interval
    while not stop.is_set():
        started = time.monotonic()
        done = runner.run_once()
        applied += done
        wait = interval if done else min(wait * 2, idle_max)
        if not done:
            stop.wait(max(0.0, wait - (time.monotonic() - started)))
    return applied


def failures(engine: Engine) -> dict[tuple[str, UUID], tuple[int, str]]:
    """Recorded projection failures: (projection, tenant) -> (position, error)."""
    table = ProjectionFailure.__table__
    with engine.connect() as conn:
        return {
            (row.projection, row.tenant_id): (row.position, row.error)
            for row in conn.execute(select(table))
        }
