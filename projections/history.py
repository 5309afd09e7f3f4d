"""Stock as of any time, computed from the ledger itself rather than from a read model.

`at` is business (effective) time, `known_at` recorded time: the answer counts every stock item
event that took effect by `at` among those the ledger had recorded by `known_at`. A backdated
correction (recorded today, effective last week) is part of last week's stock as known now, but
not as it was known before it was recorded.

Every answer is a fold of the tenant's events in position order, read up to the head as it
stood when the query began. Snapshots are not used: they are not part of the hash chain, so an
answer built on one would rest on data that nobody can verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.stock import stock_item_id
from eventstore.records import RecordedEvent
from eventstore.store import LedgerStore
from projections.events import decode
from projections.stock_fold import OPENED, LevelState, LotState, StockFold, is_stock_kind

#: Events per read while folding.
PAGE_SIZE = 5000


@dataclass(frozen=True)
class Moment:
    """Which events count: effective by `at`, recorded by `known_at` (None: all recorded)."""

    at: datetime
    known_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("at", "known_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must carry a time zone offset")

    def counts(self, event: RecordedEvent) -> bool:
        header = event.header
        if self.known_at is not None and _instant(header["recorded_at"]) > self.known_at:
            return False
        effective = header.get("effective_at") or header["recorded_at"]
        return _instant(effective) <= self.at


def stock_levels_as_of(
    store: LedgerStore,
    tenant_id: UUID,
    at: datetime,
    known_at: datetime | None = None,
    sku: str | None = None,
    warehouse: str | None = None,
) -> list[LevelState]:
    """Stock per SKU and warehouse at effective time `at`, as recorded by `known_at`.

    A stock item appears once any of its events counts; it stays, at zero, once emptied.
    """
    return fold_as_of(store, tenant_id, Moment(at, known_at), sku, warehouse).levels()


def lots_as_of(
    store: LedgerStore,
    tenant_id: UUID,
    at: datetime,
    known_at: datetime | None = None,
    sku: str | None = None,
    warehouse: str | None = None,
) -> list[LotState]:
    """Lots in bins with stock or holds at effective time `at`, as recorded by `known_at`."""
    return fold_as_of(store, tenant_id, Moment(at, known_at), sku, warehouse).lots()


def fold_as_of(
    store: LedgerStore,
    tenant_id: UUID,
    moment: Moment,
    sku: str | None = None,
    warehouse: str | None = None,
) -> StockFold:
    """The fold of the stock item events that count at `moment`, of the matching stock items."""
    fold = StockFold()
    wanted = _Streams(tenant_id, sku, warehouse)
    for recorded in stock_events(store, tenant_id, store.head(tenant_id).position):
        if not wanted.has(recorded):
            continue
        if _kind(recorded) == OPENED:
            event = decode(recorded)
            names = (event.data["sku"], event.data["warehouse"])
            fold.name(recorded.stream_id, *names)  # its later events may take effect before it
            if wanted.names(recorded.stream_id, *names) and moment.counts(recorded):
                fold.apply(event)
        elif moment.counts(recorded):
            fold.apply(decode(recorded))
    return fold


def stock_events(store: LedgerStore, tenant_id: UUID, last: int) -> Iterator[RecordedEvent]:
    """The tenant's stock item events up to position `last`, undecoded."""
    for recorded in store.iter_events(tenant_id, page_size=PAGE_SIZE):
        if recorded.position > last:
            return
        if is_stock_kind(_kind(recorded)):
            yield recorded


class _Streams:
    """The stock items a query asks for: all, or those of a SKU and/or a warehouse."""

    def __init__(self, tenant_id: UUID, sku: str | None, warehouse: str | None) -> None:
        self.sku, self.warehouse = sku, warehouse
        self.only = (
            stock_item_id(tenant_id, sku, warehouse)
            if sku is not None and warehouse is not None
            else None
        )
        self.chosen: set[UUID] = set()

    def has(self, event: RecordedEvent) -> bool:
        """Whether the event may belong to a wanted stock item (an opening decides)."""
        if self.only is not None:
            return event.stream_id == self.only
        if self.sku is None and self.warehouse is None:
            return True
        return event.stream_id in self.chosen or _kind(event) == OPENED

    def names(self, stream: UUID, sku: str, warehouse: str) -> bool:
        """Whether an opened stock item is wanted (and remembers it when it is)."""
        if (self.sku is None or sku == self.sku) and (
            self.warehouse is None or warehouse == self.warehouse
        ):
            self.chosen.add(stream)
            return True
        return False


def _kind(event: RecordedEvent) -> str:
    return event.topic.rpartition(":")[2]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
