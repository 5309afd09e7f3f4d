"""Writing recorded alerts: raising the conditions found without an open record, clearing the
open records whose condition no longer holds, and noting each change of an order's status.

A record's id is a uuid5 of (tenant, kind, subject, raised position), so applying the same
events again finds the record it raised the first time and writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid5

import orjson
from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from consumers.alert_judging import CONDITION_KINDS, Finding, slices
from projections.alert_records import ALERT_RECORDS
from projections.alerts import Key
from projections.events import LedgerEvent
from projections.schema import OrderRow

RECORDS = ALERT_RECORDS.c
ORDERS = OrderRow.__table__.c
ORDER_KINDS = frozenset(
    [f"PurchaseOrder.{n}" for n in ("Created", "Submitted", "Received", "Closed", "Cancelled")]
    + [
        f"SalesOrder.{n}"
        for n in ("Created", "Allocated", "ReservationLost", "Shipped", "Cancelled", "Returned")
    ]
)


class _Open(NamedTuple):
    alert_id: str
    sku: str
    warehouse: str
    raised_position: int


@dataclass(frozen=True)
class Stamp:
    """Where and when a record is raised or cleared: the position of the event (or the
    tracked position of a sweep) and its time."""

    position: int
    at: datetime


def alert_id(tenant_id: UUID, kind: str, subject: str, position: int) -> str:
    """The id of the record of `kind` raised for `subject` at `position`."""
    return str(uuid5(tenant_id, f"{kind}\x1f{subject}\x1f{position}"))


def reconcile(
    conn: Connection, tenant_id: UUID, stamps: Mapping[Key, Stamp], findings: Sequence[Finding]
) -> None:
    """Brings the open condition records of the keys in line with the findings: a finding
    without an open record is raised at its key's stamp, an open record without a finding
    is cleared there (unless it was raised after that stamp: a replay of earlier events)."""
    opened = _open_conditions(conn, tenant_id, stamps.keys())
    held = {(f.kind, f.subject) for f in findings}
    _raise(
        conn,
        tenant_id,
        [(f, stamps[f.key]) for f in findings if (f.kind, f.subject) not in opened],
    )
    ended = [
        (row.alert_id, stamp)
        for found, rows in opened.items()
        if found not in held
        for row in rows
        if (stamp := stamps[(row.sku, row.warehouse)]).position >= row.raised_position
    ]
    if ended:
        conn.execute(
            update(ALERT_RECORDS)
            .where(
                RECORDS.tenant_id == tenant_id,
                RECORDS.alert_id == bindparam("a"),
                RECORDS.cleared_position.is_(None),
            )
            .values(cleared_at=bindparam("t"), cleared_position=bindparam("p")),
            [{"a": a, "t": s.at, "p": s.position} for a, s in ended],
        )


def open_keys(
    conn: Connection,
    tenant_id: UUID,
    *,
    skus: Collection[str] = (),
    warehouses: Collection[str] = (),
) -> set[Key]:
    """The keys of open condition records of these SKUs or warehouses (or of every one when
    neither is given)."""
    query = (
        select(RECORDS.sku, RECORDS.warehouse)
        .distinct()
        .where(
            RECORDS.tenant_id == tenant_id,
            RECORDS.kind.in_(CONDITION_KINDS),
            RECORDS.cleared_position.is_(None),
        )
    )
    if skus or warehouses:
        query = query.where(RECORDS.sku.in_(skus) | RECORDS.warehouse.in_(warehouses))
    return {(r.sku, r.warehouse) for r in conn.execute(query)}


def _open_conditions(
    conn: Connection, tenant_id: UUID, keys: Iterable[Key]
) -> dict[tuple[str, str], list[_Open]]:
    found: dict[tuple[str, str], list[_Open]] = {}
    for part in slices(set(keys)):
        rows = conn.execute(
            select(
                RECORDS.alert_id,
                RECORDS.kind,
                RECORDS.subject,
                RECORDS.sku,
                RECORDS.warehouse,
                RECORDS.raised_position,
            ).where(
                RECORDS.tenant_id == tenant_id,
                RECORDS.kind.in_(CONDITION_KINDS),
                RECORDS.cleared_position.is_(None),
                tuple_(RECORDS.sku, RECORDS.warehouse).in_(part),
            )
        )
        for row in rows:
            opened = _Open(row.alert_id, row.sku, row.warehouse, row.raised_position)
            found.setdefault((row.kind, row.subject), []).append(opened)
    return found


def _raise(conn: Connection, tenant_id: UUID, raised: Sequence[tuple[Finding, Stamp]]) -> None:
    rows = [
        {
            "tenant_id": tenant_id,
            "alert_id": alert_id(tenant_id, f.kind, f.subject, s.position),
            "kind": f.kind,
            "subject": f.subject,
            "sku": f.sku,
            "warehouse": f.warehouse,
            "lot": f.lot,
            "bin": f.bin,
            "order_id": None,
            "details": orjson.dumps(f.details).decode(),
            "raised_at": s.at,
            "raised_position": s.position,
            "cleared_at": None,
            "cleared_position": None,
        }
        for f, s in raised
    ]
    _insert_new(conn, tenant_id, rows)


def _insert_new(conn: Connection, tenant_id: UUID, rows: list[dict[str, Any]]) -> None:
    """Inserts the rows whose id is not recorded yet."""
    if not rows:
        return
    ids = [r["alert_id"] for r in rows]
    known = set(
        conn.scalars(
            select(RECORDS.alert_id).where(
                RECORDS.tenant_id == tenant_id, RECORDS.alert_id.in_(ids)
            )
        )
    )
    new = [r for r in rows if r["alert_id"] not in known]
    if new:
        conn.execute(insert(ALERT_RECORDS), new)


# -- order status ---------------------------------------------------------------------------------


def record_orders(conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
    """One `order_status` record per change of an order's status among the events (raised and
    cleared at the event's position), with the status before and after it."""
    wanted = [e for e in events if e.kind in ORDER_KINDS]
    if not wanted:
        return
    ids = {e.stream_id for e in wanted}
    known: dict[UUID, tuple[str | None, str | None]] = {
        r.order_id: (r.warehouse, r.external_id)
        for r in conn.execute(
            select(ORDERS.order_id, ORDERS.warehouse, ORDERS.external_id).where(
                ORDERS.tenant_id == tenant_id, ORDERS.order_id.in_(ids)
            )
        )
    }
    history = _statuses(conn, tenant_id, {str(i) for i in ids})
    rows = []
    for event in wanted:
        new = _status_after(event)
        if new is None:
            continue
        past = history.setdefault(str(event.stream_id), [])
        before = [status for at, status in past if at < event.position]
        old = before[-1] if before else None
        past.append((event.position, new))
        past.sort()
        if old != new:
            order = known.get(event.stream_id, (None, None))
            rows.append(_order_row(tenant_id, event, old, new, order))
    _insert_new(conn, tenant_id, rows)


def _order_row(
    tenant_id: UUID,
    event: LedgerEvent,
    old: str | None,
    new: str,
    order: tuple[str | None, str | None],
) -> dict[str, Any]:
    """The record of a status change; the order's warehouse and external id come from its
    creation event, or else from the orders read model (`order`)."""
    subject = str(event.stream_id)
    warehouse, external_id = order
    if event.kind.endswith(".Created"):
        warehouse, external_id = event.data["warehouse"], event.data.get("external_id")
    details = {
        "order_kind": "purchase" if event.kind.startswith("PurchaseOrder") else "sales",
        "event": event.kind,
        "old_status": old,
        "new_status": new,
        "external_id": external_id,
    }
    return {
        "tenant_id": tenant_id,
        "alert_id": alert_id(tenant_id, "order_status", subject, event.position),
        "kind": "order_status",
        "subject": subject,
        "sku": None,
        "warehouse": warehouse,
        "lot": None,
        "bin": None,
        "order_id": subject,
        "details": orjson.dumps(details).decode(),
        "raised_at": event.recorded_at,
        "raised_position": event.position,
        "cleared_at": event.recorded_at,
        "cleared_position": event.position,
    }


def _status_after(event: LedgerEvent) -> str | None:
    """An order's status after the event (None: the event does not set one)."""
    if event.kind == "PurchaseOrder.Created":
        return "draft"
    if event.kind == "SalesOrder.Created":
        return "open"
    status = event.data.get("status")
    return status if isinstance(status, str) else None


def _statuses(
    conn: Connection, tenant_id: UUID, subjects: set[str]
) -> dict[str, list[tuple[int, str]]]:
    """The recorded status changes of these orders, by order: (position, new status)."""
    found: dict[str, list[tuple[int, str]]] = {}
    rows = conn.execute(
        select(RECORDS.subject, RECORDS.raised_position, RECORDS.details)
        .where(
            RECORDS.tenant_id == tenant_id,
            RECORDS.kind == "order_status",
            RECORDS.subject.in_(subjects),
        )
        .order_by(RECORDS.raised_position)
    )
    for row in rows:
        status = orjson.loads(row.details).get("new_status")
        found.setdefault(row.subject, []).append((row.raised_position, str(status)))
    return found
