"""Stock levels per (SKU, warehouse): on hand, reserved, incoming, value; available when asked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, Table, bindparam, insert, select, tuple_, update

from projections.alerts import available
from projections.events import LedgerEvent
from projections.schema import StockLevelOrderLineRow, StockLevelRow

ZERO = Decimal(0)
TABLE = cast("Table", StockLevelRow.__table__)
ORDER_LINES = cast("Table", StockLevelOrderLineRow.__table__)
OPEN_PURCHASES = frozenset({"submitted", "partially_received"})
STOCK_KINDS = frozenset(
    f"StockItem.{name}"
    for name in ("Opened", "Received", "Removed", "Moved", "Reserved", "ReservationReleased")
)
ORDER_KINDS = frozenset(
    f"PurchaseOrder.{name}" for name in ("Created", "Submitted", "Received", "Closed", "Cancelled")
)
Key = tuple[str, str]  # (SKU, warehouse)
#: Row values per IN list when a batch loads its stored levels.
SLICE = 1000
LEVEL_COLUMNS = ("stream_id", "on_hand", "reserved", "value", "incoming", "last_position")


@dataclass(frozen=True)
class StockLevel:
    """A stock level as the query functions return it; `available` is judged at query time."""

    sku: str
    warehouse: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    incoming: Decimal
    value: Decimal
    position: int

    @property
    def unreserved(self) -> Decimal:
        return self.on_hand - self.reserved


@dataclass
class _Level:
    stream_id: UUID | None  # None while the SKU is only ordered for the warehouse
    on_hand: Decimal
    reserved: Decimal
    value: Decimal
    incoming: Decimal
    last_position: int
    stored: bool
    changed: bool = False


@dataclass
class _Line:
    sku: str
    ordered: Decimal
    received: Decimal


@dataclass
class _Purchase:
    status: str
    warehouse: str
    position: int
    lines: dict[int, _Line]
    stored: bool
    changed: bool = False

    def incoming(self) -> dict[Key, Decimal]:
        """What this order still brings per (SKU, warehouse); nothing unless it is open."""
        totals: dict[Key, Decimal] = {}
        if self.status in OPEN_PURCHASES:
            for line in self.lines.values():
                key = (line.sku, self.warehouse)
                totals[key] = totals.get(key, ZERO) + max(line.ordered - line.received, ZERO)
        return totals


def _held(holds: Iterable[dict[str, Any]]) -> Decimal:
    return sum((hold["quantity"] for hold in holds), ZERO)


def _released(released: dict[str, list[dict[str, Any]]]) -> Decimal:
    return sum((_held(holds) for holds in released.values()), ZERO)


def _picked(picks: Sequence[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    quantity = sum((p["quantity"] for p in picks), ZERO)
    return quantity, sum((p["quantity"] * p["unit_cost"] for p in picks), ZERO)


@dataclass
class _Batch:
    """The rows one batch touches, loaded once and written once."""

    levels: dict[Key, _Level] = field(default_factory=dict)
    streams: dict[UUID, Key] = field(default_factory=dict)
    purchases: dict[UUID, _Purchase] = field(default_factory=dict)

    def level(self, key: Key, position: int) -> _Level:
        found = self.levels.get(key)
        if found is None:
            found = _Level(None, ZERO, ZERO, ZERO, ZERO, position, stored=False)
            self.levels[key] = found
        return found


class StockLevels:
    """Folds stock item events into one row per (SKU, warehouse), and purchase order events
    into its incoming stock (following the order lines itself, in rm_stock_level_orders)."""

    name = "stock_levels"
    tables = ("rm_stock_levels", "rm_stock_level_orders")
    kinds = STOCK_KINDS | ORDER_KINDS

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """Applies a batch: rows loaded once, changed in memory, written once; an event at or
        below its row's (or its order's) last position has already been applied."""
        wanted = [e for e in events if e.kind in self.kinds]
        batch = _load(conn, tenant_id, wanted)
        for event in wanted:
            if event.kind in STOCK_KINDS:
                _stock_event(batch, event)
            else:
                _order_event(batch, event)
        _write(conn, tenant_id, batch)


def _stock_event(batch: _Batch, event: LedgerEvent) -> None:
    data, at = event.data, event.position
    if event.kind == "StockItem.Opened":
        key = (data["sku"], data["warehouse"])
        level = batch.level(key, at)
        if level.stream_id is not None and at <= level.last_position:
            return
        level.stream_id, level.last_position, level.changed = event.stream_id, at, True
        batch.streams[event.stream_id] = key
        return
    found = batch.streams.get(event.stream_id)
    assert found is not None, f"stock item {event.stream_id} was never opened"
    level = batch.levels[found]
    if at <= level.last_position:
        return
    kind = event.kind
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
    level.last_position, level.changed = at, True


def _order_event(batch: _Batch, event: LedgerEvent) -> None:
    """An order created before this projection followed orders is not known: a rebuild
    picks it up."""
    data, at = event.data, event.position
    purchase = batch.purchases.get(event.stream_id)
    if purchase is not None and at <= purchase.position:
        return
    if event.kind == "PurchaseOrder.Created":
        lines = {x["line"]: _Line(x["sku"], x["quantity"], ZERO) for x in data["lines"]}
        batch.purchases[event.stream_id] = _Purchase("draft", data["warehouse"], at, lines, False)
        return  # a draft brings nothing yet
    if purchase is None:
        return
    before = purchase.incoming()
    for receipt in data.get("receipts", ()):
        purchase.lines[receipt["line"]].received += receipt["quantity"]
    purchase.status, purchase.position, purchase.changed = data["status"], at, True
    after = purchase.incoming()
    for key in before.keys() | after.keys():
        delta = after.get(key, ZERO) - before.get(key, ZERO)
        if delta:
            level = batch.level(key, at)
            level.incoming += delta
            level.last_position, level.changed = at, True


def _load(conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> _Batch:
    batch = _Batch()
    streams = {e.stream_id for e in events if e.kind in STOCK_KINDS}
    orders = {e.stream_id for e in events if e.kind in ORDER_KINDS}
    if orders:
        found = conn.execute(
            select(ORDER_LINES).where(
                ORDER_LINES.c.tenant_id == tenant_id, ORDER_LINES.c.order_id.in_(orders)
            )
        )
        for r in found:
            purchase = batch.purchases.setdefault(
                r.order_id, _Purchase(r.status, r.warehouse, r.last_position, {}, True)
            )
            purchase.lines[r.line] = _Line(r.sku, r.ordered, r.received)
    keys = {(x.sku, p.warehouse) for p in batch.purchases.values() for x in p.lines.values()}
    for e in events:
        if e.kind == "StockItem.Opened":
            keys.add((e.data["sku"], e.data["warehouse"]))
        elif e.kind == "PurchaseOrder.Created":
            keys.update((x["sku"], e.data["warehouse"]) for x in e.data["lines"])
    if not streams and not keys:
        return batch
    # In slices: one IN list of many thousand row values exhausts PostgreSQL's stack.
    stream_list, key_list = list(streams), list(keys)
    wanted = [
        TABLE.c.stream_id.in_(stream_list[i : i + SLICE]) for i in range(0, len(stream_list), SLICE)
    ] + [
        tuple_(TABLE.c.sku, TABLE.c.warehouse).in_(key_list[i : i + SLICE])
        for i in range(0, len(key_list), SLICE)
    ]
    rows = [
        r
        for condition in wanted
        for r in conn.execute(select(TABLE).where(TABLE.c.tenant_id == tenant_id, condition))
    ]
    for r in rows:
        batch.levels[(r.sku, r.warehouse)] = _Level(
            **{n: getattr(r, n) for n in LEVEL_COLUMNS}, stored=True
        )
        if r.stream_id is not None:
            batch.streams[r.stream_id] = (r.sku, r.warehouse)
    return batch


def _write(conn: Connection, tenant_id: UUID, batch: _Batch) -> None:
    levels = [
        (
            {"tenant_id": tenant_id, "sku": sku, "warehouse": warehouse}
            | {n: getattr(level, n) for n in LEVEL_COLUMNS},
            level,
        )
        for (sku, warehouse), level in batch.levels.items()
    ]
    _store(conn, TABLE, ("sku", "warehouse"), LEVEL_COLUMNS, levels)
    lines = [
        ({"tenant_id": tenant_id, "order_id": order_id, "line": n, **_line(p, n)}, p)
        for order_id, p in batch.purchases.items()
        for n in p.lines
    ]
    _store(conn, ORDER_LINES, ("order_id", "line"), ("received", "status", "last_position"), lines)


def _store(
    conn: Connection,
    table: Table,
    key: tuple[str, ...],
    columns: tuple[str, ...],
    rows: Sequence[tuple[dict[str, Any], _Level | _Purchase]],
) -> None:
    """Inserts the rows new in this batch, updates the stored rows it changed."""
    new = [values for values, state in rows if not state.stored]
    if new:
        conn.execute(insert(table), new)
    key = ("tenant_id", *key)
    changed = [
        {**{f"k_{n}": values[n] for n in key}, **{f"v_{n}": values[n] for n in columns}}
        for values, state in rows
        if state.stored and state.changed
    ]
    if changed:
        conn.execute(
            update(table)
            .where(*(table.c[n] == bindparam(f"k_{n}") for n in key))
            .values({n: bindparam(f"v_{n}") for n in columns}),
            changed,
        )


def _line(purchase: _Purchase, number: int) -> dict[str, Any]:
    line = purchase.lines[number]
    return {
        "sku": line.sku,
        "warehouse": purchase.warehouse,
        "ordered": line.ordered,
        "received": line.received,
        "status": purchase.status,
        "last_position": purchase.position,
    }


def stock_levels(
    conn: Connection,
    tenant_id: UUID,
    *,
    sku: str | None = None,
    warehouse: str | None = None,
    changed_after: int | None = None,
    after: Key | None = None,
    limit: int = 100,
    today: date | None = None,
    now: datetime | None = None,
) -> list[StockLevel]:
    """A page of stock levels of one tenant, ordered by (SKU, warehouse), after a cursor.

    `available` is judged at query time (`today` and `now` as for `projections.alerts.available`).
    `changed_after` sees the rows events changed after that position; a lot expiring at
    midnight is no event, so the availability it takes away is not seen as a change.
    """
    query = select(TABLE).where(TABLE.c.tenant_id == tenant_id)
    if sku is not None:
        query = query.where(TABLE.c.sku == sku)
    if warehouse is not None:
        query = query.where(TABLE.c.warehouse == warehouse)
    if changed_after is not None:
        query = query.where(TABLE.c.last_position > changed_after)
    if after is not None:
        query = query.where(tuple_(TABLE.c.sku, TABLE.c.warehouse) > tuple_(*after))
    rows = list(conn.execute(query.order_by(TABLE.c.sku, TABLE.c.warehouse).limit(limit)))
    free = available(conn, tenant_id, [(r.sku, r.warehouse) for r in rows], today=today, now=now)
    return [
        StockLevel(
            sku=r.sku,
            warehouse=r.warehouse,
            on_hand=r.on_hand,
            reserved=r.reserved,
            available=free[(r.sku, r.warehouse)],
            incoming=r.incoming,
            value=r.value,
            position=r.last_position,
        )
        for r in rows
    ]
