"""Bulk seeding: the ledger's own commands against aggregates held in memory, saved in batches.

A demo seed of a million events cannot afford a transaction, an idempotency lookup and a dozen
stream reads per command. `BulkLedgerApplication` runs the same commands through the same
`run` (rules, results, idempotency records, one save per command), but its repository lends the
aggregates it holds instead of reading them, and its recorder buffers each save
(`ledger.seed_buffer`): a writer thread writes thousands of events per transaction, with the
positions, hash chain and idempotency records a save one by one would write, while the commands
go on. Snapshots are taken from the held aggregate at its version and written after their events;
one due at an earlier version of the same save is read from the database at the next flush.

It assumes it is the tenant's only writer while it runs (a flush refuses positions that moved).
A command refused after changing a lent aggregate would leave it changed in memory: the buffer
is then written and that aggregate read again from the database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent, Repository
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import ApplicationRecorder, EventStore, Recording

from domain.application import SNAPSHOTTED, TenantRepository, replay
from domain.commands import R
from domain.idempotency import IdempotencyRecord
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore, TenantFactory
from ledger.demo_catalog import KEY_PREFIX
from ledger.seed_buffer import BufferedRecorder, BufferedSnapshots
from ledger.seed_writer import BackgroundWriter

#: Events buffered before they are written (one transaction each).
FLUSH_EVENTS = 5_000
#: Aggregates kept in memory after a flush, the most recently used (the others are read again).
HELD_AGGREGATES = 20_000

Aggregate = MutableOrImmutableAggregate[UUID]


class HeldRepository(TenantRepository):
    """Lends the aggregates it holds; reads the others once; knows which ids exist."""

    def __init__(self, events: EventStore[UUID], snapshots: EventStore[UUID] | None) -> None:
        super().__init__(event_store=events, snapshot_store=snapshots)
        self.held: OrderedDict[UUID, Any] = OrderedDict()
        self.known: set[UUID] = set()
        self.lent: dict[UUID, Any] = {}

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = replay,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        if version is not None:
            return super().get(aggregate_id, version=version, projector_func=projector_func)
        aggregate = self.held.get(aggregate_id)
        if aggregate is None:
            if aggregate_id not in self.known:
                raise AggregateNotFoundError(f"Aggregate {aggregate_id!r} not found.")
            aggregate = super().get(aggregate_id, projector_func=projector_func)
            self.held[aggregate_id] = aggregate
        else:
            self.held.move_to_end(aggregate_id)
        self.lent[aggregate_id] = aggregate
        return aggregate

    def hold(self, aggregates: Iterable[Any]) -> None:
        for aggregate in aggregates:
            self.held[aggregate.id] = aggregate
            self.held.move_to_end(aggregate.id)
            self.known.add(aggregate.id)

    def trim(self, size: int) -> None:
        while len(self.held) > size:
            self.held.popitem(last=False)


class BulkLedgerApplication(LedgerApplication):
    """A tenant's ledger for one writer that records in large batches (see the module)."""

    def __init__(
        self,
        tenant_id: UUID,
        factory: TenantFactory,
        *,
        snapshot_interval: int = 20,
        snapshotted: tuple[type[Aggregate], ...] = SNAPSHOTTED,
        clock: Callable[[], datetime] | None = None,
        flush_events: int = FLUSH_EVENTS,
    ) -> None:
        self.store: LedgerStore = factory.store
        self.writer = BackgroundWriter()
        self.flush_events = flush_events
        self.deferred: list[tuple[UUID, int]] = []  # snapshots due, taken at the next flush
        self.due: list[tuple[UUID, int]] = []  # snapshots due, taken at this flush
        self.refused_after_changes = self.deferred_taken = 0
        self.closed = False
        extra = {} if clock is None else {"clock": clock}
        super().__init__(
            tenant_id,
            factory,
            snapshot_interval=snapshot_interval,
            snapshotted=snapshotted,
            **extra,
        )
        self.held.known.update(event.stream_id for event in self.store.iter_events(tenant_id))

    @classmethod
    def like(cls, app: LedgerApplication, **kwargs: Any) -> BulkLedgerApplication:
        """A bulk application for the tenant, store, snapshots and clock of `app`."""
        factory = app.factory
        if not isinstance(factory, TenantFactory):
            raise TypeError("bulk seeding needs an application on a LedgerStore")
        intervals = app.snapshotting_intervals
        return cls(
            app.tenant_id,
            factory,
            snapshot_interval=next(iter(intervals.values()), 0),
            snapshotted=tuple(intervals) or SNAPSHOTTED,
            clock=app.clock,
            **kwargs,
        )

    # -- construction: the buffering recorders and the holding repository -----------------------

    def construct_recorder(self) -> ApplicationRecorder:
        return BufferedRecorder(self.store, self.tenant_id, self.writer)

    def construct_snapshot_store(self) -> EventStore[UUID]:
        real = self.factory.aggregate_recorder(purpose="snapshots")
        recorder = BufferedSnapshots(real, self.writer)
        return self.factory.event_store(mapper=self.mapper, recorder=recorder)

    def construct_repository(self) -> Repository[UUID]:
        return HeldRepository(self.events, self.snapshots)

    @property
    def buffer(self) -> BufferedRecorder:
        return cast("BufferedRecorder", self.recorder)

    @property
    def held(self) -> HeldRepository:
        return cast("HeldRepository", self.repository)

    # -- running and saving -----------------------------------------------------------------------

    def run(
        self,
        command: str,
        request: dict[str, Any],
        meta: EventMetadata,
        action: Callable[[], tuple[Any, R]],
        replay: Callable[[IdempotencyRecord], R],
    ) -> R:
        """The command as `CommandApplication.run` runs it; every few thousand events the
        buffer is written."""
        key = meta.idempotency_key
        if key is not None and key.startswith(KEY_PREFIX):
            self.buffer.vouch(key)  # the demo's keys are new in the tenant it fills
        self.held.lent.clear()
        try:
            result = super().run(command, request, meta, action, replay)
        finally:
            if key is not None:
                self.buffer.fresh.discard(key)
            spoiled = [a.id for a in self.held.lent.values() if a.pending_events]
            self.held.lent.clear()
            if spoiled:  # changed in memory by a refused command: read again once written
                self.refused_after_changes += 1
                self.flush(wait=True)
                for aggregate_id in spoiled:
                    self.held.held.pop(aggregate_id, None)
        if self.buffer.buffered >= self.flush_events:
            self.flush()
        return result

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        recordings = super()._record(processing_event)
        self.held.hold(processing_event.aggregates.values())
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshots of the saved aggregates at their version; one at an earlier version of
        this save is read from the database at the flush after next (see `flush`)."""
        intervals = self.snapshotting_intervals
        if self.snapshots is None or not intervals:
            return
        for event in processing_event.events:
            aggregate: Any = processing_event.aggregates.get(event.originator_id)
            interval = intervals.get(type(aggregate))
            if interval is None or event.originator_version % interval:
                continue
            if aggregate.version == event.originator_version:
                snapshot_class: Any = getattr(type(aggregate), "Snapshot", self.snapshot_class)
                self.snapshots.put([snapshot_class.take(aggregate)])
            else:
                self.deferred.append((event.originator_id, event.originator_version))

    def flush(self, *, wait: bool = False) -> None:
        """Hands the buffered events and snapshots to the writer (`wait`: until written).

        First the snapshots due at earlier versions at the previous flush are read from the
        database (once the writer has written those versions).
        """
        snapshots = self.snapshots
        if snapshots is not None and self.due:
            self.writer.drain()
            self.deferred_taken += len(self.due)
            for aggregate_id, version in self.due:
                self.take_snapshot(aggregate_id, version=version)
        self.due, self.deferred = self.deferred, []
        recorder = snapshots.recorder if snapshots is not None else None
        then = recorder.handed() if isinstance(recorder, BufferedSnapshots) else None
        self.buffer.flush(then)
        self.held.trim(HELD_AGGREGATES)
        if wait:
            self.writer.drain()

    def close(self) -> None:
        """Writes everything (snapshots due included) and stops the writer."""
        if self.closed:
            return
        self.closed = True
        try:
            self.flush(wait=True)
            if self.due:
                self.flush(wait=True)
        finally:
            self.writer.close()
        super().close()

    def abandon(self) -> None:
        """Stops the writer; what is still buffered is not written."""
        self.closed = True
        self.writer.close()


@contextmanager
def bulk_application(app: LedgerApplication, **kwargs: Any) -> Iterator[BulkLedgerApplication]:
    """A bulk application like `app`; what it buffered is written when the block ends."""
    bulk = BulkLedgerApplication.like(app, **kwargs)
    try:
        yield bulk
    except BaseException:
        bulk.abandon()
        raise
    bulk.close()
