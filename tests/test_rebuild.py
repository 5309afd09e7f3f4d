"""Rebuilding read models beside the live ones: equal to the fold, resumable, switched at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from uuid import UUID

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from domain.tenant import Tenant
from eventstore.store import LedgerStore
from ledger import read_side
from ledger.cli import app as cli
from projections.lots import Lots
from projections.movements import Movements
from projections.pipeline import AHEAD
from projections.rebuild import Rebuild, RebuildFailed, RebuildProgress
from projections.runner import Projection, Runner, kind_of
from projections.stock_levels import StockLevels
from tests.test_projections import (
    Failing,
    check_audit_log,
    check_orders,
    folded,
    folded_lots,
    moved,
    on_hand_by_place,
    projected,
    projected_lots,
    seeded,
)

M = EventMetadata()


def check_all(engine: Engine, store: LedgerStore, app: LedgerApplication) -> None:
    """Every read model of the tenant equals the fold of its events."""
    assert projected(engine, app.tenant_id) == folded(app)
    assert projected_lots(engine, app.tenant_id) == folded_lots(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)
    check_orders(engine, app)
    check_audit_log(engine, store, app.tenant_id)


def spoil(engine: Engine, tenant_id: UUID) -> None:
    """Alters every stock level and deletes every movement of a tenant, as a bad deploy might."""
    with engine.begin() as conn:
        tenant = tenant_id.hex if conn.dialect.name == "sqlite" else tenant_id
        conn.execute(
            text("UPDATE rm_stock_levels SET on_hand = '12345' WHERE tenant_id = :t"),
            {"t": tenant},
        )
        conn.execute(text("DELETE FROM rm_movements WHERE tenant_id = :t"), {"t": tenant})


def tracked(engine: Engine, tenant_id: UUID) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: Runner.position_on(conn, name, tenant_id)
            for name in ("stock_levels", "lots", "movements", "orders", "audit_log")
        }


def test_a_rebuild_of_every_projection_equals_the_fold_and_moves_the_tracking(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 150)
    read_side.runner(store, engine).run_tenant(app.tenant_id)
    spoil(engine, app.tenant_id)
    assert projected(engine, app.tenant_id) != folded(app)
    seen: list[RebuildProgress] = []
    with Rebuild(store, engine, read_side.projections(), batch_size=37) as rebuild:
        done = rebuild.run([app.tenant_id], seen.append)
    head = store.head(app.tenant_id).position
    assert done.switched
    assert done.total == done.done == head
    assert len(seen) >= head // 37
    assert seen[-1].switched
    check_all(engine, store, app)
    assert set(tracked(engine, app.tenant_id).values()) == {head}


def test_a_tenant_rebuild_leaves_the_other_tenants_rows_alone(
    store: LedgerStore, engine: Engine
) -> None:
    mine, other = seeded(store, 120), seeded(store, 120, rng_seed=3)
    runner = read_side.runner(store, engine)
    runner.run_tenant(mine.tenant_id)
    runner.run_tenant(other.tenant_id)
    spoil(engine, mine.tenant_id)
    spoil(engine, other.tenant_id)
    with Rebuild(store, engine, [StockLevels(), Lots(), Movements()]) as rebuild:
        rebuild.run([mine.tenant_id])
    assert projected(engine, mine.tenant_id) == folded(mine)
    assert moved(engine, mine.tenant_id) == on_hand_by_place(mine)
    assert projected(engine, other.tenant_id) != folded(other)  # not rebuilt: still spoilt
    assert moved(engine, other.tenant_id) == {}


class Interrupted(Exception):
    pass


def test_an_interrupted_rebuild_leaves_the_live_tables_serving_and_resumes(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 300)
    read_side.runner(store, engine).run_tenant(app.tenant_id)
    spoil(engine, app.tenant_id)
    spoilt = projected(engine, app.tenant_id)

    def stop_after_three(progress: RebuildProgress) -> None:
        if progress.done >= 3 * 40:
            raise Interrupted

    projections: list[Projection] = [StockLevels(), Lots(), Movements()]
    with (
        Rebuild(store, engine, projections, batch_size=40) as rebuild,
        pytest.raises(Interrupted),
    ):
        rebuild.run([app.tenant_id], stop_after_three)
    assert projected(engine, app.tenant_id) == spoilt  # the live version still serves
    with Rebuild(store, engine, projections, batch_size=40) as rebuild:
        built = rebuild._shadow_positions()
        # three batches were done, and those already being applied finished
        assert {built[(p.name, app.tenant_id)] for p in projections} == {(3 + AHEAD) * 40}
        done = rebuild.run([app.tenant_id])
    head = store.head(app.tenant_id).position
    assert done.total == head - min(built.values())  # resumed, not started again
    assert projected(engine, app.tenant_id) == folded(app)
    assert projected_lots(engine, app.tenant_id) == folded_lots(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)


def test_a_projection_failing_in_a_rebuild_switches_nothing(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 100)
    read_side.runner(store, engine).run_tenant(app.tenant_id)
    spoil(engine, app.tenant_id)
    spoilt = projected(engine, app.tenant_id), moved(engine, app.tenant_id)
    kinds = StockLevels.kinds
    bad = next(e.position for e in store.read(app.tenant_id, after=50) if kind_of(e.topic) in kinds)
    broken = Failing(app.tenant_id, position=bad)
    batch_start = (bad - 1) // 25 * 25
    with Rebuild(store, engine, [broken, Movements()], batch_size=25) as rebuild:
        with pytest.raises(
            RebuildFailed, match=f"stock_levels failed .* after position {batch_start}"
        ):
            rebuild.run([app.tenant_id])
        with pytest.raises(RebuildFailed, match=f"cannot apply {bad}"):  # kept until abandoned
            rebuild.run([app.tenant_id])
        assert (projected(engine, app.tenant_id), moved(engine, app.tenant_id)) == spoilt
        rebuild.drop()
    broken.position = -1
    with Rebuild(store, engine, [broken, Movements()], batch_size=25) as rebuild:
        rebuild.run([app.tenant_id])
    assert projected(engine, app.tenant_id) == folded(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)


def test_rebuilding_while_commands_and_the_live_runner_keep_going_ends_equal_to_the_fold(
    store: LedgerStore, engine: Engine
) -> None:
    app = seeded(store, 200)
    live = read_side.runner(store, engine, batch_size=7)
    live.run_tenant(app.tenant_id)
    stop = threading.Event()
    errors: list[BaseException] = []

    def trade() -> None:
        try:
            while not stop.is_set():
                app.receive("SCR-4X40", "BER1", "P-01", 3, "4.20", M)
                app.issue("SCR-4X40", "BER1", 1, "sale", M)
        except BaseException as error:  # reported by the test
            errors.append(error)

    follower = threading.Thread(
        target=read_side.follow, args=(live, stop), kwargs={"interval": 0.01, "idle_max": 0.02}
    )
    trader = threading.Thread(target=trade)
    trader.start()
    follower.start()
    try:
        time.sleep(0.3)
        with Rebuild(store, engine, read_side.projections(), batch_size=50) as rebuild:
            rebuild.run([app.tenant_id])
        time.sleep(0.3)
    finally:
        stop.set()
        trader.join(timeout=30)
        follower.join(timeout=30)
    assert not errors
    live.run_tenant(app.tenant_id)
    check_all(engine, store, app)
    assert set(tracked(engine, app.tenant_id).values()) == {store.head(app.tenant_id).position}


def ledger_env(url: str) -> dict[str, str]:
    return {**os.environ, "LEDGER_DATABASE_URL": url, "CI": "true"}


def test_a_rebuild_killed_at_random_moments_and_run_again_never_double_counts_or_skips(
    store: LedgerStore, engine: Engine, database_url: str
) -> None:
    app = seeded(store, 400)
    read_side.runner(store, engine).run_tenant(app.tenant_id)
    spoil(engine, app.tenant_id)
    slug = app.load(app.tenant_id, Tenant).slug
    command = [sys.executable, "-m", "ledger.cli", "projections", "rebuild", "--all"]
    command += ["--tenant", slug, "--batch", "20"]
    rng = random.Random(11)
    for _ in range(3):
        process = subprocess.Popen(
            command, env=ledger_env(database_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(0.8, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finished = subprocess.run(
        command,
        env=ledger_env(database_url),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "switched" in finished.stdout
    check_all(engine, store, app)


def test_the_cli_refuses_unclear_requests_in_one_line(database_url: str) -> None:
    runner = CliRunner()
    env = {"LEDGER_DATABASE_URL": database_url}
    for args, message in [
        ([], "name the projections to rebuild, or give --all"),
        (["--all", "lots"], "name the projections to rebuild, or give --all"),
        (["stock"], "unknown projection 'stock'"),
        (["lots", "--tenant", f"nobody-{uuid.uuid4().hex[:6]}"], "has no events"),
    ]:
        result = runner.invoke(cli, ["projections", "rebuild", *args], env=env)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {message}") or message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
