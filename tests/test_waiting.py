"""Reading your own writes: waiting until the read models reach a position, or saying why not."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from domain.errors import ProjectionFailed, ProjectionLagging
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import read_side
from projections.lots import Lots
from projections.runner import Runner
from projections.stock_levels import StockLevels
from projections.waiting import wait_for_position
from tests.following import NAMES, on_hand, open_engine, positions, receive, stocked_tenant
from tests.test_projections import Failing

NEVER = 3600.0  # a timeout no test waits out: failing fast is the only way to finish


def last_receipt(store: LedgerStore, app: LedgerApplication) -> int:
    """The position of the tenant's last StockItem.Received (an event stock levels apply)."""
    return [e.position for e in store.read(app.tenant_id) if e.topic.endswith(".Received")][-1]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


def test_waiting_returns_once_every_read_model_has_reached_the_position(
    store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "w")
    position = receive(app, 5)
    runner = read_side.runner(store, engine, batch_size=2)
    catching_up = threading.Thread(target=runner.run_tenant, args=(app.tenant_id,))
    catching_up.start()
    try:
        reached = wait_for_position(engine, app.tenant_id, position, projections=NAMES, timeout=30)
        assert reached == position
        assert min(positions(engine, app.tenant_id).values()) >= position
        assert on_hand(engine, app.tenant_id) == 5
    finally:
        catching_up.join()


def test_a_position_already_reached_is_answered_even_with_no_time_to_wait(
    store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "w")
    first = receive(app, 1)
    head = receive(app, 1)
    read_side.runner(store, engine).run_tenant(app.tenant_id)
    assert wait_for_position(engine, app.tenant_id, first, projections=NAMES, timeout=0) == head


def test_read_models_still_behind_at_the_timeout_raise_projection_lagging(
    store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "w")
    position = receive(app, 2)
    Runner(store, engine, [StockLevels()]).run_tenant(app.tenant_id)
    names = ("stock_levels", "lots")
    with pytest.raises(ProjectionLagging) as raised:
        wait_for_position(engine, app.tenant_id, position, projections=names, timeout=0.2)
    error = raised.value
    assert (error.code, error.retryable) == ("projection-lagging", True)
    assert (error.wanted, error.reached, error.lagging) == (position, 0, ("lots",))
    assert not isinstance(error, ProjectionFailed)
    assert wait_for_position(engine, app.tenant_id, position, projections=["stock_levels"]) == (
        position
    )


@pytest.mark.timeout(60)
def test_a_read_model_stopped_by_a_failure_fails_the_wait_at_once(
    store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "w")
    receive(app, 1)
    receive(app, 1)
    broken = last_receipt(store, app)
    head = receive(app, 1)
    Runner(store, engine, [Failing(app.tenant_id, broken), Lots()]).run_tenant(app.tenant_id)
    with pytest.raises(ProjectionFailed) as raised:
        wait_for_position(
            engine, app.tenant_id, head, projections=("stock_levels", "lots"), timeout=NEVER
        )
    error = raised.value
    assert (error.projection, error.failed_at, error.reached) == (
        "stock_levels",
        broken,
        broken - 1,
    )
    assert error.code == "projection-lagging"
    assert f"cannot apply {broken}" in error.error
    assert "stock_levels" in str(error)


def test_a_failure_beyond_the_position_waited_for_does_not_matter(
    store: LedgerStore, engine: Engine
) -> None:
    app = stocked_tenant(store, "w")
    wanted = receive(app, 1)
    receive(app, 1)
    broken = last_receipt(store, app)
    Runner(store, engine, [Failing(app.tenant_id, broken)]).run_tenant(app.tenant_id)
    assert (
        wait_for_position(engine, app.tenant_id, wanted, projections=["stock_levels"], timeout=0)
        == wanted
    )


def test_waiting_needs_at_least_one_read_model(store: LedgerStore, engine: Engine) -> None:
    app = stocked_tenant(store, "w")
    with pytest.raises(ValueError, match="projection"):
        wait_for_position(engine, app.tenant_id, 1, projections=[], timeout=0)
