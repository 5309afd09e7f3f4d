"""Stock levels per (SKU, warehouse): on hand, reserved, value, and the last change's position."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from projections.events import LedgerEvent
from projections.schema import StockLevelRow

ZERO = Decimal(0)
TABLE = cast("Table", StockLevelRow.__table__)


@dataclass(frozen=True)
class StockLevel:
    """A stock level as the query functions return it."""

    sku: str
    warehouse: str
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    position: int

    @property
    def unreserved(self) -> Decimal:
        return self.on_hand - self.reserved


@dataclass
class _Level:
    sku: str
    warehouse: str
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    position: int
    new: bool


def _held(holds: Iterable[dict[str, Any]]) -> Decimal:
    return sum((hold["quantity"] for hold in holds), ZERO)


def _released(released: dict[str, list[dict[str, Any]]]) -> Decimal:
    return sum((_held(holds) for holds in released.values()), ZERO)


def _picked(picks: Sequence[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    quantity = sum((p["quantity"] for p in picks), ZERO)
    return quantity, sum((p["quantity"] * p["unit_cost"] for p in picks), ZERO)


class StockLevels:
    """Folds stock item events into one row per (SKU, warehouse)."""

    name = "stock_levels"
    tables = ("rm_stock_levels",)
    kinds = frozenset(
        {
            "StockItem.Opened",
            "StockItem.Received",
            "StockItem.Removed",
            "StockItem.Moved",
            "StockItem.Reserved",
            "StockItem.ReservationReleased",
        }
    )

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """Applies a batch: rows loaded once, changed in memory, written once; an event at or
        below a row's last position has already been applied and changes nothing."""
        levels = self._load(conn, tenant_id, {e.stream_id for e in events if e.kind in self.kinds})
        for event in events:
            if event.kind not in self.kinds:
                continue
            level = levels.get(event.stream_id)
            if level is not None and event.position <= level.position:
                continue
            if event.kind == "StockItem.Opened":
                data = event.data
                levels[event.stream_id] = _Level(
                    data["sku"], data["warehouse"], ZERO, ZERO, ZERO, event.position, True
                )
                continue
            assert level is not None, f"stock item {event.stream_id} was never opened"
            self._change(level, event)
        self._write(conn, tenant_id, levels)

    @staticmethod
    def _change(level: _Level, event: LedgerEvent) -> None:
        data, kind = event.data, event.kind
        if kind == "StockItem.Received":
            layer = data["layer"]
            level.on_hand += layer["quantity"]
            level.value += layer["quantity"] * layer["unit_cost"]
        elif kind == "StockItem.Removed":
            quantity, cost = _picked(data["picks"])
            level.on_hand -= quantity
            level.value -= cost
            level.reserved -= _released(data["released"])
        elif kind == "StockItem.Moved":
            level.reserved += _released(data["held"]) - _released(data["released"])
        elif kind == "StockItem.Reserved":
            level.reserved += _held(data["holds"])
        elif kind == "StockItem.ReservationReleased":
            level.reserved -= _released(data["released"])
        level.position = event.position

    @staticmethod
    def _load(conn: Connection, tenant_id: UUID, streams: set[UUID]) -> dict[UUID, _Level]:
        if not streams:
            return {}
        rows = conn.execute(
            select(TABLE).where(TABLE.c.tenant_id == tenant_id, TABLE.c.stream_id.in_(streams))
        )
        return {
            row.stream_id: _Level(
                row.sku,
                row.warehouse,
                row.on_hand,
                row.reserved,
                row.value,
                row.last_position,
                False,
            )
            for row in rows
        }

    @staticmethod
    def _write(conn: Connection, tenant_id: UUID, levels: dict[UUID, _Level]) -> None:
        new = [
            {"tenant_id": tenant_id, "stream_id": stream, **_columns(level)}
            for stream, level in levels.items()
            if level.new
        ]
        changed = [
            {"t": tenant_id, "s": stream, **_columns(level)}
            for stream, level in levels.items()
            if not level.new
        ]
        if new:
            conn.execute(insert(TABLE), new)
        if changed:
            statement = (
                update(TABLE)
                .where(TABLE.c.tenant_id == bindparam("t"), TABLE.c.stream_id == bindparam("s"))
                .values(
                    on_hand=bindparam("on_hand"),
                    reserved=bindparam("reserved"),
                    value=bindparam("value"),
                    last_position=bindparam("last_position"),
                )
            )
            conn.execute(statement, changed)


def _columns(level: _Level) -> dict[str, Any]:
    return {
        "sku": level.sku,
        "warehouse": level.warehouse,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "value": level.value,
        "last_position": level.position,
    }


def stock_levels(
    conn: Connection,
    tenant_id: UUID,
    *,
    sku: str | None = None,
    warehouse: str | None = None,
    changed_after: int | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[StockLevel]:
    """A page of stock levels of one tenant, ordered by (SKU, warehouse), after a cursor."""
    query = select(TABLE).where(TABLE.c.tenant_id == tenant_id)
    if sku is not None:
        query = query.where(TABLE.c.sku == sku)
    if warehouse is not None:
        query = query.where(TABLE.c.warehouse == warehouse)
    if changed_after is not None:
        query = query.where(TABLE.c.last_position > changed_after)
    if after is not None:
        query = query.where(
            (TABLE.c.sku > after[0]) | ((TABLE.c.sku == after[0]) & (TABLE.c.warehouse > after[1]))
        )
    query = query.order_by(TABLE.c.sku, TABLE.c.warehouse).limit(limit)
    return [
        StockLevel(r.sku, r.warehouse, r.on_hand, r.reserved, r.value, r.last_position)
        for r in conn.execute(query)
    ]
