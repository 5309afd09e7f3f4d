"""The follower: woken by PostgreSQL's notifications, with a safety net; it outlives failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import OperationalError
from psycopg.rows import TupleRow
from sqlalchemy import Engine

from eventstore.records import TenantHead
from eventstore.store import LedgerStore
from ledger import following, read_side
from ledger.read_side import ReadSide
from projections.runner import Projection, Runner
from tests.following import (
    caught_up,
    eventually,
    on_hand,
    open_engine,
    open_store,
    own_postgres,
    receive,
    stocked_tenant,
)

NEVER = 3600.0  # a safety-net period no test waits out


@pytest.fixture(scope="module")
def own_pg(pg_server: str) -> Iterator[str]:
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


class Recording(Runner):
    """A runner that remembers the tenant of every catch-up it was asked for."""

    def __init__(self, store: LedgerStore, engine: Engine, projections: Sequence[Projection]):
        super().__init__(store, engine, projections)
        self.asked: list[UUID] = []

    def catch_up(self, projection: Projection, tenant_id: UUID, head: int | None = None) -> int:
        done = super().catch_up(projection, tenant_id, head)
        self.asked.append(tenant_id)
        return done


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The events each full pass of the follower applied, as the passes end."""
    ended: list[int] = []
    full_pass = following.full_pass

    def counted(runner: Runner, stop: threading.Event) -> int:
        applied = full_pass(runner, stop)
        ended.append(applied)
        return applied

    monkeypatch.setattr(following, "full_pass", counted)
    return ended


@pytest.mark.postgres
def test_an_append_wakes_the_follower_for_its_tenant_alone_before_any_safety_net_pass(
    own_pg: str, passes: list[int]
) -> None:
    with open_store(own_pg) as store:
        engine = open_engine(own_pg)
        quiet, busy = stocked_tenant(store, "quiet"), stocked_tenant(store, "busy")
        runner = Recording(store, engine, read_side.projections())
        side = ReadSide(runner, safety_net=NEVER)
        side.start()
        try:
            eventually(lambda: len(passes) == 1, "the first full pass")
            assert caught_up(engine, store, quiet.tenant_id)
            runner.asked.clear()
            receive(busy, 4)
            eventually(lambda: caught_up(engine, store, busy.tenant_id), "a catch-up")
            assert on_hand(engine, busy.tenant_id) == 4
            assert set(runner.asked) == {busy.tenant_id}
            assert len(passes) == 1
        finally:
            assert side.stop()
            engine.dispose()


@pytest.mark.postgres
def test_with_every_notification_lost_the_safety_net_pass_still_catches_up(
    own_pg: str, passes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = following.notified

    def lost(conn: psycopg.Connection[TupleRow], wait: float) -> dict[UUID, int]:
        heard(conn, wait)
        return {}

    monkeypatch.setattr(following, "notified", lost)
    with open_store(own_pg) as store:
        engine = open_engine(own_pg)
        app = stocked_tenant(store)
        side = ReadSide(read_side.runner(store, engine), safety_net=0.5)
        side.start()
        try:
            eventually(lambda: len(passes) == 1, "the first full pass")
            receive(app, 3)
            eventually(lambda: on_hand(engine, app.tenant_id) == 3, "a safety-net pass")
        finally:
            assert side.stop()
            engine.dispose()


def listeners(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (following.APPLICATION_NAME,),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.postgres
def test_a_dropped_listening_connection_is_opened_again_and_nothing_is_missed(
    own_pg: str, caplog: pytest.LogCaptureFixture
) -> None:
    with open_store(own_pg) as store:
        engine = open_engine(own_pg)
        app = stocked_tenant(store)
        side = ReadSide(read_side.runner(store, engine), interval=0.05, safety_net=NEVER)
        side.start()
        try:
            eventually(lambda: len(listeners(own_pg)) == 1, "a listening connection")
            (dropped,) = listeners(own_pg)
            with psycopg.connect(own_pg, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (dropped,))
            receive(app, 2)  # while no one listens
            eventually(
                lambda: listeners(own_pg) not in ([], [dropped]), "a new listening connection"
            )
            receive(app, 5)
            eventually(lambda: on_hand(engine, app.tenant_id) == 7, "the catch-up")
        finally:
            assert side.stop()
            engine.dispose()
    assert any(r.name == following.__name__ and r.levelno == logging.ERROR for r in caplog.records)


def test_a_pass_that_fails_is_logged_and_tried_again_until_it_succeeds(
    store: LedgerStore,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = stocked_tenant(store)
    receive(app, 6)
    failures = iter(range(2))
    every_head = store.heads

    def flaky() -> list[TenantHead]:
        if next(failures, None) is not None:
            raise OperationalError("connection refused: the database is down")
        return every_head()

    monkeypatch.setattr(store, "heads", flaky)
    side = ReadSide(read_side.runner(store, engine), interval=0.05, retry_max=0.1)
    side.start()
    try:
        eventually(lambda: on_hand(engine, app.tenant_id) == 6, "a pass after the failures")
    finally:
        assert side.stop()
    failed = [r for r in caplog.records if r.name == following.__name__]
    assert [r.levelno for r in failed] == [logging.ERROR, logging.ERROR]
    assert all("the database is down" in r.getMessage() for r in failed)
