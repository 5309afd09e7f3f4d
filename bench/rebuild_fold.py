"""The raw baseline's fold (`bench.rebuild_raw`): one tenant's events into the rows of stock
levels with their purchase order lines, lots and movements, as `projections.stock_levels`,
`.lots` and `.movements` fold them, decoding only the transcoded values it uses.

Positions, quantities and costs follow the projections exactly (the benchmark compares the rows);
a lot row left empty stays until `sweep`, as it stays until the end of a rebuild batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

ZERO = Decimal(0)
OPEN_PURCHASES = frozenset({"submitted", "partially_received"})
Json = dict[str, Any]
Key = tuple[str, str]  # (SKU, warehouse)
Header = bytes | memoryview


def dec(value: Json) -> Decimal:
    """A transcoded decimal."""
    return Decimal(value["_data_"])


@dataclass
class Level:
    stream_id: UUID | None
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    incoming: Decimal
    position: int


@dataclass
class Purchase:
    status: str
    warehouse: str
    position: int
    lines: dict[int, list[Any]]  # line: [sku, ordered, received]

    def incoming(self) -> dict[Key, Decimal]:
        totals: dict[Key, Decimal] = {}
        if self.status in OPEN_PURCHASES:
            for sku, ordered, received in self.lines.values():
                key = (sku, self.warehouse)
                totals[key] = totals.get(key, ZERO) + max(ordered - received, ZERO)
        return totals


@dataclass
class LotRow:
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    expires_on: str | None
    layers: dict[int, tuple[str, Decimal]]  # layer id: (received at, ISO text; quantity left)
    status: str
    position: int


@dataclass
class Fold:
    """One tenant's rows as the three projections fold its events."""

    tenant_id: UUID
    levels: dict[Key, Level] = field(default_factory=dict)
    names: dict[UUID, Key] = field(default_factory=dict)
    opened: list[UUID] = field(default_factory=list)
    purchases: dict[UUID, Purchase] = field(default_factory=dict)
    positions: dict[UUID, int] = field(default_factory=dict)  # lots: last position per stream
    lots: dict[tuple[UUID, str], dict[str, LotRow]] = field(default_factory=dict)
    movements: list[tuple[Any, ...]] = field(default_factory=list)

    def level(self, key: Key, at: int) -> Level:
        found = self.levels.get(key)
        if found is None:
            found = self.levels[key] = Level(None, ZERO, ZERO, ZERO, ZERO, at)
        return found

    def stock(self, at: int, stream: UUID, kind: str, data: Json, header: Header) -> None:
        self.positions[stream] = at
        if kind == "Opened":
            key = self.names[stream] = (data["sku"], data["warehouse"])
            self.opened.append(stream)
            level = self.level(key, at)
            level.stream_id, level.position = stream, at
            return
        if kind == "LotStatusSet":
            for row in self.lots.get((stream, data["lot"]), {}).values():
                row.status, row.position = data["status"], at
            return
        level = self.levels[self.names[stream]]
        level.position = at
        if kind == "Received":
            layer = data["layer"]["_data_"]
            quantity, cost = dec(layer["quantity"]), dec(layer["unit_cost"])
            level.on_hand += quantity
            level.value += quantity * cost
            expires = data["expires_on"]
            self.add(stream, layer, None if expires is None else expires["_data_"], at)
            self.moved(
                at, stream, header, [(layer, quantity, cost, data["reason"], data["reference"])]
            )
        elif kind == "Removed":
            picks = [p["_data_"] for p in data["picks"]]
            changes = [
                (p, -dec(p["quantity"]), dec(p["unit_cost"]), data["reason"], data["reference"])
                for p in picks
            ]
            for pick, quantity, cost, _, _ in changes:
                level.on_hand += quantity
                level.value += quantity * cost
                self.take(stream, pick, -quantity, at)
            level.reserved -= self.hold(stream, data["released"], -1, at)
            self.moved(at, stream, header, changes)
        elif kind == "Moved":
            picks = [p["_data_"] for p in data["picks"]]
            arrivals = [a["_data_"] for a in data["arrivals"]]
            changes = [(p, -dec(p["quantity"]), dec(p["unit_cost"]), "move", None) for p in picks]
            expiry = {p["lot"]: p["expires_on"] for p in picks}
            for pick, quantity, _, _, _ in changes:
                self.take(stream, pick, -quantity, at)
            for layer in arrivals:
                expires = expiry.get(layer["lot"])
                self.add(stream, layer, None if expires is None else expires["_data_"], at)
            changes += [
                (a, dec(a["quantity"]), dec(a["unit_cost"]), "move", None) for a in arrivals
            ]
            level.reserved -= self.hold(stream, data["released"], -1, at)
            level.reserved += self.hold(stream, data["held"], +1, at)
            self.moved(at, stream, header, changes)
        elif kind == "Reserved":
            level.reserved += self.hold(stream, {data["reference"]: data["holds"]}, +1, at)
        elif kind == "ReservationReleased":
            level.reserved -= self.hold(stream, data["released"], -1, at)

    def order(self, at: int, order_id: UUID, kind: str, data: Json) -> None:
        if kind == "Created":
            lines = [x["_data_"] for x in data["lines"]]
            ordered = {x["line"]: [x["sku"], dec(x["quantity"]), ZERO] for x in lines}
            self.purchases[order_id] = Purchase("draft", data["warehouse"], at, ordered)
            return
        purchase = self.purchases.get(order_id)
        if purchase is None:
            return
        before = purchase.incoming()
        for receipt in data.get("receipts", ()):
            purchase.lines[receipt["_data_"]["line"]][2] += dec(receipt["_data_"]["quantity"])
        purchase.status, purchase.position = data["status"], at
        after = purchase.incoming()
        for key in before.keys() | after.keys():
            delta = after.get(key, ZERO) - before.get(key, ZERO)
            if delta:
                level = self.level(key, at)
                level.incoming += delta
                level.position = at

    def add(self, stream: UUID, layer: Json, expires_on: str | None, at: int) -> None:
        place = self.lots.setdefault((stream, layer["lot"]), {})
        row = place.get(layer["bin"])
        if row is None:
            status = next(iter(place.values())).status if place else "released"
            row = place[layer["bin"]] = LotRow(ZERO, ZERO, ZERO, expires_on, {}, status, at)
        quantity = dec(layer["quantity"])
        row.on_hand += quantity
        row.value += quantity * dec(layer["unit_cost"])
        row.layers[layer["id"]] = (layer["received_at"]["_data_"], quantity)
        row.position = at

    def take(self, stream: UUID, pick: Json, quantity: Decimal, at: int) -> None:
        row = self.lots[(stream, pick["lot"])][pick["bin"]]
        row.on_hand -= quantity
        row.value -= quantity * dec(pick["unit_cost"])
        received, left = row.layers[pick["layer"]]
        if left > quantity:
            row.layers[pick["layer"]] = (received, left - quantity)
        else:
            del row.layers[pick["layer"]]
        row.position = at

    def hold(self, stream: UUID, holds: dict[str, list[Json]], sign: int, at: int) -> Decimal:
        total = ZERO
        for reference_holds in holds.values():
            for hold in reference_holds:
                data = hold["_data_"]
                quantity = dec(data["quantity"])
                row = self.lots[(stream, data["lot"])][data["bin"]]
                row.reserved += sign * quantity
                row.position = at
                total += quantity
        return total

    def sweep(self) -> None:
        """Lot rows left empty go, as at the end of a rebuild batch."""
        for key, place in list(self.lots.items()):
            for bin_code in [b for b, r in place.items() if not r.on_hand and not r.reserved]:
                del place[bin_code]
            if not place:
                del self.lots[key]

    def moved(self, at: int, stream: UUID, header: Header, changes: list[tuple[Any, ...]]) -> None:
        meta: Json = orjson.loads(header)
        actor = meta.get("actor") or {}
        who = f"{actor.get('kind')}:{actor.get('id')}" if actor.get("id") else None
        recorded = meta["recorded_at"]
        effective = meta.get("effective_at") or recorded
        sku, warehouse = self.names[stream]
        request = meta.get("request_id")
        for seq, (place, quantity, cost, reason, reference) in enumerate(changes):
            self.movements.append(
                (
                    self.tenant_id,
                    at,
                    seq,
                    sku,
                    warehouse,
                    place["lot"],
                    place["bin"],
                    quantity,
                    cost,
                    reason,
                    reference,
                    effective,
                    recorded,
                    who,
                    request,
                )
            )
