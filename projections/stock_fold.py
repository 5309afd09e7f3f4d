"""Stock levels and lots folded straight from stock item events, apart from the read models.

What auditors check the read models against and compute past stock with: a plain fold over the
decoded events, kept layer by layer and hold by hold as the stock item aggregate keeps them.
It accepts any subset of a stream's events in position order (an as-of query leaves out what
was not yet effective or recorded): a pick from a layer whose receipt was left out makes that
layer negative, and a release beyond what is held releases what there is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.events import LedgerEvent

ZERO = Decimal(0)
RELEASED = "released"
Place = tuple[str, str]  # (lot, bin)


class UnknownStockEvent(Exception):
    """A stock item event this fold does not know: counting without it would be wrong."""


class UnopenedStream(Exception):
    """A stock item event on a stream whose opening was never seen."""


@dataclass(frozen=True)
class LevelState:
    """The stock of one SKU in one warehouse."""

    sku: str
    warehouse: str
    on_hand: Decimal
    reserved: Decimal
    value: Decimal


@dataclass(frozen=True)
class LotState:
    """The stock of one lot in one bin; `received_at` is when the oldest stock there arrived
    (None when no receipt of what is there was counted)."""

    sku: str
    warehouse: str
    lot: str
    bin: str
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    expires_on: date | None
    received_at: datetime | None
    status: str


@dataclass
class _Layer:
    lot: str
    bin: str
    received_at: datetime | None
    unit_cost: Decimal
    quantity: Decimal


@dataclass
class _Item:
    sku: str
    warehouse: str
    layers: dict[int, _Layer] = field(default_factory=dict)
    expiry: dict[str, date | None] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    holds: dict[str, dict[Place, Decimal]] = field(default_factory=dict)

    def add_layer(self, layer: Mapping[str, Any], expires_on: date | None) -> None:
        found = self.layers.get(layer["id"])
        if found is None:
            found = _Layer(layer["lot"], layer["bin"], None, layer["unit_cost"], ZERO)
            self.layers[layer["id"]] = found
        found.received_at = layer["received_at"]
        found.quantity += layer["quantity"]
        self._settle(layer["id"])
        self.expiry.setdefault(layer["lot"], expires_on)
        self.status.setdefault(layer["lot"], RELEASED)

    def take(self, picks: Iterable[Mapping[str, Any]]) -> None:
        for pick in picks:
            found = self.layers.get(pick["layer"])
            if found is None:
                found = _Layer(pick["lot"], pick["bin"], None, pick["unit_cost"], ZERO)
                self.layers[pick["layer"]] = found
            found.quantity -= pick["quantity"]
            self._settle(pick["layer"])
            self.expiry.setdefault(pick["lot"], pick["expires_on"])

    def _settle(self, layer_id: int) -> None:
        if self.layers[layer_id].quantity == ZERO:
            del self.layers[layer_id]

    def change_holds(self, holds: Mapping[str, Iterable[Mapping[str, Any]]], sign: int) -> None:
        for reference, changed in holds.items():
            places = self.holds.setdefault(reference, {})
            for hold in changed:
                place = (hold["lot"], hold["bin"])
                places[place] = places.get(place, ZERO) + sign * hold["quantity"]
                if places[place] <= ZERO:
                    del places[place]
            if not places:
                del self.holds[reference]

    def forget_empty_lots(self) -> None:
        """A lot without stock or holds here leaves; it comes back released."""
        live = {layer.lot for layer in self.layers.values()}
        live.update(lot for places in self.holds.values() for lot, _ in places)
        for lot in [lot for lot in self.expiry if lot not in live]:
            del self.expiry[lot]
        for lot in [lot for lot in self.status if lot not in live]:
            del self.status[lot]

    def reserved(self) -> dict[Place, Decimal]:
        total: dict[Place, Decimal] = {}
        for places in self.holds.values():
            for place, quantity in places.items():
                total[place] = total.get(place, ZERO) + quantity
        return total


def _received(item: _Item, data: dict[str, Any]) -> None:
    item.add_layer(data["layer"], data["expires_on"])


def _removed(item: _Item, data: dict[str, Any]) -> None:
    item.take(data["picks"])
    item.change_holds(data["released"], -1)
    item.forget_empty_lots()


def _moved(item: _Item, data: dict[str, Any]) -> None:
    expiry = {pick["lot"]: pick["expires_on"] for pick in data["picks"]}
    item.take(data["picks"])
    for layer in data["arrivals"]:
        item.add_layer(layer, item.expiry.get(layer["lot"], expiry.get(layer["lot"])))
    item.change_holds(data["released"], -1)
    item.change_holds(data["held"], +1)
    item.forget_empty_lots()


def _reserved(item: _Item, data: dict[str, Any]) -> None:
    item.change_holds({data["reference"]: data["holds"]}, +1)


def _reservation_released(item: _Item, data: dict[str, Any]) -> None:
    item.change_holds(data["released"], -1)


def _lot_status_set(item: _Item, data: dict[str, Any]) -> None:
    item.status[data["lot"]] = data["status"]


OPENED = "StockItem.Opened"
_CHANGES: dict[str, Callable[[_Item, dict[str, Any]], None]] = {
    "StockItem.Received": _received,
    "StockItem.Removed": _removed,
    "StockItem.Moved": _moved,
    "StockItem.Reserved": _reserved,
    "StockItem.ReservationReleased": _reservation_released,
    "StockItem.LotStatusSet": _lot_status_set,
    "StockItem.Counted": lambda _item, _data: None,  # a record of a count: no change
}
KINDS = frozenset({OPENED, *_CHANGES})


def is_stock_kind(kind: str) -> bool:
    """Whether an event kind belongs to a stock item (known to this fold or not)."""
    return kind.startswith("StockItem.")


class StockFold:
    """The stock items of one tenant, as the events applied so far leave them."""

    def __init__(self) -> None:
        self.names: dict[UUID, tuple[str, str]] = {}
        self.items: dict[UUID, _Item] = {}

    def name(self, stream: UUID, sku: str, warehouse: str) -> None:
        """Learns which SKU and warehouse a stream holds, without counting anything."""
        self.names[stream] = (sku, warehouse)

    def apply(self, event: LedgerEvent) -> None:
        """Applies one stock item event; events of other aggregates are not for this fold."""
        if event.kind == OPENED:
            self.name(event.stream_id, event.data["sku"], event.data["warehouse"])
            self._item(event)
            return
        change = _CHANGES.get(event.kind)
        if change is None:
            raise UnknownStockEvent(
                f"position {event.position}: {event.kind} is not a stock item event this"
                " audit knows; it cannot count stock without it"
            )
        change(self._item(event), event.data)

    def _item(self, event: LedgerEvent) -> _Item:
        item = self.items.get(event.stream_id)
        if item is None:
            name = self.names.get(event.stream_id)
            if name is None:
                raise UnopenedStream(
                    f"position {event.position}: stock item {event.stream_id} was never opened"
                )
            item = self.items[event.stream_id] = _Item(*name)
        return item

    def levels(self) -> list[LevelState]:
        """One stock level per stock item counted so far, by SKU and warehouse."""
        found = [
            LevelState(
                item.sku,
                item.warehouse,
                sum((layer.quantity for layer in item.layers.values()), ZERO),
                sum(item.reserved().values(), ZERO),
                sum((layer.quantity * layer.unit_cost for layer in item.layers.values()), ZERO),
            )
            for item in self.items.values()
        ]
        return sorted(found, key=lambda level: (level.sku, level.warehouse))

    def lots(self) -> list[LotState]:
        """Every lot in a bin with stock or holds, by SKU, warehouse, lot and bin."""
        found = [lot for item in self.items.values() for lot in _lots_of(item)]
        return sorted(found, key=lambda lot: (lot.sku, lot.warehouse, lot.lot, lot.bin))


def _lots_of(item: _Item) -> list[LotState]:
    layers: dict[Place, list[_Layer]] = {}
    for layer in item.layers.values():
        layers.setdefault((layer.lot, layer.bin), []).append(layer)
    reserved = item.reserved()
    states = []
    for place in {*layers, *reserved}:
        here = layers.get(place, [])
        on_hand = sum((layer.quantity for layer in here), ZERO)
        held = reserved.get(place, ZERO)
        if on_hand == ZERO and held == ZERO:
            continue
        times = [x.received_at for x in here if x.quantity > ZERO and x.received_at is not None]
        lot, bin_code = place
        states.append(
            LotState(
                item.sku,
                item.warehouse,
                lot,
                bin_code,
                on_hand,
                held,
                sum((layer.quantity * layer.unit_cost for layer in here), ZERO),
                item.expiry.get(lot),
                min(times, default=None),
                item.status.get(lot, RELEASED),
            )
        )
    return states
