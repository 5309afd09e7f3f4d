"""Write-behind recorders for bulk seeding: saves kept in memory, written in large batches.

Each save a command makes is buffered with its own metadata and idempotency record, at the
positions it will have. `BufferedRecorder.flush` hands the buffer to a writer thread
(`ledger.seed_writer`), which writes it in one transaction while the commands go on, then the
snapshots taken meanwhile. If the database gives other positions than the ones handed out,
someone else wrote to the tenant meanwhile: that write fails, writes nothing, and the next flush
or read raises its error. A read from the database first waits for the writer; a read of a
stream's versions still in the buffer is refused (it would be stale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    Notification,
    StoredEvent,
    Subscription,
)

from domain.idempotency import IdempotencyKeyTaken, IdempotencyLookup, IdempotencyRecord
from domain.metadata import EventMetadata
from eventstore.postgres import PostgresLedgerStore
from eventstore.sqlite import SQLiteLedgerStore
from eventstore.store import LedgerStore
from ledger.seed_writer import BackgroundWriter, BufferedSave, span, write_postgres, write_sqlite


class UnflushedRead(RuntimeError):
    """A stream's versions still in the buffer were read from the database (they'd be stale)."""


class BufferedSnapshots(AggregateRecorder):
    """One tenant's snapshot recorder whose snapshots wait in memory, written after their
    events; reads see them."""

    def __init__(self, real: AggregateRecorder, writer: BackgroundWriter) -> None:
        self.real = real
        self.writer = writer
        self.snapshots: list[StoredEvent] = []

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        self.snapshots.extend(stored_events)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        self.writer.drain()
        found = self.real.select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        mine = [
            s
            for s in self.snapshots
            if s.originator_id == originator_id
            and (gt is None or s.originator_version > gt)
            and (lte is None or s.originator_version <= lte)
        ]
        if not mine:
            return found
        merged = {s.originator_version: s for s in [*found, *mine]}
        ordered = [merged[v] for v in sorted(merged, reverse=desc)]
        return ordered if limit is None else ordered[:limit]

    def handed(self) -> Callable[[], None]:
        """A job writing the snapshots buffered so far (the buffer starts again)."""
        taken, self.snapshots, real = self.snapshots, [], self.real

        def write() -> None:
            if taken:
                real.insert_events(taken)

        return write


class BufferedRecorder(ApplicationRecorder):
    """One tenant's events recorder whose saves wait in memory until `flush`."""

    def __init__(self, store: LedgerStore, tenant_id: UUID, writer: BackgroundWriter) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.writer = writer
        self.real = store.application_recorder(tenant_id)
        self.written = self.head = store.head(tenant_id).position
        self.saves: list[BufferedSave] = []
        self.keys: dict[str, IdempotencyRecord] = {}
        self.fresh: set[str] = set()
        self.pending: dict[UUID | str, int] = {}  # stream: its first version in the buffer

    @property
    def buffered(self) -> int:
        """Events saved but not yet handed to the writer."""
        return self.head - self.written

    def vouch(self, key: str) -> None:
        """A key just generated for a command: no record can hold it yet."""
        self.fresh.add(key)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        idempotency: IdempotencyRecord | None = kwargs.get("idempotency")
        first = self.head + 1
        self.head += len(stored_events)
        if idempotency is not None:
            if idempotency.key in self.keys:
                raise IdempotencyKeyTaken(idempotency.key)
            self.fresh.discard(idempotency.key)
            idempotency = replace(idempotency, position=self.head)
            self.keys[idempotency.key] = idempotency
        meta = kwargs.get("meta") or EventMetadata()
        self.saves.append(BufferedSave(list(stored_events), meta, idempotency, self.head))
        for event in stored_events:
            self.pending.setdefault(event.originator_id, event.originator_version)
        return list(range(first, self.head + 1))

    def select_idempotency(self, key: str) -> IdempotencyRecord | None:
        """What a key recorded: in the buffer, or (unless just generated) in the database."""
        if key in self.keys:
            return self.keys[key]
        if key in self.fresh:
            return None
        self.writer.drain()
        lookup = self.real
        return lookup.select_idempotency(key) if isinstance(lookup, IdempotencyLookup) else None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        first = self.pending.get(originator_id)
        if first is not None and (lte is None or lte >= first):
            raise UnflushedRead(f"stream {originator_id} has events not yet written")
        self.writer.drain()
        return self.real.select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        self.writer.drain()
        return self.real.select_notifications(
            start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )

    def max_notification_id(self) -> int | None:
        return self.head or None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        raise NotImplementedError("a bulk seed's recorder is not followed")

    def flush(self, then: Callable[[], None] | None = None) -> None:
        """Hands the buffered saves to the writer; `then` runs after they are written."""
        saves, base = self.saves, self.written
        self.writer.submit(lambda: self._write(saves, base, then))
        self.written = self.head
        self.saves, self.keys = [], {}
        self.pending = {}

    def _write(self, saves: list[BufferedSave], base: int, then: Callable[[], None] | None) -> None:
        if saves and isinstance(self.store, PostgresLedgerStore):
            write_postgres(self.store, self.tenant_id, base, saves)
        elif saves and isinstance(self.store, SQLiteLedgerStore):
            write_sqlite(self.store, self.tenant_id, base, saves)
        else:
            for save in saves:
                positions = self.real.insert_events(
                    save.events, meta=save.meta, idempotency=save.idempotency
                )
                if save.events and list(positions or []) != span(save.position, len(save.events)):
                    raise IntegrityError(f"the tenant {self.tenant_id} was written meanwhile")
        if then is not None:
            then()
