"""Lots per (SKU, warehouse, lot, bin): on hand, reserved, value, expiry, receipt time, status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import orjson
from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)

from projections.events import LedgerEvent
from projections.schema import LotRow, LotStreamRow

ZERO = Decimal(0)
LOTS = cast("Table", LotRow.__table__)
STREAMS = cast("Table", LotStreamRow.__table__)
Place = tuple[int, str, str]  # (stock item stream as an int, lot, bin)


@dataclass(frozen=True)
class LotLevel:
    """A lot in a bin as the query functions return it."""

    sku: str
    warehouse: str
    lot: str
    bin: str
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    expires_on: date | None
    received_at: datetime
    status: str
    position: int


@dataclass
class _Row:
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    expires_on: date | None
    layers: dict[int, tuple[datetime, Decimal]]  # the cost layers left here: receipt time, quantity
    status: str
    position: int
    stored: bool

    @property
    def received_at(self) -> datetime:
        """When the oldest stock still here was received."""
        return min(received for received, _ in self.layers.values())


def _layers_json(layers: dict[int, tuple[datetime, Decimal]]) -> str:
    return orjson.dumps(
        [[k, t.isoformat(), str(q)] for k, (t, q) in sorted(layers.items())]
    ).decode()


def _layers_of(text: str) -> dict[int, tuple[datetime, Decimal]]:
    return {k: (datetime.fromisoformat(t), Decimal(q)) for k, t, q in orjson.loads(text)}


class _Batch:
    """The rows one batch touches, loaded once per stock item and written once."""

    def __init__(self, conn: Connection, tenant_id: UUID, streams: set[UUID]) -> None:
        self.tenant_id = tenant_id
        # Streams are keyed by their ids' ints: a UUID hashes in Python, an int natively.
        self.names: dict[int, tuple[str, str]] = {}
        self.rows: dict[Place, _Row] = {}
        self.bins: dict[tuple[int, str], list[_Row]] = {}  # the rows of each (stream, lot)
        self.positions: dict[int, int] = {}
        if streams:
            for s in conn.execute(
                select(STREAMS).where(
                    STREAMS.c.tenant_id == tenant_id, STREAMS.c.stream_id.in_(streams)
                )
            ):
                self.names[s.stream_id.int] = (s.sku, s.warehouse)
                self.positions[s.stream_id.int] = s.last_position
            for r in conn.execute(
                select(LOTS).where(LOTS.c.tenant_id == tenant_id, LOTS.c.stream_id.in_(streams))
            ):
                self._keep(
                    (r.stream_id.int, r.lot, r.bin),
                    _Row(
                        r.on_hand,
                        r.reserved,
                        r.value,
                        r.expires_on,
                        _layers_of(r.layers),
                        r.status,
                        r.last_position,
                        True,
                    ),
                )
        self.new_streams: set[int] = set()

    def _keep(self, place: Place, row: _Row) -> None:
        self.rows[place] = row
        self.bins.setdefault(place[:2], []).append(row)

    def lot_rows(self, stream: int, lot: str) -> list[_Row]:
        """Every row of a lot on a stream, in any bin."""
        return self.bins.get((stream, lot), [])

    def status_of(self, stream: int, lot: str) -> str:
        rows = self.lot_rows(stream, lot)
        return rows[0].status if rows else "released"

    def row(self, stream: int, lot: str, bin_code: str) -> _Row:
        row = self.rows.get((stream, lot, bin_code))
        assert row is not None, f"no stock of lot {lot} in {bin_code} on stream {UUID(int=stream)}"
        return row

    def add(self, stream: int, layer: dict[str, Any], expires_on: date | None, at: int) -> None:
        place = (stream, layer["lot"], layer["bin"])
        row = self.rows.get(place)
        if row is None:
            status = self.status_of(stream, layer["lot"])
            row = _Row(ZERO, ZERO, ZERO, expires_on, {}, status, at, False)
            self._keep(place, row)
        row.on_hand += layer["quantity"]
        row.value += layer["quantity"] * layer["unit_cost"]
        row.layers[layer["id"]] = (layer["received_at"], layer["quantity"])
        row.position = at

    def take(self, stream: int, picks: Iterable[dict[str, Any]], at: int) -> None:
        for pick in picks:
            row = self.row(stream, pick["lot"], pick["bin"])
            row.on_hand -= pick["quantity"]
            row.value -= pick["quantity"] * pick["unit_cost"]
            received, left = row.layers[pick["layer"]]
            if left > pick["quantity"]:
                row.layers[pick["layer"]] = (received, left - pick["quantity"])
            else:
                del row.layers[pick["layer"]]
            row.position = at

    def hold(self, stream: int, holds: dict[str, list[dict[str, Any]]], sign: int, at: int) -> None:
        for reference_holds in holds.values():
            for hold in reference_holds:
                row = self.row(stream, hold["lot"], hold["bin"])
                row.reserved += sign * hold["quantity"]
                row.position = at


class Lots:
    """Folds stock item events into one row per lot and bin (rows leave when empty)."""

    name = "lots"
    tables = ("rm_lot_streams", "rm_lots")
    kinds = frozenset(
        {
            "StockItem.Opened",
            "StockItem.Received",
            "StockItem.Removed",
            "StockItem.Moved",
            "StockItem.Reserved",
            "StockItem.ReservationReleased",
            "StockItem.LotStatusSet",
        }
    )

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """A batch in memory, then written; events a stock item already applied are skipped."""
        batch = _Batch(conn, tenant_id, {e.stream_id for e in events if e.kind in self.kinds})
        for event in events:
            stream, at = event.stream_id.int, event.position
            if event.kind not in self.kinds or at <= batch.positions.get(stream, 0):
                continue
            batch.positions[stream] = at
            self._apply(batch, event)
        self._write(conn, batch)

    @staticmethod
    def _apply(batch: _Batch, event: LedgerEvent) -> None:
        data, stream, at = event.data, event.stream_id.int, event.position
        kind = event.kind
        if kind == "StockItem.Opened":
            batch.names[stream] = (data["sku"], data["warehouse"])
            batch.new_streams.add(stream)
        elif kind == "StockItem.Received":
            batch.add(stream, data["layer"], data["expires_on"], at)
        elif kind == "StockItem.Removed":
            batch.take(stream, data["picks"], at)
            batch.hold(stream, data["released"], -1, at)
        elif kind == "StockItem.Moved":
            expiry = {p["lot"]: p["expires_on"] for p in data["picks"]}
            batch.take(stream, data["picks"], at)
            for layer in data["arrivals"]:
                batch.add(stream, layer, expiry.get(layer["lot"]), at)
            batch.hold(stream, data["released"], -1, at)
            batch.hold(stream, data["held"], +1, at)
        elif kind == "StockItem.Reserved":
            batch.hold(stream, {data["reference"]: data["holds"]}, +1, at)
        elif kind == "StockItem.ReservationReleased":
            batch.hold(stream, data["released"], -1, at)
        elif kind == "StockItem.LotStatusSet":
            for row in batch.lot_rows(stream, data["lot"]):
                row.status, row.position = data["status"], at

    @staticmethod
    def _write(conn: Connection, batch: _Batch) -> None:
        tenant = batch.tenant_id
        if batch.new_streams:
            conn.execute(
                insert(STREAMS),
                [
                    {
                        "tenant_id": tenant,
                        "stream_id": UUID(int=s),
                        "sku": batch.names[s][0],
                        "warehouse": batch.names[s][1],
                        "last_position": batch.positions[s],
                    }
                    for s in batch.new_streams
                ],
            )
        old = [s for s in batch.positions if s not in batch.new_streams]
        if old:
            conn.execute(
                update(STREAMS)
                .where(STREAMS.c.tenant_id == tenant, STREAMS.c.stream_id == bindparam("s"))
                .values(last_position=bindparam("p")),
                [{"s": UUID(int=s), "p": batch.positions[s]} for s in old],
            )
        gone = [
            {"s": UUID(int=s), "l": lot, "b": bin_code}
            for (s, lot, bin_code), row in batch.rows.items()
            if row.stored and row.on_hand == ZERO and row.reserved == ZERO
        ]
        if gone:
            conn.execute(
                delete(LOTS).where(
                    and_(
                        LOTS.c.tenant_id == tenant,
                        LOTS.c.stream_id == bindparam("s"),
                        LOTS.c.lot == bindparam("l"),
                        LOTS.c.bin == bindparam("b"),
                    )
                ),
                gone,
            )
        keep = {p: r for p, r in batch.rows.items() if r.on_hand != ZERO or r.reserved != ZERO}
        fresh = [_values(batch, p, r) for p, r in keep.items() if not r.stored]
        if fresh:
            conn.execute(insert(LOTS), fresh)
        changed = [
            {"s": UUID(int=p[0]), "l": p[1], "b": p[2], **_changes(r)}
            for p, r in keep.items()
            if r.stored
        ]
        if changed:
            conn.execute(
                update(LOTS)
                .where(
                    LOTS.c.tenant_id == tenant,
                    LOTS.c.stream_id == bindparam("s"),
                    LOTS.c.lot == bindparam("l"),
                    LOTS.c.bin == bindparam("b"),
                )
                .values({name: bindparam(name) for name in _changes(next(iter(keep.values())))}),
                changed,
            )


def _changes(row: _Row) -> dict[str, Any]:
    return {
        "on_hand": row.on_hand,
        "reserved": row.reserved,
        "value": row.value,
        "received_at": row.received_at,
        "layers": _layers_json(row.layers),
        "status": row.status,
        "last_position": row.position,
    }


def _values(batch: _Batch, place: Place, row: _Row) -> dict[str, Any]:
    stream, lot, bin_code = place
    sku, warehouse = batch.names[stream]
    return {
        "tenant_id": batch.tenant_id,
        "sku": sku,
        "warehouse": warehouse,
        "lot": lot,
        "bin": bin_code,
        "stream_id": UUID(int=stream),
        "expires_on": row.expires_on,
        **_changes(row),
    }


def lots(
    conn: Connection,
    tenant_id: UUID,
    *,
    sku: str | None = None,
    warehouse: str | None = None,
    lot: str | None = None,
    after: tuple[str, str, str, str] | None = None,
    limit: int = 100,
) -> list[LotLevel]:
    """A page of one tenant's lots in bins, by (SKU, warehouse, lot, bin), after a cursor."""
    order = (LOTS.c.sku, LOTS.c.warehouse, LOTS.c.lot, LOTS.c.bin)
    query = select(LOTS).where(LOTS.c.tenant_id == tenant_id)
    for column, wanted in ((LOTS.c.sku, sku), (LOTS.c.warehouse, warehouse), (LOTS.c.lot, lot)):
        if wanted is not None:
            query = query.where(column == wanted)
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*after))
    rows = conn.execute(query.order_by(*order).limit(limit))
    return [
        LotLevel(
            r.sku,
            r.warehouse,
            r.lot,
            r.bin,
            r.on_hand,
            r.reserved,
            r.value,
            r.expires_on,
            r.received_at,
            r.status,
            r.last_position,
        )
        for r in rows
    ]
