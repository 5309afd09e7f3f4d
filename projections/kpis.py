"""KPI facts per (tenant, business day, warehouse); an event's business day is the date of its
effective time in the tenant's time zone.

The facts are sums, so each event adds to them once: the stock items, orders and tenant followed
keep the position of the last event applied to them, written in the same transaction as the
facts, and an event at or below it changes nothing.

Sales order lines count on the day their order was created; the facts of that day change as the
order ships later. Every count is on record (StockItem.Counted), the ones that matched included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any, Self, TypeVar, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, Table, select

from projections.events import LedgerEvent
from projections.kpi_days import (
    DailyValue,
    Facts,
    Kpis,
    add_facts,
    closing_values,
    kpis,
    save_rows,
)
from projections.schema import KpiOrderRow, KpiStockItemRow, KpiTenantRow

__all__ = ["DailyValue", "Facts", "KpiFacts", "Kpis", "closing_values", "kpis"]

ZERO = Decimal(0)
ITEMS = cast("Table", KpiStockItemRow.__table__)
ORDERS = cast("Table", KpiOrderRow.__table__)
TENANTS = cast("Table", KpiTenantRow.__table__)
SOLD_BACK = frozenset({"return", "sale"})  # receipts that take sold stock back


@dataclass
class _State:
    """A followed stream: the position of the last event applied to it, and the position it
    was loaded at (None: not stored yet)."""

    position: int
    stored_at: int | None

    @classmethod
    def of(cls, row: Any) -> Self:
        names = [f.name for f in fields(cls)][2:]
        return cls(row.last_position, row.last_position, *(getattr(row, n) for n in names))

    def row(self) -> dict[str, Any]:
        names = [f.name for f in fields(self)][2:]
        return {**{n: getattr(self, n) for n in names}, "last_position": self.position}


@dataclass
class _Tenant(_State):
    timezone: str = "UTC"


@dataclass
class _Item(_State):
    """A stock item: its warehouse and what decides a stockout."""

    warehouse: str = ""
    on_hand: Decimal = ZERO
    reserved: Decimal = ZERO


@dataclass
class _Order(_State):
    """An order: its warehouse, the business day it was created, and (sales) its lines as
    {line: (ordered, shipped)}."""

    kind: str = ""
    warehouse: str = ""
    day: date = date.min
    lines: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Any) -> Self:
        lines = {int(n): (Decimal(o), Decimal(s)) for n, (o, s) in orjson.loads(row.lines).items()}
        return cls(row.last_position, row.last_position, row.kind, row.warehouse, row.day, lines)

    def row(self) -> dict[str, Any]:
        lines = {str(n): [str(o), str(s)] for n, (o, s) in self.lines.items()}
        return {**super().row(), "lines": orjson.dumps(lines).decode()}


S = TypeVar("S", bound=_State)


def _quantity(entries: Iterable[dict[str, Any]]) -> Decimal:
    return sum((entry["quantity"] for entry in entries), ZERO)


def _cost(entries: Iterable[dict[str, Any]]) -> Decimal:
    return sum((entry["quantity"] * entry["unit_cost"] for entry in entries), ZERO)


def _holds(holds: dict[str, list[dict[str, Any]]]) -> Decimal:
    return sum((_quantity(reference) for reference in holds.values()), ZERO)


class _Batch:
    """The state one batch touches, loaded once, changed in memory, written once."""

    def __init__(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        self.tenant_id = tenant_id
        self.facts: dict[tuple[date, str], Facts] = {}
        tenant = _load(conn, tenant_id, TENANTS, "tenant_id", {tenant_id}, _Tenant)
        self.tenant = tenant.get(tenant_id) or _Tenant(0, None)
        items = {e.stream_id for e in events if _stream(e) == "StockItem"}
        orders = {e.stream_id for e in events if _stream(e) == "Order"}
        self.items = _load(conn, tenant_id, ITEMS, "stream_id", items, _Item)
        self.orders = _load(conn, tenant_id, ORDERS, "order_id", orders, _Order)

    def day(self, event: LedgerEvent) -> date:
        return event.effective_at.astimezone(ZoneInfo(self.tenant.timezone)).date()

    def on(self, day: date, warehouse: str) -> Facts:
        return self.facts.setdefault((day, warehouse), Facts())

    def state(self, event: LedgerEvent) -> _State | None:
        """The state of the event's stream (None: not created yet)."""
        stream = _stream(event)
        if stream == "Tenant":
            return self.tenant
        return (self.items if stream == "StockItem" else self.orders).get(event.stream_id)

    def write(self, conn: Connection) -> None:
        followed: list[tuple[Table, str, dict[UUID, Any]]] = [
            (TENANTS, "tenant_id", {self.tenant_id: self.tenant}),
            (ITEMS, "stream_id", self.items),
            (ORDERS, "order_id", self.orders),
        ]
        for table, key, states in followed:
            rows = [
                (state.stored_at is not None, {key: k, **state.row()})
                for k, state in states.items()
                if state.position != (state.stored_at or 0)
            ]
            save_rows(conn, table, self.tenant_id, (key,), rows)
        add_facts(conn, self.tenant_id, self.facts)


def _stream(event: LedgerEvent) -> str:
    aggregate = event.kind.partition(".")[0]
    return "Order" if aggregate in ("SalesOrder", "PurchaseOrder") else aggregate


def _load(
    conn: Connection, tenant_id: UUID, table: Table, key: str, ids: set[UUID], state: type[S]
) -> dict[UUID, S]:
    """The stored states of some streams of a tenant, by id."""
    if not ids:
        return {}
    rows = conn.execute(select(table).where(table.c.tenant_id == tenant_id, table.c[key].in_(ids)))
    return {getattr(row, key): state.of(row) for row in rows}


# -- stock items --------------------------------------------------------------------------------

StockHandler = Callable[[_Item, Facts, dict[str, Any]], None]


def _received(item: _Item, facts: Facts, data: dict[str, Any]) -> None:
    layer, reason = data["layer"], data["reason"]
    quantity, value = layer["quantity"], layer["quantity"] * layer["unit_cost"]
    item.on_hand += quantity
    facts.value_change += value
    if reason in SOLD_BACK:
        facts.returned_cost += value


def _removed(item: _Item, facts: Facts, data: dict[str, Any]) -> None:
    quantity, cost, reason = _quantity(data["picks"]), _cost(data["picks"]), data["reason"]
    item.on_hand -= quantity
    item.reserved -= _holds(data["released"])
    facts.value_change -= cost
    if reason == "sale":
        facts.sold_cost += cost
    elif reason == "expiry":
        facts.expired_quantity += quantity
        facts.expired_value += cost


def _moved(item: _Item, facts: Facts, data: dict[str, Any]) -> None:
    facts.value_change += _cost(data["arrivals"]) - _cost(data["picks"])
    item.reserved += _holds(data["held"]) - _holds(data["released"])


def _reserved(item: _Item, _facts: Facts, data: dict[str, Any]) -> None:
    item.reserved += _quantity(data["holds"])


def _reservation_released(item: _Item, _facts: Facts, data: dict[str, Any]) -> None:
    item.reserved -= _holds(data["released"])


def _counted(_item: _Item, facts: Facts, data: dict[str, Any]) -> None:
    facts.counts += 1
    facts.accurate_counts += int(data["counted"] == data["ledger"])


STOCK: dict[str, StockHandler] = {
    "StockItem.Received": _received,
    "StockItem.Removed": _removed,
    "StockItem.Moved": _moved,
    "StockItem.Reserved": _reserved,
    "StockItem.ReservationReleased": _reservation_released,
    "StockItem.Counted": _counted,
}


def _stock_opened(batch: _Batch, event: LedgerEvent) -> None:
    batch.items[event.stream_id] = _Item(event.position, None, event.data["warehouse"])


def _stock_changed(batch: _Batch, event: LedgerEvent) -> None:
    """A change of a stock item; a fall of its unreserved stock to zero or below is a stockout."""
    item = batch.items.get(event.stream_id)
    assert item is not None, f"stock item {event.stream_id} was never opened"
    facts = batch.on(batch.day(event), item.warehouse)
    before = item.on_hand - item.reserved
    STOCK[event.kind](item, facts, event.data)
    if before > ZERO >= item.on_hand - item.reserved:
        facts.stockouts += 1


# -- orders and the tenant ----------------------------------------------------------------------


def _sales_created(batch: _Batch, event: LedgerEvent) -> None:
    day, warehouse = batch.day(event), event.data["warehouse"]
    lines = {line["line"]: (line["quantity"], ZERO) for line in event.data["lines"]}
    batch.orders[event.stream_id] = _Order(event.position, None, "sales", warehouse, day, lines)
    facts = batch.on(day, warehouse)
    facts.ordered_units += sum((ordered for ordered, _ in lines.values()), ZERO)
    facts.order_lines += len(lines)


def _sales_shipped(batch: _Batch, event: LedgerEvent) -> None:
    """Shipments count on the order's day, never beyond what a line ordered."""
    order = _order(batch, event)
    facts = batch.on(order.day, order.warehouse)
    for shipment in event.data["shipments"]:
        ordered, shipped = order.lines[shipment["line"]]
        now = shipped + shipment["quantity"]
        facts.shipped_units += max(min(now, ordered) - shipped, ZERO)
        facts.filled_lines += int(shipped < ordered <= now)
        order.lines[shipment["line"]] = (ordered, now)


def _purchase_created(batch: _Batch, event: LedgerEvent) -> None:
    day, warehouse = batch.day(event), event.data["warehouse"]
    batch.orders[event.stream_id] = _Order(event.position, None, "purchase", warehouse, day)


def _purchase_received(batch: _Batch, event: LedgerEvent) -> None:
    """A receipt is on time on or before the order's expected date, or when it has none."""
    order, day, expected = _order(batch, event), batch.day(event), event.data["expected_on"]
    facts = batch.on(day, order.warehouse)
    quantity = _quantity(event.data["receipts"])
    facts.received_units += quantity
    if expected is None or day <= expected:
        facts.on_time_units += quantity


def _order(batch: _Batch, event: LedgerEvent) -> _Order:
    order = batch.orders.get(event.stream_id)
    assert order is not None, f"order {event.stream_id} was never created"
    return order


def _tenant_created(batch: _Batch, event: LedgerEvent) -> None:
    batch.tenant.timezone = event.data["timezone"]


def _settings_changed(batch: _Batch, event: LedgerEvent) -> None:
    batch.tenant.timezone = event.data["changes"].get("timezone", batch.tenant.timezone)


HANDLERS: dict[str, Callable[[_Batch, LedgerEvent], None]] = {
    "Tenant.Created": _tenant_created,
    "Tenant.SettingsChanged": _settings_changed,
    "StockItem.Opened": _stock_opened,
    **dict.fromkeys(STOCK, _stock_changed),
    "SalesOrder.Created": _sales_created,
    "SalesOrder.Shipped": _sales_shipped,
    "PurchaseOrder.Created": _purchase_created,
    "PurchaseOrder.Received": _purchase_received,
}


class KpiFacts:
    """Folds stock, order and tenant events into KPI facts per business day and warehouse."""

    name = "kpis"
    tables = ("rm_kpi_tenants", "rm_kpi_stock_items", "rm_kpi_orders", "rm_kpi_days")
    kinds = frozenset(HANDLERS)

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """A batch in memory, then written; an event at or below its stream's last applied
        position changes nothing."""
        wanted = [e for e in events if e.kind in self.kinds]
        batch = _Batch(conn, tenant_id, wanted)
        for event in wanted:
            state = batch.state(event)
            if state is not None and event.position <= state.position:
                continue
            HANDLERS[event.kind](batch, event)
            if state is not None:
                state.position = event.position
        batch.write(conn)
