"""Applies each tenant's new events to the projections, a batch per transaction, exactly once.

A batch's rows and the projection's tracking position are written in one transaction, so an
event takes effect once however often the runner is restarted. On PostgreSQL, a transaction-scoped
advisory lock per (projection, tenant) lets several runner processes share the work without
applying one tenant's events twice at once. A projection that fails on an event records the
failure and stops for that tenant; the other tenants go on.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast
from uuid import UUID

import eventsourcing.persistence
import sqlalchemy.exc
from sqlalchemy import Connection, Engine, Table, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from eventstore.store import LedgerStore
from projections.events import LedgerEvent, decode
from projections.schema import ProjectionFailure, ProjectionTracking

log = logging.getLogger(__name__)
#: Errors of the database connection rather than of an event: never recorded as a failure.
TRANSIENT: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
)
TRACKING = cast("Table", ProjectionTracking.__table__)
FAILURES = cast("Table", ProjectionFailure.__table__)


class TrackingMoved(Exception):
    """Another runner applied the same events first; this batch was rolled back."""


class NotYet(Exception):
    """A projection cannot apply these events yet (read models it reads are behind them); the
    batch was rolled back, nothing is recorded, and a later run tries again."""


class Projection(Protocol):
    """A read model fed by events: it applies a batch of one tenant's events in a transaction."""

    name: str

    @property
    def tables(self) -> tuple[str, ...]:
        """The read-model tables it alone writes (a rebuild builds new versions of them)."""

    @property
    def kinds(self) -> frozenset[str] | None:
        """The event kinds it applies; None: every event."""

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None: ...


@dataclass(frozen=True)
class Progress:
    """Where a projection stands for a tenant."""

    projection: str
    tenant_id: UUID
    position: int
    head: int
    failed_at: int | None

    @property
    def lag(self) -> int:
        return self.head - self.position


class Runner:
    """Catches the projections up with the store, tenant by tenant, in batches."""

    def __init__(
        self,
        store: LedgerStore,
        engine: Engine,
        projections: Sequence[Projection],
        *,
        batch_size: int = 2000,
    ) -> None:
        self.store = store
        self.engine = engine
        self.projections = list(projections)
        self.batch_size = batch_size

    def run_once(self) -> int:
        """Applies every tenant's pending events; returns how many events were applied."""
        applied = 0
        for head in self.store.heads():
            for projection in self.projections:
                applied += self.catch_up(projection, head.tenant_id, head.position)
        return applied

    def run_tenant(self, tenant_id: UUID) -> int:
        """Applies one tenant's pending events to every projection; returns how many."""
        head = self.store.head(tenant_id).position
        return sum(self.catch_up(p, tenant_id, head) for p in self.projections)

    def catch_up(self, projection: Projection, tenant_id: UUID, head: int | None = None) -> int:
        """Applies a tenant's events up to its head (or until a failure); returns the count.

        When a batch fails, its events are applied one at a time up to the one that fails,
        which is recorded: the tenant's progress stops exactly before it.
        """
        total, limit = 0, self.batch_size
        while True:
            try:
                done = self.step(projection, tenant_id, limit)
            except (TrackingMoved, NotYet):
                return total  # another runner is ahead, or it must wait: nothing was written
            except TRANSIENT:
                raise  # the database, not the event: the caller retries, nothing is recorded
            except Exception as error:  # recorded and reported; the other tenants go on
                if limit > 1:
                    limit = 1
                    continue
                self._record_failure(projection, tenant_id, error)
                return total
            if done is None:
                return total
            total += done
            if head is not None and self._tracked(projection, tenant_id) >= head:
                return total

    def step(self, projection: Projection, tenant_id: UUID, limit: int | None = None) -> int | None:
        """One batch in one transaction; None when there was nothing (or nothing allowed) to do."""
        with self.engine.begin() as conn:
            if not self._lock(conn, projection, tenant_id):
                return None  # another runner is on it
            if self._failed(conn, projection, tenant_id):
                return None
            tracked = self.position_on(conn, projection.name, tenant_id)
            recorded = self.store.read(tenant_id, after=tracked, limit=limit or self.batch_size)
            if not recorded:
                return None
            kinds = projection.kinds
            wanted = [decode(e) for e in recorded if kinds is None or kind_of(e.topic) in kinds]
            projection.apply(conn, tenant_id, wanted)
            self.track_on(conn, projection.name, tenant_id, tracked, recorded[-1].position)
            return len(recorded)

    def progress(self) -> list[Progress]:
        """Tracked position, head and failure of every projection for every tenant."""
        with self.engine.connect() as conn:
            tracked = {
                (row.projection, row.tenant_id): row.position
                for row in conn.execute(select(TRACKING))
            }
            failed = {
                (row.projection, row.tenant_id): row.position
                for row in conn.execute(select(FAILURES))
            }
        return [
            Progress(
                p.name,
                head.tenant_id,
                tracked.get((p.name, head.tenant_id), 0),
                head.position,
                failed.get((p.name, head.tenant_id)),
            )
            for head in self.store.heads()
            for p in self.projections
        ]

    def retry(self, projection: str, tenant_id: UUID) -> None:
        """Clears a recorded failure, so the next run tries that tenant's events again."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(FAILURES).where(
                    FAILURES.c.tenant_id == tenant_id, FAILURES.c.projection == projection
                )
            )

    # -- tracking ---------------------------------------------------------------------------------

    def _tracked(self, projection: Projection, tenant_id: UUID) -> int:
        with self.engine.connect() as conn:
            return self.position_on(conn, projection.name, tenant_id)

    @staticmethod
    def position_on(conn: Connection, projection: str, tenant_id: UUID) -> int:
        """The position a projection has applied for a tenant (0: none yet)."""
        found = conn.scalar(
            select(TRACKING.c.position).where(
                TRACKING.c.tenant_id == tenant_id, TRACKING.c.projection == projection
            )
        )
        return int(found or 0)

    @staticmethod
    def track_on(
        conn: Connection, projection: str, tenant_id: UUID, before: int, position: int
    ) -> None:
        """Moves the tracking from `before` to `position`, or raises TrackingMoved."""
        now = datetime.now(UTC)
        if before == 0:
            row = {"tenant_id": tenant_id, "projection": projection}
            try:
                with conn.begin_nested():
                    conn.execute(insert(TRACKING).values(**row, position=position, updated_at=now))
            except IntegrityError:
                raise TrackingMoved(
                    f"{projection}: {tenant_id} was tracked first by another runner"
                ) from None
            return
        moved = conn.execute(
            update(TRACKING)
            .where(
                TRACKING.c.tenant_id == tenant_id,
                TRACKING.c.projection == projection,
                TRACKING.c.position == before,
            )
            .values(position=position, updated_at=now)
        )
        if moved.rowcount != 1:  # another runner moved it first: this batch must not count
            raise TrackingMoved(f"{projection}: tracking of {tenant_id} moved concurrently")

    @staticmethod
    def _lock(conn: Connection, projection: Projection, tenant_id: UUID) -> bool:
        """PostgreSQL: this projection is not being switched by a rebuild, and no other
        runner is on this tenant. SQLite writers are serialised by the database itself."""
        if conn.dialect.name != "postgresql":
            return True
        shared = conn.scalar(
            text("SELECT pg_try_advisory_xact_lock_shared(:k)"),
            {"k": projection_lock_key(projection.name)},
        )
        if not shared:
            return False
        key = tenant_lock_key(projection.name, tenant_id)
        return bool(conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}))

    @staticmethod
    def _failed(conn: Connection, projection: Projection, tenant_id: UUID) -> bool:
        found = conn.scalar(
            select(FAILURES.c.position).where(
                FAILURES.c.tenant_id == tenant_id, FAILURES.c.projection == projection.name
            )
        )
        return found is not None

    def _record_failure(self, projection: Projection, tenant_id: UUID, error: Exception) -> None:
        position = self._tracked(projection, tenant_id) + 1
        log.exception(
            "projection %s failed for tenant %s at %s", projection.name, tenant_id, position
        )
        try:
            with self.engine.begin() as conn:
                self.record_failure_on(conn, projection.name, tenant_id, position, error)
        except IntegrityError:
            pass  # another runner met the same event first and recorded it: one record stands

    @staticmethod
    def record_failure_on(
        conn: Connection, projection: str, tenant_id: UUID, position: int, error: Exception
    ) -> None:
        conn.execute(
            insert(FAILURES).values(
                tenant_id=tenant_id,
                projection=projection,
                position=position,
                error=f"{type(error).__name__}: {error}"[:2000],
                failed_at=datetime.now(UTC),
            )
        )


def kind_of(topic: str) -> str:
    """An event kind (e.g. "StockItem.Received") from its topic."""
    return topic.rpartition(":")[2]


def tenant_lock_key(projection: str, tenant_id: UUID) -> int:
    """The PostgreSQL advisory lock a runner holds while it applies a batch of one tenant's
    events to one projection."""
    return zlib.crc32(f"{projection}\x1f{tenant_id}".encode()) - 2**31


def projection_lock_key(projection: str) -> int:
    """The PostgreSQL advisory lock a rebuild's switch holds exclusively and runners share."""
    return zlib.crc32(f"projection\x1f{projection}".encode()) - 2**31
