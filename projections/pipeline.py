"""A tenant's events applied in large batches to several projections at once, overlapped.

While the projections apply one batch, the next is read; each projection applies its batches
in its own thread and transactions (its rows and tracking together), so one projection's
database work overlaps the others' and the decoding of the next batch. On SQLite, whose writes
are serial anyway, the projections share one thread.

The interpreter's cyclic garbage collector is held off while batches are built: they allocate
millions of short-lived objects that reference counting frees, and a full collection among them
costs more than the decoding.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Engine

from eventstore.records import RecordedEvent
from eventstore.store import LedgerStore
from projections.events import LedgerEvent, decode
from projections.runner import Projection, Runner

#: Batches applied ahead of the one whose completion is awaited (memory: this many + 1).
AHEAD = 1


@dataclass(frozen=True)
class Failure:
    """A projection failed on the events after `after`: nothing of that batch was kept."""

    projection: str
    after: int
    error: Exception

    def __str__(self) -> str:
        return (
            f"{self.projection} failed in the events after position {self.after}:"
            f" {type(self.error).__name__}: {self.error}"
        )


@contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic cyclic garbage collection off; young objects collected on the way out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect(1)


def _worker(name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix=f"rebuild-{name}")


class Pipeline:
    """Applies one tenant's events to projections, batch after batch, up to a position."""

    def __init__(
        self,
        store: LedgerStore,
        engine: Engine,
        projections: Sequence[Projection],
        tenant_id: UUID,
        *,
        batch_size: int,
    ) -> None:
        self.store = store
        self.engine = engine
        self.projections = list(projections)
        self.tenant_id = tenant_id
        self.batch_size = batch_size
        wanted: set[str] = set()
        for projection in self.projections:
            if projection.kinds is None:
                self.kinds: frozenset[str] | None = None
                break
            wanted |= projection.kinds
        else:
            self.kinds = frozenset(wanted)
        self.stopped: set[str] = set()  # projections that failed: their later batches are skipped

    def run(
        self, positions: dict[str, int], head: int, on_batch: Callable[[int], None]
    ) -> Failure | None:
        """Applies the events after each projection's position up to `head`; `on_batch` gets
        the positions each completed batch covered. Stops at the first failure (recorded in
        the failing projection's failures table) and returns it."""
        positions = dict(positions)
        serial = self.engine.dialect.name == "sqlite"
        with ExitStack() as stack:
            stack.enter_context(collector_paused())
            reader = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="rebuild-read"))
            workers = {p.name: stack.enter_context(_worker(p.name)) for p in self.projections}
            if serial:
                shared = stack.enter_context(_worker("all"))
                workers = dict.fromkeys(workers, shared)
            low = min(positions.values())
            reading = self._read(reader, low, head)
            waiting: deque[tuple[int, list[Future[Failure | None]]]] = deque()
            failure: Failure | None = None
            while reading is not None and failure is None:
                last, recorded = reading.result()
                reading = self._read(reader, last, head)
                events = [decode(e) for e in recorded]
                applying = []
                for projection in self.projections:
                    before = positions[projection.name]
                    if before >= last:
                        continue
                    kinds = projection.kinds
                    mine = [
                        e
                        for e in events
                        if e.position > before and (kinds is None or e.kind in kinds)
                    ]
                    applying.append(
                        workers[projection.name].submit(self._apply, projection, mine, before, last)
                    )
                    positions[projection.name] = last
                waiting.append((last - low, applying))
                low = last
                while len(waiting) > AHEAD or (waiting and reading is None):
                    failure = self._settle(waiting.popleft(), on_batch) or failure
            while waiting:
                failure = self._settle(waiting.popleft(), on_batch) or failure
            if reading is not None:
                reading.cancel()
            return failure

    def _read(
        self, reader: ThreadPoolExecutor, after: int, head: int
    ) -> Future[tuple[int, list[RecordedEvent]]] | None:
        if after >= head:
            return None
        last = min(after + self.batch_size, head)
        return reader.submit(self._range, after, last)

    def _range(self, after: int, last: int) -> tuple[int, list[RecordedEvent]]:
        return last, self.store.read_range(self.tenant_id, after, last, self.kinds)

    @staticmethod
    def _settle(
        batch: tuple[int, list[Future[Failure | None]]], on_batch: Callable[[int], None]
    ) -> Failure | None:
        covered, applying = batch
        failures = [f for f in (future.result() for future in applying) if f is not None]
        if failures:
            return failures[0]
        on_batch(covered)
        return None

    def _apply(
        self, projection: Projection, events: list[LedgerEvent], before: int, last: int
    ) -> Failure | None:
        """One batch of one projection in one transaction with its tracking; on failure the
        batch is undone and the failure recorded (so the next attempt stops at once)."""
        if projection.name in self.stopped:
            return None
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    projection.apply(conn, self.tenant_id, events)
            except Exception as error:  # kept, so the next attempt stops at once and says why
                Runner.record_failure_on(conn, projection.name, self.tenant_id, before + 1, error)
                self.stopped.add(projection.name)
                return Failure(projection.name, before, error)
            Runner.track_on(conn, projection.name, self.tenant_id, before, last)
        return None
