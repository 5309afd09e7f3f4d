"""The runner loop follows live writes until stopped; several runners never double-apply; the
read side runs it in the background of a process unless switched off."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from uuid import UUID

import pytest
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, create_engine

from domain.errors import ProjectionLagging
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from eventstore.postgres import PostgresLedgerStore
from eventstore.store import LedgerStore
from ledger import read_side
from ledger.read_side import ReadSide
from ledger.settings import Settings
from ledger.wiring import Ledger
from projections.events import LedgerEvent
from projections.runner import Runner
from projections.stock_levels import StockLevels, stock_levels
from projections.waiting import tracked
from tests.following import (
    DEADLINE_SECONDS,
    on_hand,
    open_engine,
    open_store,
    own_postgres,
    receive,
    stocked_tenant,
)
from tests.racing import race

M = EventMetadata()


@pytest.fixture(scope="module")
def own_pg(pg_server: str) -> Iterator[str]:
    """A database of this module alone: a follower's first pass covers every tenant, and the
    shared one holds every other test's tenants."""
    with own_postgres(pg_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "own_pg"))


@pytest.fixture
def store(url: str) -> Iterator[LedgerStore]:
    with open_store(url) as opened:
        yield opened


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = open_engine(url)
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
            # this tenant only: the shared database holds other tests' tenants
            outcomes = race(4, lambda i: runners[i].run_tenant(app.tenant_id))
            assert not [o for o in outcomes if isinstance(o, Exception)]
            with engine.connect() as conn:
                levels = stock_levels(conn, app.tenant_id)
            assert [(s.on_hand, s.value) for s in levels] == [(30, 60)]
            mine = [p for p in runners[0].progress() if p.tenant_id == app.tenant_id]
            assert all(p.failed_at is None and p.lag == 0 for p in mine)
        finally:
            engine.dispose()


def projection_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ledger-projections"]


def test_the_read_side_follows_in_a_background_thread_until_stopped(
    url: str, store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "rs")
    side = ReadSide.from_settings(Settings(database_url=url), store, engine)
    side.start()
    side.start()  # already running: still one thread
    try:
        assert side.running
        assert len(projection_threads()) == 1
        position = receive(app, 3)
        assert side.wait_for_position(app.tenant_id, position, timeout=30) == position
        assert on_hand(engine, app.tenant_id) == 3
    finally:
        assert side.stop()
    assert not side.running
    assert projection_threads() == []


def test_with_projections_off_nothing_follows_and_reads_wait_for_another_runner(
    url: str, store: LedgerStore, engine: Engine
) -> None:
    settings = Settings(database_url=url, projections="off")
    side = ReadSide.from_settings(settings, store, engine)
    app = stocked_tenant(store, "off")
    position = receive(app, 2)
    side.start()
    assert not side.running
    assert projection_threads() == []
    with pytest.raises(ProjectionLagging):
        side.wait_for_position(app.tenant_id, position, timeout=0.2)
    read_side.runner(store, engine).run_tenant(app.tenant_id)  # another process's runner
    assert side.wait_for_position(app.tenant_id, position, timeout=0) == position
    assert side.stop()


@pytest.mark.parametrize(
    ("value", "enabled"), [("on", True), ("off", False), ("OFF", False), (" On ", True)]
)
def test_ledger_projections_switches_the_read_side_on_or_off(
    monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool
) -> None:
    monkeypatch.setenv("LEDGER_PROJECTIONS", value)
    assert Settings().projections_enabled is enabled


def test_the_read_side_is_on_unless_set_and_refuses_other_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEDGER_PROJECTIONS", raising=False)
    assert Settings().projections_enabled
    monkeypatch.setenv("LEDGER_PROJECTIONS", "sometimes")
    with pytest.raises(ValidationError, match="projections"):
        Settings()


class Gated(StockLevels):
    """Stock levels that hold one tenant's third batch until released."""

    def __init__(self, tenant_id: UUID) -> None:
        self.tenant_id, self.batches = tenant_id, 0
        self.holding, self.release = threading.Event(), threading.Event()

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        if tenant_id == self.tenant_id:
            self.batches += 1
            if self.batches == 3:
                self.holding.set()
                self.release.wait(DEADLINE_SECONDS)
        super().apply(conn, tenant_id, events)


def test_stopping_amid_a_long_catch_up_ends_after_the_batch_in_hand(
    store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "long")
    for _ in range(5):
        receive(app, 1)
    gated = Gated(app.tenant_id)
    side = ReadSide(Runner(store, engine, [gated], batch_size=2), interval=0.05)
    side.start()
    try:
        assert gated.holding.wait(DEADLINE_SECONDS)
        assert not side.stop(timeout=0.1)  # the third batch is held
    finally:
        gated.release.set()
    assert side.stop()
    with engine.connect() as conn:
        assert tracked(conn, app.tenant_id, ["stock_levels"]) == {"stock_levels": 6}
    assert store.head(app.tenant_id).position > 6
