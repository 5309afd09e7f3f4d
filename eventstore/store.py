"""The tenant-partitioned store: what both the PostgreSQL and the SQLite implementation offer."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.utils import Environment

from eventstore.records import (
    ChainHash,
    ChainRow,
    RecordedEvent,
    TenantHead,
    TrackerLag,
    Verification,
)
from eventstore.verify import chain_hash_at, verify_chain

DEFAULT_PAGE_SIZE = 1000


class LedgerStore(ABC):
    """Owns the connections to one database and hands out recorders bound to one tenant.

    Every read and write carries the tenant: reading tenant A never returns an event of tenant B,
    and on PostgreSQL a stream read touches only the tenant's hash partition.
    """

    def factory_for(self, tenant_id: UUID, *, snapshots: bool = True) -> InfrastructureFactory:
        """The library's infrastructure factory for one tenant's application."""
        return TenantFactory(self, tenant_id, snapshots=snapshots)

    @abstractmethod
    def application_recorder(self, tenant_id: UUID) -> ApplicationRecorder:
        """The events recorder of one tenant (positions are its notification ids)."""

    @abstractmethod
    def snapshot_recorder(self, tenant_id: UUID) -> AggregateRecorder:
        """The snapshots recorder of one tenant."""

    @abstractmethod
    def read(
        self, tenant_id: UUID, after: int = 0, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[RecordedEvent]:
        """A page of the tenant's events after a position, in position order."""

    def read_range(
        self,
        tenant_id: UUID,
        after: int,
        last: int,
        kinds: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """The tenant's events at positions after+1..last, in order; with `kinds`, only the
        events of those kinds (`StockItem.Received`: a topic's part after its colon). The
        stores override this to filter in the database."""
        found: list[RecordedEvent] = []
        for event in self.iter_events(tenant_id, after=after):
            if event.position > last:
                break
            if kinds is None or event.topic.rpartition(":")[2] in kinds:
                found.append(event)
        return found

    @abstractmethod
    def head(self, tenant_id: UUID) -> TenantHead:
        """The tenant's last position and hash (position 0 before its first event)."""

    @abstractmethod
    def heads(self) -> list[TenantHead]:
        """Every tenant that has recorded an event, by tenant id."""

    @abstractmethod
    def tenants_ahead_of(self, tracker: str) -> list[TrackerLag]:
        """The tenants whose head is beyond what the named tracker has processed."""

    @abstractmethod
    def tracked_position(self, tracker: str, tenant_id: UUID) -> int:
        """The last position the named tracker recorded for the tenant (0 if none)."""

    @abstractmethod
    def record_tracking(self, tracker: str, tenant_id: UUID, position: int) -> None:
        """Records that the tracker has processed the tenant's events up to the position."""

    def address(self) -> tuple[str, str] | None:
        """Where another process can open this store: ("postgresql", URL) or ("sqlite", PATH);
        None when it cannot."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Closes the connections."""

    def iter_events(
        self, tenant_id: UUID, after: int = 0, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[RecordedEvent]:
        """The tenant's events after a position, read page by page."""
        while True:
            page = self.read(tenant_id, after=after, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].position

    def read_chain(
        self, tenant_id: UUID, after: int = 0, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[ChainRow]:
        """The tenant's (position, payload, hash) at positions after+1..after+limit, in order.

        Every one of them unless rows are missing. What the audit export reads: no row objects
        built (the stores override this to read faster).
        """
        last = after + limit
        return [
            (e.position, e.payload, e.hash)
            for e in self.read(tenant_id, after, limit)
            if e.position <= last
        ]

    def chain_hash_at(self, tenant_id: UUID, position: int, page_size: int = 5000) -> ChainHash:
        """Recomputes the tenant's chain from position 1 up to `position` (reads no further,
        nor beyond the head)."""
        last = min(position, self.head(tenant_id).position)
        rows = (row for page in self._chain_pages(tenant_id, last, page_size) for row in page)
        return chain_hash_at(rows, position)

    def _chain_pages(self, tenant_id: UUID, last: int, page_size: int) -> Iterator[list[ChainRow]]:
        for after in range(0, last, page_size):
            yield self.read_chain(tenant_id, after=after, limit=min(page_size, last - after))

    def verify(self, tenant_id: UUID, page_size: int = 5000) -> Verification:
        """Recomputes the tenant's hash chain; reports the first position that does not match."""
        head = self.head(tenant_id)
        events = self.iter_events(tenant_id, page_size=page_size)
        within = itertools.takewhile(lambda event: event.position <= head.position, events)
        result = verify_chain(tenant_id, within, head)
        beyond = self.read(tenant_id, after=head.position, limit=1)
        if result.ok and beyond and self.head(tenant_id).position < beyond[0].position:
            # Not a write that landed while verifying (the head would cover it): a stored
            # event the head never accounted for.
            return Verification(
                ok=False,
                checked_to_position=head.position,
                first_bad_position=beyond[0].position,
                head_hash=result.head_hash,
                reason=f"an event at {beyond[0].position} lies beyond the head at {head.position}",
            )
        return result

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantFactory(InfrastructureFactory[TrackingRecorder]):
    """The library's factory for one tenant: recorders bound to the tenant, shared connections."""

    def __init__(self, store: LedgerStore, tenant_id: UUID, *, snapshots: bool = True) -> None:
        super().__init__(Environment("Ledger", {}))
        self.store = store
        self.tenant_id = tenant_id
        self.snapshots = snapshots

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        if purpose == "snapshots":
            return self.store.snapshot_recorder(self.tenant_id)
        return self.store.application_recorder(self.tenant_id)

    def application_recorder(self) -> ApplicationRecorder:
        return self.store.application_recorder(self.tenant_id)

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> TrackingRecorder:
        raise NotImplementedError("projections track positions per tenant in the read-model tables")

    def process_recorder(self) -> ProcessRecorder:
        raise NotImplementedError("process applications are not used by the ledger")

    def is_snapshotting_enabled(self) -> bool:
        return self.snapshots

    def close(self) -> None:
        """The store, not the tenant's factory, owns the connections."""
