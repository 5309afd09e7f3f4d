"""A follower killed with SIGKILL at random moments, while commands keep arriving, and restarted:
after a last catch-up the read models are the fold of the events, nothing applied twice or skipped.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from domain.ids import tenant_id_for
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import demo, read_side
from tests.following import (
    FOLLOW,
    M,
    caught_up,
    eventually,
    on_hand,
    open_engine,
    open_store,
    own_postgres,
    positions,
    receive,
    stocked_tenant,
)
from tests.test_projections import (
    check_audit_log,
    check_orders,
    folded,
    folded_lots,
    moved,
    on_hand_by_place,
    projected,
    projected_lots,
)
from tests.zygote import Zygote

SEED = 5_1729
SLUG = "killed-follower"
RESTARTS = 5
ROUND_EVENTS = 3


@pytest.fixture(scope="module")
def own_pg(pg_server: str) -> Iterator[str]:
    with own_postgres(pg_server) as url:
        yield url


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    with Zygote(tmp_path_factory.mktemp("followers") / "followers.log") as started:
        yield started


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "own_pg"))


class Writer:
    """Commands arriving all along: the demo's random trading, a few events at a time, paced."""

    def __init__(self, app: LedgerApplication, rng: random.Random) -> None:
        self.seeder = demo.Seeder(app, rng, M, events=0)
        self.seeder.setup()
        self.seeder.opening()  # every kind of activity once
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.write, name="commands")

    def write(self) -> None:
        try:
            while not self.done.is_set():
                self.seeder.target = self.seeder.head + ROUND_EVENTS
                self.seeder.trade()
                self.done.wait(self.seeder.rng.uniform(0.2, 0.6))
        except BaseException as error:
            self.errors.append(error)

    def writing(self) -> bool:
        """Whether commands still arrive (an error of the writer fails the test at once)."""
        if self.errors:
            raise self.errors[0]
        return True

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def applied(engine: Engine, app: LedgerApplication) -> int:
    """Events applied by all projections together."""
    return sum(positions(engine, app.tenant_id).values())


def run_and_kill(
    zygote: Zygote, url: str, engine: Engine, writer: Writer, rng: random.Random
) -> None:
    """Starts a follower, waits until it applies something, lets it go on for a random moment
    and kills it."""
    app = writer.seeder.app
    before = applied(engine, app)
    options = ["--batch", str(rng.choice((1, 2, 3, 5, 8))), "--interval", "0.05"]
    pid = zygote.start([*FOLLOW, *options], {"LEDGER_DATABASE_URL": url})
    eventually(
        lambda: writer.writing() and applied(engine, app) > before, "the follower applying events"
    )
    time.sleep(rng.uniform(0.0, 0.5))
    status = zygote.kill(pid)
    assert os.WIFSIGNALED(status)  # it was still following, not ended by an error
    assert os.WTERMSIG(status) == signal.SIGKILL


def test_a_follower_killed_at_random_moments_neither_skips_nor_repeats_an_event(
    url: str, zygote: Zygote
) -> None:
    rng = random.Random(SEED)
    with open_store(url) as store:
        app = LedgerApplication(tenant_id_for(SLUG), store.factory_for(tenant_id_for(SLUG)))
        app.create_tenant(SLUG, None, demo.TIMEZONE, M)
        engine = open_engine(url)
        try:
            writer = Writer(app, random.Random(SEED + 1))
            read_side.runner(store, engine).run_tenant(app.tenant_id)  # the opening history
            with writer:
                for _ in range(RESTARTS):
                    run_and_kill(zygote, url, engine, writer, rng)
            assert not writer.errors
            catch_up(store, engine, app)
            check_folds(store, engine, app)
        finally:
            engine.dispose()


def catch_up(store: LedgerStore, engine: Engine, app: LedgerApplication) -> None:
    """The last catch-up, in this process (a killed session may hold its locks a moment)."""
    runner = read_side.runner(store, engine)
    eventually(
        lambda: runner.run_tenant(app.tenant_id) >= 0 and caught_up(engine, store, app.tenant_id),
        "the final catch-up",
    )
    assert read_side.failures(engine) == {}


def check_folds(store: LedgerStore, engine: Engine, app: LedgerApplication) -> None:
    assert projected(engine, app.tenant_id) == folded(app)
    assert projected_lots(engine, app.tenant_id) == folded_lots(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)
    check_orders(engine, app)
    check_audit_log(engine, store, app.tenant_id)


def blocked_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(found and found[0])


@pytest.mark.postgres
def test_a_follower_killed_inside_a_batch_leaves_nothing_of_that_batch(
    own_pg: str, zygote: Zygote
) -> None:
    with open_store(own_pg) as store:
        app = stocked_tenant(store, "inside")
        receive(app, 2)
        engine = open_engine(own_pg)
        try:
            read_side.runner(store, engine).run_tenant(app.tenant_id)
            receive(app, 3)
            with psycopg.connect(own_pg) as blocker:  # holds stock levels' tracking row
                blocker.execute(
                    "SELECT 1 FROM projection_tracking"
                    " WHERE tenant_id = %s AND projection = 'stock_levels' FOR UPDATE",
                    (app.tenant_id,),
                )
                pid = zygote.start(FOLLOW, {"LEDGER_DATABASE_URL": own_pg})
                eventually(lambda: blocked_on_a_lock(own_pg), "the batch waiting to commit")
                zygote.kill(pid)
                blocker.rollback()
            assert on_hand(engine, app.tenant_id) == 2
            catch_up(store, engine, app)
            assert on_hand(engine, app.tenant_id) == 5
        finally:
            engine.dispose()
