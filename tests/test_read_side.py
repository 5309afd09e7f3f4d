"""The runner loop follows live writes until stopped; several runners never double-apply."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, pool

from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from eventstore.postgres import PostgresLedgerStore
from eventstore.store import LedgerStore
from ledger import read_side
from ledger.settings import Settings
from ledger.wiring import Ledger
from projections.stock_levels import stock_levels
from tests.racing import race

M = EventMetadata()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(
        Settings(database_url=database_url).sqlalchemy_url, poolclass=pool.NullPool
    )
    yield engine
    engine.dispose()


def test_following_applies_commands_as_they_are_recorded(
    store: LedgerStore, engine: Engine
) -> None:
    slug = f"f-{uuid.uuid4().hex[:10]}"
    app = Ledger(store).app(tenant_id_for(slug))
    app.create_tenant(slug, None, "UTC", M)
    app.register_product("BOLT", "Bolt", M)
    app.register_warehouse("WH", "Main", "UTC", M)
    app.add_bin("WH", "A1", M)
    runner, stop = read_side.runner(store, engine), threading.Event()
    follower = threading.Thread(
        target=read_side.follow, args=(runner, stop), kwargs={"interval": 0.05, "idle_max": 0.1}
    )
    follower.start()
    try:
        for _ in range(5):
            app.receive("BOLT", "WH", "A1", 2, "1.50", M)
        head = store.head(app.tenant_id).position
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(p.position == head for p in runner.progress() if p.tenant_id == app.tenant_id):
                break
            time.sleep(0.05)
    finally:
        stop.set()
        follower.join(timeout=20)
    assert not follower.is_alive()
    with engine.connect() as conn:
        levels = stock_levels(conn, app.tenant_id)
    assert [(s.sku, s.on_hand, s.value) for s in levels] == [("BOLT", 10, 15)]


@pytest.mark.postgres
def test_runners_racing_on_one_tenant_apply_each_event_once(pg_url: str) -> None:
    with PostgresLedgerStore(pg_url, pool_size=8) as store:
        slug = f"r-{uuid.uuid4().hex[:10]}"
        app = Ledger(store).app(tenant_id_for(slug))
        app.create_tenant(slug, None, "UTC", M)
        app.register_product("BOLT", "Bolt", M)
        app.register_warehouse("WH", "Main", "UTC", M)
        app.add_bin("WH", "A1", M)
        for _ in range(30):
            app.receive("BOLT", "WH", "A1", 1, "2", M)
        engine = create_engine(Settings(database_url=pg_url).sqlalchemy_url, pool_size=8)
        try:
            runners = [read_side.runner(store, engine, batch_size=4) for _ in range(4)]
            outcomes = race(4, lambda i: runners[i].run_once())
            assert not [o for o in outcomes if isinstance(o, Exception)]
            with engine.connect() as conn:
                levels = stock_levels(conn, app.tenant_id)
            assert [(s.on_hand, s.value) for s in levels] == [(30, 60)]
            mine = [p for p in runners[0].progress() if p.tenant_id == app.tenant_id]
            assert all(p.failed_at is None and p.lag == 0 for p in mine)
        finally:
            engine.dispose()
