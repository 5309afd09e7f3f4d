"""Rebuilds read models in new tables while the current ones keep serving, then switches.

The new version of each table of a projection lives beside the current one: in the PostgreSQL
schema `ledger_rebuild`, or in a SQLite database attached under that name. It is built from
position 0 in large batches, each batch decoded once for every projection being rebuilt and
tracked there like the live tables, so an interrupted rebuild resumes where it stopped.

The switch is one transaction for all the projections being rebuilt: it waits for their live
runners (an exclusive projection lock on PostgreSQL, the write lock on SQLite), applies the
events recorded meanwhile, replaces the live rows of the rebuilt tenants with the new version's
and moves their tracking. Readers keep seeing the old rows until it commits; if it fails,
nothing changed and the new version stays for the next attempt.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import Connection, Engine, delete, insert, inspect, select, text

from eventstore.store import LedgerStore
from projections.events import decode
from projections.pipeline import Pipeline
from projections.runner import Projection, Runner, kind_of, projection_lock_key
from projections.shadow import (
    SHADOW,
    TRACKING_TABLES,
    create_like,
    live_schema,
    shadow_engine,
    table_in,
)


class RebuildFailed(Exception):
    """A projection failed on an event while rebuilding: nothing was switched."""


@dataclass
class RebuildProgress:
    """How far a rebuild got: events applied of those there were to apply."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    switched: bool = False

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """Events per second so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before there is a rate."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class Rebuild:
    """Builds new versions of some projections' tables, then switches to them."""

    def __init__(
        self,
        store: LedgerStore,
        engine: Engine,
        projections: Sequence[Projection],
        *,
        batch_size: int = 50_000,
    ) -> None:
        self.store = store
        self.live = engine
        self.projections = list(projections)
        self.batch_size = batch_size
        self.sqlite = engine.dialect.name == "sqlite"
        self.engine = shadow_engine(engine)
        self.failed: str | None = None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Rebuild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the whole job ----------------------------------------------------------------------------

    def run(
        self,
        tenants: Sequence[UUID] | None = None,
        on_progress: Callable[[RebuildProgress], None] = lambda _: None,
    ) -> RebuildProgress:
        """Builds (or resumes) the new tables for `tenants` (None: every tenant), then switches."""
        with self._exclusive():
            return self._run(tenants, on_progress)

    def _run(
        self,
        tenants: Sequence[UUID] | None,
        on_progress: Callable[[RebuildProgress], None],
    ) -> RebuildProgress:
        self.failed = None
        self.prepare()
        heads = {h.tenant_id: h.position for h in self.store.heads()}
        scope = sorted(heads) if tenants is None else list(tenants)
        tracked = self._shadow_positions()
        total = sum(max(heads.get(t, 0) - min(self._start(tracked, t)), 0) for t in scope)
        progress = RebuildProgress(total)
        on_progress(progress)
        for tenant_id in scope:
            self._catch_up(tenant_id, heads.get(tenant_id, 0), progress, on_progress)
        self.switch(scope, all_tenants=tenants is None)
        progress.switched = True
        on_progress(progress)
        return progress

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """PostgreSQL: one rebuild of a projection at a time (SQLite serialises the batches)."""
        if self.sqlite:
            yield
            return
        with self.live.connect() as conn:
            keys = [zlib.crc32(f"rebuild\x1f{p.name}".encode()) - 2**31 for p in self.projections]
            for key, projection in zip(keys, self.projections, strict=True):
                if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
                    conn.rollback()
                    raise RebuildFailed(f"another rebuild of {projection.name} is running")
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
                conn.commit()

    # -- the new version's tables -----------------------------------------------------------------

    def tables(self) -> list[str]:
        return [table for p in self.projections for table in p.tables]

    def prepare(self) -> None:
        """Creates the new version's tables like the live ones; an old version whose columns no
        longer match the live table (a migration ran since) is dropped and started again."""
        with self.engine.begin() as conn:
            if not self.sqlite:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SHADOW}"))
            live, schema = inspect(conn), live_schema(conn)
            stale = False
            for table in [*TRACKING_TABLES, *self.tables()]:
                wanted = [c["name"] for c in live.get_columns(table, schema=schema)]
                found = []
                if live.has_table(table, schema=SHADOW):
                    found = [c["name"] for c in live.get_columns(table, schema=SHADOW)]
                if found and found != wanted:
                    stale = True
                    conn.execute(text(f"DROP TABLE {SHADOW}.{table}"))
                    found = []
                if not found:
                    create_like(conn, table)
            if stale:
                self._forget(conn, [p.name for p in self.projections])

    def drop(self) -> None:
        """Drops the new version's tables of these projections (an abandoned rebuild)."""
        with self.engine.begin() as conn:
            for table in self.tables():
                conn.execute(text(f"DROP TABLE IF EXISTS {SHADOW}.{table}"))
            if inspect(conn).has_table("projection_tracking", schema=SHADOW):
                self._forget(conn, [p.name for p in self.projections])

    def _forget(self, conn: Connection, names: list[str]) -> None:
        for name in TRACKING_TABLES:
            tracked = table_in(name, SHADOW, ["tenant_id", "projection"])
            conn.execute(delete(tracked).where(tracked.c.projection.in_(names)))

    def _shadow_positions(self) -> dict[tuple[str, UUID], int]:
        tracked = table_in("projection_tracking", SHADOW, ["tenant_id", "projection", "position"])
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tracked.c.projection, tracked.c.tenant_id, tracked.c.position)
            )
            return {(name, tenant): int(pos) for name, tenant, pos in rows}

    def _start(self, tracked: dict[tuple[str, UUID], int], tenant_id: UUID) -> list[int]:
        return [tracked.get((p.name, tenant_id), 0) for p in self.projections]

    # -- building ---------------------------------------------------------------------------------

    def _catch_up(
        self,
        tenant_id: UUID,
        head: int,
        progress: RebuildProgress,
        on_progress: Callable[[RebuildProgress], None],
    ) -> None:
        with self.engine.connect() as conn:
            for name, failed in self._failures(conn, tenant_id).items():
                raise RebuildFailed(f"{name} failed after position {failed[0] - 1}: {failed[1]}")
            positions = self._positions(conn, tenant_id)

        def advanced(covered: int) -> None:
            progress.done += covered
            on_progress(progress)

        pipeline = Pipeline(
            self.store, self.engine, self.projections, tenant_id, batch_size=self.batch_size
        )
        failure = pipeline.run(positions, head, advanced)
        if failure is not None:
            self.failed = f"{failure.projection} failed on tenant {tenant_id}: {failure}"
            raise RebuildFailed(self.failed)

    def _positions(self, conn: Connection, tenant_id: UUID) -> dict[str, int]:
        return {p.name: Runner.position_on(conn, p.name, tenant_id) for p in self.projections}

    def _batch(
        self, conn: Connection, tenant_id: UUID, limit: int, until: int | None = None
    ) -> int:
        """Applies the next batch (up to `until`) to every projection behind it; returns the
        number of positions it covered."""
        for name, failed in self._failures(conn, tenant_id).items():
            raise RebuildFailed(f"{name} failed after position {failed[0] - 1}: {failed[1]}")
        positions = self._positions(conn, tenant_id)
        low = min(positions.values())
        if until is not None:
            limit = min(limit, until - low)
            if limit <= 0:
                return 0
        recorded = self.store.read(tenant_id, after=low, limit=limit)
        if not recorded:
            return 0
        wanted = frozenset().union(*(p.kinds or {"*"} for p in self.projections))
        every = "*" in wanted
        decoded = [decode(e) for e in recorded if every or kind_of(e.topic) in wanted]
        last = recorded[-1].position
        for projection in self.projections:
            before = positions[projection.name]
            kinds = projection.kinds
            mine = [
                e for e in decoded if e.position > before and (kinds is None or e.kind in kinds)
            ]
            try:
                with conn.begin_nested():
                    projection.apply(conn, tenant_id, mine)
            except Exception as error:  # kept, so the next attempt stops at once and says why
                Runner.record_failure_on(conn, projection.name, tenant_id, before + 1, error)
                self.failed = (
                    f"{projection.name} failed on tenant {tenant_id} in the events after position"
                    f" {before}: {type(error).__name__}: {error}"
                )
                return 0
            Runner.track_on(conn, projection.name, tenant_id, before, last)
        return last - low

    def _failures(self, conn: Connection, tenant_id: UUID) -> dict[str, tuple[int, str]]:
        failed = table_in(
            "projection_failures", SHADOW, ["tenant_id", "projection", "position", "error"]
        )
        rows = conn.execute(
            select(failed.c.projection, failed.c.position, failed.c.error).where(
                failed.c.tenant_id == tenant_id,
                failed.c.projection.in_([p.name for p in self.projections]),
            )
        )
        return {name: (int(position), error) for name, position, error in rows}

    # -- switching --------------------------------------------------------------------------------

    def switch(self, tenants: Sequence[UUID], *, all_tenants: bool) -> None:
        """One transaction: the last events, then the new rows and tracking replace the live."""
        names = [p.name for p in self.projections]
        with self.engine.begin() as conn:
            if not self.sqlite:
                for name in sorted(names):
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": projection_lock_key(name)}
                    )
            heads = {t: self.store.head(t).position for t in tenants}
            for tenant_id in tenants:  # what the live runners apply after the switch, not this
                while self._batch(conn, tenant_id, self.batch_size * 10, until=heads[tenant_id]):
                    pass
                if self.failed is not None:
                    raise RebuildFailed(self.failed)
            keys = list(tenants)
            for table in self.tables():
                self._replace(conn, table, keys, all_tenants=all_tenants)
            for tracking in TRACKING_TABLES:
                self._replace(conn, tracking, keys, all_tenants=all_tenants, projections=names)
            for name in self.tables():
                conn.execute(delete(table_in(name, SHADOW, [])))
            self._forget(conn, names)

    def _replace(
        self,
        conn: Connection,
        name: str,
        tenants: list[UUID],
        *,
        all_tenants: bool,
        projections: list[str] | None = None,
    ) -> None:
        if not all_tenants and not tenants:
            return
        schema = live_schema(conn)
        columns = [c["name"] for c in inspect(conn).get_columns(name, schema=schema)]
        live = table_in(name, schema, columns)
        new = table_in(name, SHADOW, columns)
        rows = select(*[new.c[c] for c in columns])
        cleared = delete(live)
        if not all_tenants:
            rows = rows.where(new.c.tenant_id.in_(tenants))
            cleared = cleared.where(live.c.tenant_id.in_(tenants))
        if projections is not None:
            rows = rows.where(new.c.projection.in_(projections))
            cleared = cleared.where(live.c.projection.in_(projections))
        conn.execute(cleared)
        conn.execute(insert(live).from_select(columns, rows))
