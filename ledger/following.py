"""Following the event store: the projections caught up as events are recorded, until stopped.

On PostgreSQL every save notifies the tenant and its new head (see ``eventstore.postgres``); the
follower listens on a connection of its own and catches up just the tenants it hears of. A full
pass over every tenant runs after each (re)connection and every `safety_net` seconds, because a
notification sent while the listener was away is lost. On SQLite it polls every tenant, backing
off while nothing arrives. A pass that fails (the database briefly down, say) is logged and tried
again after a growing pause; the follower never gives up until it is stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy import Engine

from eventstore.postgres import CHANNEL
from projections.runner import Projection, Runner
from projections.waiting import tracked

log = logging.getLogger(__name__)

# The longest the follower waits for a notification before it looks at its stop event again.
STOP_CHECK_SECONDS = 0.2
CONNECT_TIMEOUT_SECONDS = 5
APPLICATION_NAME = "ledger-projections"


class Retry:
    """The pause after a failure: `first`, doubling up to `longest`, reset by a success."""

    def __init__(self, first: float, longest: float) -> None:
        self.first, self.longest = first, max(first, longest)
        self.pause = first

    def failed(self, stop: threading.Event, what: str, error: Exception) -> None:
        log.error(
            "projection follower: %s failed (%s: %s); trying again in %.2f s",
            what,
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
            self.pause,
            exc_info=error,
        )
        stop.wait(self.pause)
        self.pause = min(self.pause * 2, self.longest)

    def succeeded(self) -> None:
        self.pause = self.first


def catch_up_tenant(
    runner: Runner, stop: threading.Event, tenant_id: UUID, head: int | None = None
) -> int:
    """Every projection of one tenant up to `head` (default: its current head)."""
    if head is None:
        head = runner.store.head(tenant_id).position
    return sum(
        catch_up(runner, stop, projection, tenant_id, head) for projection in runner.projections
    )


def catch_up(
    runner: Runner, stop: threading.Event, projection: Projection, tenant_id: UUID, head: int
) -> int:
    """One projection of one tenant up to `head`, a batch at a time, so that a stop takes
    effect after the batch in hand, however long the backlog."""
    applied = 0
    while not stop.is_set():
        with runner.engine.connect() as conn:
            position = tracked(conn, tenant_id, [projection.name])[projection.name]
        if position >= head:
            break
        done = runner.catch_up(projection, tenant_id, min(head, position + runner.batch_size))
        if not done:  # nothing more, another runner on it, or a recorded failure
            break
        applied += done
    return applied


def full_pass(runner: Runner, stop: threading.Event) -> int:
    """Every tenant's pending events, like `Runner.run_once`, but stopping between batches."""
    applied = 0
    for head in runner.store.heads():
        if stop.is_set():
            break
        applied += catch_up_tenant(runner, stop, head.tenant_id, head.position)
    return applied


def follow(
    runner: Runner,
    stop: threading.Event,
    *,
    interval: float = 0.5,
    idle_max: float = 5.0,
    safety_net: float = 30.0,
    retry_max: float = 30.0,
) -> int:
    """Applies new events until `stop` is set; returns how many (all projections together)."""
    if runner.engine.dialect.name == "postgresql":
        listener = Listener(runner, stop, safety_net=safety_net, retry=Retry(interval, retry_max))
        return listener.run()
    return poll(runner, stop, interval=interval, idle_max=idle_max, retry_max=retry_max)


def poll(
    runner: Runner, stop: threading.Event, *, interval: float, idle_max: float, retry_max: float
) -> int:
    """Full passes: at once while there is work, then every `interval`, backing off to
    `idle_max` while nothing arrives."""
    applied, wait, retry = 0, interval, Retry(interval, retry_max)
    while not stop.is_set():
        started = time.monotonic()
        try:
            done = full_pass(runner, stop)
        except Exception as error:  # logged; the next pass tries again
            retry.failed(stop, "a catch-up pass", error)
            continue
        retry.succeeded()
        applied += done
        wait = interval if done else min(wait * 2, idle_max)
        if not done:
            stop.wait(max(0.0, wait - (time.monotonic() - started)))
    return applied


class Listener:
    """Catches up the tenants PostgreSQL notifies, with a full pass as the safety net."""

    def __init__(
        self, runner: Runner, stop: threading.Event, *, safety_net: float, retry: Retry
    ) -> None:
        self.runner, self.stop = runner, stop
        self.safety_net = safety_net
        self.retry = retry
        self.conninfo = listen_conninfo(runner.engine)
        self.applied = 0

    def run(self) -> int:
        while not self.stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    application_name=APPLICATION_NAME,
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    self.listen(conn)
            except Exception as error:  # logged; reconnects and starts with a full pass
                self.retry.failed(self.stop, "listening for new events", error)
        return self.applied

    def listen(self, conn: psycopg.Connection[TupleRow]) -> None:
        # Listening first, then the full pass: nothing committed before the LISTEN is missed.
        self.applied += full_pass(self.runner, self.stop)
        self.retry.succeeded()
        due = time.monotonic() + self.safety_net
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= due:
                self.applied += full_pass(self.runner, self.stop)
                due = time.monotonic() + self.safety_net
                continue
            for tenant_id, head in notified(conn, min(STOP_CHECK_SECONDS, due - now)).items():
                if self.stop.is_set():
                    break
                self.applied += catch_up_tenant(self.runner, self.stop, tenant_id, head)


def notified(conn: psycopg.Connection[TupleRow], wait: float) -> dict[UUID, int]:
    """The tenants notified within `wait` seconds (and those already queued), with the highest
    head each one announced."""
    heads: dict[UUID, int] = {}
    for note in conn.notifies(timeout=wait, stop_after=1):
        _note(heads, note.payload)
    if heads:  # take what else has arrived, without waiting
        for note in conn.notifies(timeout=0):
            _note(heads, note.payload)
    return heads


def _note(heads: dict[UUID, int], payload: str) -> None:
    tenant, _, position = payload.partition(":")
    try:
        tenant_id, head = UUID(tenant), int(position)
    except ValueError:
        log.warning("ignoring a notification on %s that names no tenant: %r", CHANNEL, payload)
        return
    heads[tenant_id] = max(head, heads.get(tenant_id, 0))


def listen_conninfo(engine: Engine) -> str:
    """The engine's database as a libpq URL (the follower's own connection, outside the pool)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
