"""The recall trace of a lot (`GET /v1/lots/{lot}/trace`): everything that happened to it.

It is read from the event store, not from a read model: no read model keeps a lot's
reservations, releases, counts and status changes with the orders behind them. The lot's own
stream names every warehouse that ever held it, which names the stock item streams to follow;
the tenant's stock and lot events are read once in position order (filtered by kind in the
database, by stream before anything is decoded), and the orders they name are looked up once
each.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, JsonValue

from api.auth import Principal, permitted
from api.problems import Problem, problem_responses
from domain.allocation import LotStatus
from domain.lots import lot_id
from domain.stock import stock_item_id
from eventstore.store import LedgerStore
from ledger.public_events import Origins, PublicEvent, public_event
from ledger.public_stock import text
from projections.events import decode

router = APIRouter(prefix="/v1", tags=["queries"])
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
#: Positions read at once while following the lot.
WINDOW = 5000
KINDS = (
    "StockItem.Received",
    "StockItem.Removed",
    "StockItem.Moved",
    "StockItem.Reserved",
    "StockItem.ReservationReleased",
    "StockItem.Counted",
    "Lot.Registered",
    "Lot.StatusChanged",
    "SalesOrder.Returned",
)
#: Returns are followed for what was scrapped (what was put back is a `stock.returned`).
RETURNED = "SalesOrder.Returned"
ZERO = Decimal(0)
PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        404: "`not-found`: no such lot of this SKU in this tenant",
    }
)


class TraceOrder(BaseModel):
    """The order an entry came from: its kind, id, line, the client's ids and its partner."""

    kind: str  # purchase_order | sales_order
    order_id: str
    line: int
    external_id: str | None
    reference: str | None
    customer: str | None
    supplier: str | None


class TraceEntry(BaseModel):
    """One event that concerned the lot: what it did to the lot, where, and for which order.

    `quantity` is how much of the lot the event concerned; `on_hand_change` what it changed
    the lot's on hand by (0 for moves, reservations, counts and status changes).
    """

    event_id: str
    position: int
    type: str
    recorded_at: str
    effective_at: str
    warehouse: str | None
    quantity: str | None
    on_hand_change: str
    bins: list[str]
    reason: str | None
    reference: str | None
    status: str | None
    order: TraceOrder | None
    data: dict[str, JsonValue]


class LotTrace(BaseModel):
    sku: str
    lot: str
    expires_on: str | None
    status: str
    items: list[TraceEntry]
    position: int


class _Touch:
    """What an event did to one lot: quantity, on-hand change, bins, the order line named."""

    def __init__(self) -> None:
        self.quantity = ZERO
        self.change = ZERO
        self.bins: list[str] = []
        self.order: tuple[str, dict[str, Any]] | None = None
        self.hit = False

    def add(self, quantity: str, bins: list[str], sign: int = 0) -> None:
        amount = Decimal(quantity)
        self.quantity += abs(amount)
        self.change += sign * amount
        self.bins += [b for b in bins if b not in self.bins]
        self.hit = True


#: Lists of places in public data: key, sign of the lot's on-hand change, the bin fields.
PLACES = (
    ("picks", -1, ("bin",)),
    ("changes", 1, ("bin",)),
    ("moves", 0, ("from_bin", "to_bin")),
    ("holds", 0, ("bin",)),
    ("releases", 0, ("bin",)),
)


def _touch(event: PublicEvent, sku: str, lot: str) -> _Touch:
    data = event.data
    touch = _Touch()
    if event.type.startswith("lot."):
        touch.hit = True
    elif "returns" in data:
        for back in data["returns"]:
            if (back["sku"], back["lot"], back["disposition"]) == (sku, lot, "scrap"):
                touch.add(back["quantity"], [])
                touch.order = ("sales_order", {"order_id": data["order_id"], "line": back["line"]})
    elif "lot" in data:
        if data["lot"] == lot:
            counted = event.type == "stock.counted"
            quantity = data["counted_quantity"] if counted else data["quantity"]
            touch.add(quantity, [data["bin"]], 0 if counted else 1)
    else:
        _places(touch, data, lot)
    if touch.order is None:
        touch.order = _line("sales_order", data.get("sales_order")) or _line(
            "purchase_order", data.get("purchase_order")
        )
    if not touch.hit:  # a removal may only have released the lot's reservations
        touch.hit = any(release["lot"] == lot for release in data.get("released", []))
    return touch


def _places(touch: _Touch, data: dict[str, Any], lot: str) -> None:
    for key, sign, fields in PLACES:
        for place in data.get(key, []):
            if place["lot"] == lot:
                touch.add(place["quantity"], [place[f] for f in fields], sign)
                if touch.order is None and place.get("sales_order") is not None:
                    touch.order = ("sales_order", place["sales_order"])


def _line(kind: str, named: Any) -> tuple[str, dict[str, Any]] | None:
    return None if named is None else (kind, named)


def _order(kind: str, named: dict[str, Any], origins: Origins) -> TraceOrder:
    created = origins.of(UUID(named["order_id"]))
    return TraceOrder(
        kind=kind,
        order_id=named["order_id"],
        line=named["line"],
        external_id=created.get("external_id"),
        reference=created.get("reference"),
        customer=created.get("customer"),
        supplier=created.get("supplier"),
    )


def _entry(event: PublicEvent, touch: _Touch, origins: Origins) -> TraceEntry:
    data = event.data
    on_order = touch.order
    return TraceEntry(
        event_id=event.event_id,
        position=event.position,
        type=event.type,
        recorded_at=event.recorded_at,
        effective_at=event.effective_at,
        warehouse=data.get("warehouse"),
        quantity=text(touch.quantity) if touch.quantity else None,
        on_hand_change=text(touch.change),
        bins=touch.bins,
        reason=data.get("reason"),
        reference=data.get("reference"),
        status=data.get("status"),
        order=None if on_order is None else _order(*on_order, origins),
        data=data,
    )


def _lot_events(store: LedgerStore, tenant_id: UUID, sku: str, lot: str) -> list[dict[str, Any]]:
    """The lot stream's events' data (empty: no such lot)."""
    recorder = store.application_recorder(tenant_id)
    return [orjson.loads(e.state) for e in recorder.select_events(lot_id(tenant_id, sku, lot))]


def _followed(
    store: LedgerStore, tenant_id: UUID, streams: set[UUID], head: int, origins: Origins
) -> Iterator[PublicEvent]:
    start = 0
    while start < head:
        end = min(head, start + WINDOW)
        for recorded in store.read_range(tenant_id, start, end, KINDS):
            if recorded.stream_id in streams or recorded.topic.endswith(RETURNED):
                found = public_event(decode(recorded), origins)
                if found is not None:
                    yield found
        start = end


@router.get(
    "/lots/{lot:path}/trace",
    response_model=LotTrace,
    summary="Every receipt, move, reservation, shipment, return and change of a lot (recall)",
    responses=PROBLEMS,
)
def trace_lot(
    request: Request,
    caller: Reader,
    lot: str,
    sku: Annotated[str, Query(description="The lot's SKU (a lot id names one lot per SKU).")],
) -> LotTrace:
    store: LedgerStore = request.app.state.ledger.store
    tenant_id = caller.tenant_id
    head = store.head(tenant_id).position
    history = _lot_events(store, tenant_id, sku, lot)
    if not history:
        raise Problem("not-found", f"no lot {lot!r} of SKU {sku!r}")
    warehouses = {e["warehouse"] for e in history if "warehouse" in e}
    streams = {lot_id(tenant_id, sku, lot)} | {stock_item_id(tenant_id, sku, w) for w in warehouses}
    origins = Origins(store, tenant_id)
    items = []
    for event in _followed(store, tenant_id, streams, head, origins):
        touch = _touch(event, sku, lot)
        if touch.hit:
            items.append(_entry(event, touch, origins))
    statuses = [e["status"] for e in history if "status" in e]
    expires = history[0].get("expires_on")
    return LotTrace(
        sku=sku,
        lot=lot,
        expires_on=expires.get("_data_") if isinstance(expires, dict) else expires,
        status=statuses[-1] if statuses else LotStatus.RELEASED.value,
        items=items,
        position=head,
    )
