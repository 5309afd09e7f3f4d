"""Purchase and sales orders with their lines, statuses and quantities; incoming stock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, Table, and_, bindparam, insert, select, update

from projections.events import LedgerEvent
from projections.schema import OrderLineRow, OrderRow

ZERO = Decimal(0)
ORDERS = cast("Table", OrderRow.__table__)
LINES = cast("Table", OrderLineRow.__table__)
QUANTITIES = ("received", "allocated", "shipped", "returned", "cancelled")
OPEN_PURCHASES = ("submitted", "partially_received")


@dataclass
class _Order:
    status: str
    position: int
    lines: dict[int, dict[str, Any]] = field(default_factory=dict)
    columns: dict[str, Any] | None = None  # set for an order created in this batch


def _add(order: _Order, changes: Iterable[dict[str, Any]], column: str, sign: int) -> None:
    for change in changes:
        order.lines[change["line"]][column] += sign * change["quantity"]


class Orders:
    """Folds purchase and sales order events into order and line rows."""

    name = "orders"
    tables = ("rm_orders", "rm_order_lines")
    kinds = frozenset(
        {
            "PurchaseOrder.Created",
            "PurchaseOrder.Submitted",
            "PurchaseOrder.Received",
            "PurchaseOrder.Closed",
            "PurchaseOrder.Cancelled",
            "SalesOrder.Created",
            "SalesOrder.Allocated",
            "SalesOrder.ReservationLost",
            "SalesOrder.Shipped",
            "SalesOrder.Cancelled",
            "SalesOrder.Returned",
        }
    )

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """A batch in memory, then written; an event at or below an order's position is skipped."""
        wanted = [e for e in events if e.kind in self.kinds]
        orders = self._load(conn, tenant_id, {e.stream_id for e in wanted})
        for event in wanted:
            order = orders.get(event.stream_id)
            if order is not None and event.position <= order.position:
                continue
            if event.kind.endswith(".Created"):
                orders[event.stream_id] = _created(event)
                continue
            assert order is not None, f"order {event.stream_id} was never created"
            _change(order, event)
            order.position = event.position
        self._write(conn, tenant_id, orders)

    @staticmethod
    def _load(conn: Connection, tenant_id: UUID, ids: set[UUID]) -> dict[UUID, _Order]:
        if not ids:
            return {}
        rows = conn.execute(
            select(ORDERS).where(ORDERS.c.tenant_id == tenant_id, ORDERS.c.order_id.in_(ids))
        )
        orders = {row.order_id: _Order(row.status, row.last_position) for row in rows}
        lines = conn.execute(
            select(LINES).where(LINES.c.tenant_id == tenant_id, LINES.c.order_id.in_(orders))
        )
        for line in lines:
            orders[line.order_id].lines[line.line] = {
                name: getattr(line, name) for name in QUANTITIES
            }
        return orders

    @staticmethod
    def _write(conn: Connection, tenant_id: UUID, orders: dict[UUID, _Order]) -> None:
        new = {k: o for k, o in orders.items() if o.columns is not None}
        old = {k: o for k, o in orders.items() if o.columns is None}
        if new:
            conn.execute(
                insert(ORDERS),
                [
                    {
                        **(o.columns or {}),
                        "tenant_id": tenant_id,
                        "order_id": k,
                        "status": o.status,
                        "last_position": o.position,
                    }
                    for k, o in new.items()
                ],
            )
            conn.execute(
                insert(LINES),
                [
                    {"tenant_id": tenant_id, "order_id": k, "line": n, **line}
                    for k, o in new.items()
                    for n, line in o.lines.items()
                ],
            )
        if old:
            conn.execute(
                update(ORDERS)
                .where(ORDERS.c.tenant_id == tenant_id, ORDERS.c.order_id == bindparam("o"))
                .values(status=bindparam("s"), last_position=bindparam("p")),
                [{"o": k, "s": o.status, "p": o.position} for k, o in old.items()],
            )
            conn.execute(
                update(LINES)
                .where(
                    and_(
                        LINES.c.tenant_id == tenant_id,
                        LINES.c.order_id == bindparam("o"),
                        LINES.c.line == bindparam("n"),
                    )
                )
                .values({name: bindparam(name) for name in QUANTITIES}),
                [
                    {"o": k, "n": n, **{name: line[name] for name in QUANTITIES}}
                    for k, o in old.items()
                    for n, line in o.lines.items()
                ],
            )


def _created(event: LedgerEvent) -> _Order:
    data = event.data
    purchase = event.kind.startswith("PurchaseOrder")
    order = _Order(status="draft" if purchase else "open", position=event.position)
    order.columns = {
        "kind": "purchase" if purchase else "sales",
        "partner": data["supplier"] if purchase else data["customer"],
        "warehouse": data["warehouse"],
        "external_id": data["external_id"],
        "reference": data["reference"],
        "expected_on": data.get("expected_on"),
        "created_at": event.recorded_at,
    }
    for line in data["lines"]:
        order.lines[line["line"]] = {
            "sku": line["sku"],
            "ordered": line["quantity"],
            "unit_cost": line["unit_cost"],
            **dict.fromkeys(QUANTITIES, ZERO),
        }
    return order


def _change(order: _Order, event: LedgerEvent) -> None:
    data, kind = event.data, event.kind.partition(".")[2]
    if kind == "Received":
        _add(order, data["receipts"], "received", +1)
    elif kind == "Closed":
        _add(order, data["short"], "cancelled", +1)
    elif kind == "Allocated":
        _add(order, data["released"], "allocated", -1)
        _add(order, data["reserved"], "allocated", +1)
    elif kind == "ReservationLost":
        _add(order, data["released"], "allocated", -1)
    elif kind == "Shipped":
        _add(order, data["shipments"], "allocated", -1)
        _add(order, data["shipments"], "shipped", +1)
    elif kind == "Cancelled" and "released" in data:  # a sales order's
        _add(order, data["released"], "allocated", -1)
        _add(order, data["cancelled"], "cancelled", +1)
    elif kind == "Returned":
        _add(order, data["returns"], "returned", +1)
    if "status" in data:
        order.status = data["status"]


@dataclass(frozen=True)
class OrderLine:
    """An order line as the query functions return it."""

    line: int
    sku: str
    ordered: Decimal
    unit_cost: Decimal | None
    received: Decimal
    allocated: Decimal
    shipped: Decimal
    returned: Decimal
    cancelled: Decimal


@dataclass(frozen=True)
class Order:
    """An order as the query functions return it."""

    order_id: UUID
    kind: str
    partner: str
    warehouse: str
    external_id: str | None
    reference: str | None
    expected_on: date | None
    status: str
    position: int
    lines: tuple[OrderLine, ...]


def orders(
    conn: Connection,
    tenant_id: UUID,
    *,
    kind: str,
    status: str | None = None,
    external_id: str | None = None,
    after: UUID | None = None,
    limit: int = 100,
) -> list[Order]:
    """A page of one tenant's purchase or sales orders with their lines, by id after a cursor."""
    query = select(ORDERS).where(ORDERS.c.tenant_id == tenant_id, ORDERS.c.kind == kind)
    if status is not None:
        query = query.where(ORDERS.c.status == status)
    if external_id is not None:
        query = query.where(ORDERS.c.external_id == external_id)
    if after is not None:
        query = query.where(ORDERS.c.order_id > after)
    heads = list(conn.execute(query.order_by(ORDERS.c.order_id).limit(limit)))
    lines: dict[UUID, list[OrderLine]] = {}
    found = conn.execute(
        select(LINES)
        .where(LINES.c.tenant_id == tenant_id, LINES.c.order_id.in_([h.order_id for h in heads]))
        .order_by(LINES.c.order_id, LINES.c.line)
    )
    for r in found:
        lines.setdefault(r.order_id, []).append(
            OrderLine(r.line, r.sku, r.ordered, r.unit_cost, *(getattr(r, n) for n in QUANTITIES))
        )
    return [
        Order(
            h.order_id,
            h.kind,
            h.partner,
            h.warehouse,
            h.external_id,
            h.reference,
            h.expected_on,
            h.status,
            h.last_position,
            tuple(lines.get(h.order_id, [])),
        )
        for h in heads
    ]


def incoming(conn: Connection, tenant_id: UUID) -> dict[tuple[str, str], Decimal]:
    """Open quantities of submitted purchase orders per (SKU, warehouse): incoming stock."""
    rows = conn.execute(
        select(LINES.c.sku, ORDERS.c.warehouse, LINES.c.ordered, LINES.c.received)
        .join(
            ORDERS,
            and_(ORDERS.c.tenant_id == LINES.c.tenant_id, ORDERS.c.order_id == LINES.c.order_id),
        )
        .where(
            LINES.c.tenant_id == tenant_id,
            ORDERS.c.kind == "purchase",
            ORDERS.c.status.in_(OPEN_PURCHASES),
        )
    )
    totals: dict[tuple[str, str], Decimal] = {}
    for sku, warehouse, ordered, received in rows:
        open_quantity = max(ordered - received, ZERO)
        if open_quantity:
            totals[(sku, warehouse)] = totals.get((sku, warehouse), ZERO) + open_quantity
    return totals
