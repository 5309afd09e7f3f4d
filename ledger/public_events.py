"""Public events: the stable, versioned types integrators (the HTTP feed, the Kafka relay, webhooks)
see instead of the stored domain events.

Every stored event kind is either mapped to public types here or listed in `INTERNAL` with the
reason it is not published. A public type changes only by adding fields (its `version` goes up
only for a change a consumer would notice), or a new type is added. Public data names stock by
SKU and warehouse code (not stream ids), writes quantities and money as decimal strings and
dates and times in ISO 8601.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from uuid import UUID, uuid5

import orjson

from eventstore.records import RecordedEvent
from eventstore.store import LedgerStore
from ledger.public_records import CONVERTERS
from ledger.public_schemas import Schema, published
from ledger.public_stock import STOCK_CONVERTERS, Data
from projections.events import LedgerEvent, decode

__all__ = [
    "CONVERTERS",
    "INTERNAL",
    "SOURCES",
    "TYPES",
    "Origins",
    "PublicEvent",
    "PublicType",
    "produces",
    "public_event",
    "public_events",
]


@dataclass(frozen=True)
class PublicType:
    """A public event type: its name, version and what it means."""

    name: str
    version: int
    description: str

    @property
    def schema(self) -> Schema:
        """The JSON Schema (draft 2020-12) of its events' `data`."""
        return published(self.name, self.version, self.description)


_DESCRIPTIONS = {
    "stock.received": "Stock arrived in a bin as a lot (a receipt, or a purchase order receipt).",
    "stock.transferred_in": "Stock arrived from another warehouse with its lot, expiry and cost.",
    "stock.returned": "Stock a customer sent back was put into a bin (restocked or quarantined).",
    "stock.adjusted": "On hand was corrected without a receipt: a positive adjustment, or a count"
    " that found more or less than the ledger held (reason `count`).",
    "stock.issued": "Stock left by an issue, a negative adjustment or an expiry write-off.",
    "stock.shipped": "Stock reserved for a sales order line left for the customer.",
    "stock.transferred_out": "Stock left for another warehouse.",
    "stock.moved": "Stock moved between bins of a warehouse.",
    "stock.reserved": "Available stock was reserved for a reference (an order line, a pick list).",
    "stock.reservation_released": "Reserved stock became available again.",
    "stock.counted": "A lot in a bin was counted: what was found and what the ledger held.",
    "product.registered": "A product (SKU) was added to the catalog.",
    "product.changed": "Some fields of a product changed; `changes` holds their new values.",
    "warehouse.registered": "A warehouse was added.",
    "bin.added": "A bin was added to a warehouse.",
    "lot.registered": "A lot was first received: its SKU, expiry and first warehouse.",
    "lot.status_changed": "A lot was released, put on hold or quarantined (in every warehouse).",
    "purchase_order.created": "A purchase order was drafted.",
    "purchase_order.submitted": "A purchase order was sent to the supplier.",
    "purchase_order.received": "Stock arrived against purchase order lines.",
    "purchase_order.closed": "A purchase order was short-closed: the open rest will not come.",
    "purchase_order.cancelled": "A purchase order was cancelled before anything arrived.",
    "sales_order.created": "A sales order was opened.",
    "sales_order.allocated": "Stock was reserved for sales order lines; short lines wait.",
    "sales_order.reservation_lost": "Reserved stock of an order went away (a count, a write-off).",
    "sales_order.shipped": "Reserved stock of sales order lines left for the customer.",
    "sales_order.cancelled": "A sales order was cancelled; its reservations were released.",
    "sales_order.returned": "The customer sent shipped stock back.",
}
TYPES: dict[str, PublicType] = {
    name: PublicType(name, 1, description) for name, description in _DESCRIPTIONS.items()
}

#: Stored kinds that are never published, and why.
INTERNAL: dict[str, str] = {
    "StockItem.Opened": "bookkeeping: a stock item stream began (its SKU and warehouse)",
    "StockItem.LotStatusSet": "a copy of `lot.status_changed` kept in each warehouse's stock",
    "Product.StockedIn": "bookkeeping: which warehouses keep a product",
    "Lot.StockedIn": "bookkeeping: which warehouses hold a lot",
    "BarcodeClaim.Claimed": "bookkeeping: a barcode's one product (in `product.*` barcodes)",
    "BarcodeClaim.Released": "bookkeeping: a barcode's one product (in `product.*` barcodes)",
    "BarcodeClaim.Reclaimed": "bookkeeping: a barcode's one product (in `product.*` barcodes)",
    "ExternalKey.Claimed": "bookkeeping: an order's external id (in `*.created`)",
    "OrderAggregate.Created": "an abstract base: never recorded",
    "Tenant.Created": "administration: in the audit feed only",
    "Tenant.SettingsChanged": "administration: in the audit feed only",
    "Tenant.ApiKeyIssued": "secret material (the key's digest): in the audit feed only",
    "Tenant.ApiKeyRevoked": "administration: in the audit feed only",
    "Tenant.RolesChanged": "administration: in the audit feed only",
    "Tenant.WebhookRegistered": "secret material (the webhook's secret): in the audit feed only",
    "Tenant.WebhookDisabled": "administration: in the audit feed only",
}


#: Stored kinds whose public data names their stream's creation (SKU, warehouse, lot).
NEEDS_ORIGIN = frozenset(
    {*STOCK_CONVERTERS, "Product.Changed", "Warehouse.BinAdded", "Lot.StatusChanged"}
)
_STOCK_PRODUCES = {
    "StockItem.Received": (
        "stock.received",
        "stock.transferred_in",
        "stock.returned",
        "stock.adjusted",
    ),
    "StockItem.Removed": (
        "stock.issued",
        "stock.shipped",
        "stock.transferred_out",
        "stock.adjusted",
    ),
    "StockItem.Moved": ("stock.moved",),
    "StockItem.Reserved": ("stock.reserved",),
    "StockItem.ReservationReleased": ("stock.reservation_released",),
    "StockItem.Counted": ("stock.counted",),
}
_PRODUCES = _STOCK_PRODUCES | {
    "Product.Registered": ("product.registered",),
    "Product.Changed": ("product.changed",),
    "Warehouse.Registered": ("warehouse.registered",),
    "Warehouse.BinAdded": ("bin.added",),
    "Lot.Registered": ("lot.registered",),
    "Lot.StatusChanged": ("lot.status_changed",),
    "PurchaseOrder.Created": ("purchase_order.created",),
    "PurchaseOrder.Submitted": ("purchase_order.submitted",),
    "PurchaseOrder.Received": ("purchase_order.received",),
    "PurchaseOrder.Closed": ("purchase_order.closed",),
    "PurchaseOrder.Cancelled": ("purchase_order.cancelled",),
    "SalesOrder.Created": ("sales_order.created",),
    "SalesOrder.Allocated": ("sales_order.allocated",),
    "SalesOrder.ReservationLost": ("sales_order.reservation_lost",),
    "SalesOrder.Shipped": ("sales_order.shipped",),
    "SalesOrder.Cancelled": ("sales_order.cancelled",),
    "SalesOrder.Returned": ("sales_order.returned",),
}
#: The stored kinds each public type may come from.
SOURCES: dict[str, frozenset[str]] = {
    name: frozenset(kind for kind, names in _PRODUCES.items() if name in names) for name in TYPES
}


def produces(kind: str) -> tuple[str, ...]:
    """The public types a stored kind may become (none: internal)."""
    return _PRODUCES.get(kind, ())


#: Positions read from the store at once.
WINDOW = 1000


@dataclass(frozen=True)
class PublicEvent:
    """A stored event as integrators see it."""

    event_id: str
    position: int
    type: str
    version: int
    stream: str
    recorded_at: str
    effective_at: str
    data: Data

    def as_dict(self) -> Data:
        return {
            "event_id": self.event_id,
            "position": self.position,
            "type": self.type,
            "version": self.version,
            "stream": self.stream,
            "recorded_at": self.recorded_at,
            "effective_at": self.effective_at,
            "data": self.data,
        }


class Origins:
    """The creation data of a tenant's streams (what names a stock item, a product, a lot, a
    warehouse), read from the store once per stream and kept."""

    def __init__(self, store: LedgerStore, tenant_id: UUID) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self._known: dict[UUID, Data] = {}

    def learn(self, event: LedgerEvent) -> None:
        if event.version == 1:
            self._known[event.stream_id] = event.data

    def of(self, stream_id: UUID) -> Data:
        known = self._known.get(stream_id)
        if known is None:
            recorder = self.store.application_recorder(self.tenant_id)
            first = recorder.select_events(stream_id, lte=1)
            known = orjson.loads(first[0].state) if first else {}
            self._known[stream_id] = known
        return known


def public_event(event: LedgerEvent, origins: Origins) -> PublicEvent | None:
    """The public form of a decoded stored event (None for an internal one)."""
    convert = CONVERTERS.get(event.kind)
    if convert is None:
        return None
    origin = origins.of(event.stream_id) if event.kind in NEEDS_ORIGIN else {}
    name, data = convert(event, origin)
    header = event.header
    recorded = str(header.get("recorded_at"))
    return PublicEvent(
        event_id=str(uuid5(event.stream_id, str(event.version))),
        position=event.position,
        type=name,
        version=TYPES[name].version,
        stream=str(event.stream_id),
        recorded_at=recorded,
        effective_at=str(header.get("effective_at") or recorded),
        data=data,
    )


def public_events(
    store: LedgerStore,
    tenant_id: UUID,
    after: int,
    last: int,
    types: Collection[str] | None = None,
    origins: Origins | None = None,
    window: int = WINDOW,
) -> Iterator[PublicEvent]:
    """The tenant's public events at positions after+1..last (of `types` when given), in order.

    The store filters by stored kind, `window` positions at a time, so memory stays bounded
    and a reader that stops early has read little more than it used.
    """
    origins = origins or Origins(store, tenant_id)
    wanted = TYPES.keys() if types is None else types
    kinds = sorted({kind for name in wanted for kind in SOURCES[name]})
    start = after
    while start < last and kinds:
        end = min(last, start + window)
        for recorded in store.read_range(tenant_id, start, end, kinds):
            found = _public(recorded, origins)
            if found is not None and (types is None or found.type in types):
                yield found
        start = end


def _public(recorded: RecordedEvent, origins: Origins) -> PublicEvent | None:
    event = decode(recorded)
    origins.learn(event)
    return public_event(event, origins)
