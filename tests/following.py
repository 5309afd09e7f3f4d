"""Helpers of the follower tests: a database of their own, a small tenant, waiting for a state."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from uuid import UUID

import pytest
from sqlalchemy import Engine, create_engine, pool

from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.postgres import PostgresLedgerStore
from eventstore.sqlite import SQLiteLedgerStore
from eventstore.store import LedgerStore
from ledger import migrate, read_side
from ledger.settings import Settings
from projections.stock_levels import stock_levels
from projections.waiting import tracked
from tests.pgserver import fresh_database

M = EventMetadata()
NAMES = tuple(p.name for p in read_side.projections())
DEADLINE_SECONDS = 30.0


@contextlib.contextmanager
def own_postgres(server_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of these tests alone: no other test's tenants in it."""
    with fresh_database(server_url, f"ledger_follow_{uuid.uuid4().hex[:12]}") as url:
        migrate.upgrade(Settings(database_url=url).sqlalchemy_url, partitions=4)
        yield url


FOLLOW = ["projections", "run", "--follow"]


def follow_command(url: str, *options: str) -> tuple[list[str], dict[str, str]]:
    """`ledger projections run --follow` in a process of its own: its command and environment."""
    command = [sys.executable, "-m", "ledger.cli", *FOLLOW, *options]
    return command, {**os.environ, "LEDGER_DATABASE_URL": url}


def stop_process(process: subprocess.Popen[str]) -> None:
    """Kills the process if it is still running (a failed test leaves nothing behind)."""
    if process.poll() is None:
        process.kill()
        process.wait()


def open_store(url: str) -> LedgerStore:
    if url.startswith("sqlite:///"):
        return SQLiteLedgerStore(url.removeprefix("sqlite:///"), pool_size=4)
    return PostgresLedgerStore(url, pool_size=4, max_overflow=4)


def open_engine(url: str) -> Engine:
    return create_engine(Settings(database_url=url).sqlalchemy_url, poolclass=pool.NullPool)


def stocked_tenant(store: LedgerStore, prefix: str = "f") -> LedgerApplication:
    """A tenant with one product, one warehouse and one bin: ready to receive."""
    slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
    app = LedgerApplication(tenant_id_for(slug), store.factory_for(tenant_id_for(slug)))
    app.create_tenant(slug, None, "UTC", M)
    app.register_product("BOLT", "Bolt", M)
    app.register_warehouse("WH", "Main", "UTC", M)
    app.add_bin("WH", "A1", M)
    return app


def receive(app: LedgerApplication, quantity: int = 1) -> int:
    """Receives bolts; returns the position appended."""
    return app.receive("BOLT", "WH", "A1", quantity, "2", M).position


def on_hand(engine: Engine, tenant_id: UUID) -> Decimal:
    with engine.connect() as conn:
        return sum((row.on_hand for row in stock_levels(conn, tenant_id)), Decimal(0))


def positions(engine: Engine, tenant_id: UUID) -> dict[str, int]:
    """The position every projection has applied for the tenant."""
    with engine.connect() as conn:
        return tracked(conn, tenant_id, NAMES)


def caught_up(engine: Engine, store: LedgerStore, tenant_id: UUID) -> bool:
    head = store.head(tenant_id).position
    return all(position == head for position in positions(engine, tenant_id).values())


def eventually(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS) -> None:
    """Waits for the condition, failing the test if it does not hold by the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)
