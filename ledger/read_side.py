"""The read side's wiring: the read-model engine, the projections, the follow loop, and the
background thread that runs it inside a process (unless ``LEDGER_PROJECTIONS=off``)."""

from __future__ import annotations

import logging
import threading
from uuid import UUID

from sqlalchemy import Engine, create_engine, select

from eventstore.store import LedgerStore
from ledger import following, reactions
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
from projections.waiting import wait_for_position

log = logging.getLogger(__name__)


def projections() -> list[Projection]:
    """Every read model the runner keeps up to date."""
    return [StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog(), KpiFacts()]


def read_engine(settings: Settings) -> Engine:
    """The read models' engine: the same database as the event store."""
    return create_engine(settings.sqlalchemy_url, pool_pre_ping=True)


def runner(
    store: LedgerStore,
    engine: Engine,
    *,
    batch_size: int = 2000,
    settings: Settings | None = None,
) -> Runner:
    """The read models' runner; with `settings`, also what reacts to events in this process
    (alerts and webhook deliveries, unless Kafka consumers run them): see ledger.reactions."""
    found = projections()
    if settings is not None:
        found += reactions.reactors(settings, store)
    return Runner(store, engine, found, batch_size=batch_size)


def follow(
    runner: Runner,
    stop: threading.Event,
    *,
    interval: float = 0.5,
    idle_max: float = 5.0,
    safety_net: float = 30.0,
    retry_max: float = 30.0,
) -> int:
    """Applies new events until `stop` is set; returns the events applied.

    On PostgreSQL it wakes for the tenants the store notifies, with a full pass every
    `safety_net` seconds; on SQLite it polls at `interval`, backing off to `idle_max` while
    nothing arrives. A failed pass is logged and tried again, pausing up to `retry_max`.
    """
    return following.follow(
        runner,
        stop,
        interval=interval,
        idle_max=idle_max,
        safety_net=safety_net,
        retry_max=retry_max,
    )


class ReadSide:
    """The read models kept up to date by a background thread of this process (unless off)."""

    def __init__(
        self,
        runner: Runner,
        *,
        enabled: bool = True,
        wait_timeout: float = 5.0,
        interval: float = 0.5,
        idle_max: float = 5.0,
        safety_net: float = 30.0,
        retry_max: float = 30.0,
    ) -> None:
        self.runner = runner
        self.enabled = enabled
        self.wait_timeout = wait_timeout
        self.pacing = {
            "interval": interval,
            "idle_max": idle_max,
            "safety_net": safety_net,
            "retry_max": retry_max,
        }
        self.applied = 0
        #: Webhook deliveries and alert sweeps beside the runner (none unless set).
        self.reactions: reactions.Reactions | None = None
        #: What a read waits for: the read models, not what reacts to events.
        self.read_models = [p.name for p in projections()]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: LedgerStore, engine: Engine) -> ReadSide:
        side = cls(
            runner(store, engine, settings=settings),
            enabled=settings.projections_enabled,
            wait_timeout=settings.min_position_timeout,
        )
        side.reactions = reactions.Reactions(settings, engine)
        return side

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Starts following in the background; does nothing when off or already running."""
        if not self.enabled:
            log.info("projections are off in this process (LEDGER_PROJECTIONS=off)")
            return
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="ledger-projections", daemon=True)
        self._thread.start()
        if self.reactions is not None:
            self.reactions.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stops following and waits for the thread; whether it ended within `timeout`."""
        self._stop.set()
        if self.reactions is not None:
            self.reactions.stop(timeout)
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the projection thread did not stop within %.1f s", timeout)
            return False
        self._thread = None
        return True

    def wait_for_position(
        self, tenant_id: UUID, position: int, timeout: float | None = None
    ) -> int:
        """Waits until every read model has reached the tenant's position (read your writes)."""
        return wait_for_position(
            self.runner.engine,
            tenant_id,
            position,
            projections=[p for p in self.read_models if p in self._running()],
            timeout=self.wait_timeout if timeout is None else timeout,
        )

    def _running(self) -> set[str]:
        return {p.name for p in self.runner.projections}

    def lag(self) -> dict[str, int]:
        """Events each read model has still to apply, summed over the tenants (the head's
        position minus the projection's, for every tenant that has events)."""
        behind = dict.fromkeys((p.name for p in self.runner.projections), 0)
        for progress in self.runner.progress():
            behind[progress.projection] = behind.get(progress.projection, 0) + max(progress.lag, 0)
        return behind

    def __enter__(self) -> ReadSide:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _follow(self) -> None:
        self.applied += follow(self.runner, self._stop, **self.pacing)


def failures(engine: Engine) -> dict[tuple[str, UUID], tuple[int, str]]:
    """Recorded projection failures: (projection, tenant) -> (position, error)."""
    table = ProjectionFailure.__table__
    with engine.connect() as conn:
        return {
            (row.projection, row.tenant_id): (row.position, row.error)
            for row in conn.execute(select(table))
        }
