"""What is judged when asked, against each warehouse's business date: available stock, and
alerts (stock below its reorder point, lots within their expiry alert days, expired lots)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast
from uuid import UUID

from sqlalchemy import Connection, Row, Select, Table, and_, func, select, tuple_

from domain.allocation import LotStatus
from projections.catalog import BINS, PRODUCTS, business_dates
from projections.schema import LotRow, StockLevelRow

LOTS = cast("Table", LotRow.__table__)
LEVELS = cast("Table", StockLevelRow.__table__)
AlertKind = Literal["expired", "expiring", "low_stock"]
KINDS: tuple[AlertKind, ...] = ("expired", "expiring", "low_stock")  # the order of a page
Cursor = tuple[str, str, str, str, str]  # (kind, SKU, warehouse, lot, bin); "" where none
Start = tuple[str, ...]
CHUNK = 200
ZERO = Decimal(0)
Key = tuple[str, str]  # (SKU, warehouse)


def available(
    conn: Connection,
    tenant_id: UUID,
    keys: Iterable[Key],
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> dict[Key, Decimal]:
    """What a removal policy could still reserve per (SKU, warehouse) on the business date:
    unreserved stock of released lots, not expired, in pickable bins (unknown bins are not).

    Each warehouse's business date is today at `now` (default: the current time) in its time
    zone; `today` sets one date for every warehouse instead.
    """
    wanted = set(keys)
    if not wanted:
        return {}
    dates = business_dates(conn, tenant_id, {w for _, w in wanted}, today=today, now=now)
    rows = conn.execute(
        select(LOTS.c.sku, LOTS.c.warehouse, LOTS.c.on_hand, LOTS.c.reserved, LOTS.c.expires_on)
        .join(
            BINS,
            and_(
                BINS.c.tenant_id == LOTS.c.tenant_id,
                BINS.c.warehouse == LOTS.c.warehouse,
                BINS.c.code == LOTS.c.bin,
            ),
        )
        .where(
            LOTS.c.tenant_id == tenant_id,
            tuple_(LOTS.c.sku, LOTS.c.warehouse).in_(wanted),
            LOTS.c.status == LotStatus.RELEASED.value,
            BINS.c.pickable.is_(True),
        )
    )
    totals = dict.fromkeys(wanted, ZERO)
    for sku, warehouse, on_hand, reserved, expires_on in rows:
        if expires_on is not None and expires_on < dates[warehouse]:
            continue
        totals[(sku, warehouse)] += max(on_hand - reserved, ZERO)
    return totals


@dataclass(frozen=True)
class Alert:
    """Something to act on: `low_stock` for a SKU in a warehouse (with its reorder point,
    available and incoming stock), `expiring` or `expired` for a lot in a bin (with its
    quantity on hand and expiry)."""

    kind: AlertKind
    sku: str
    warehouse: str
    lot: str | None = None
    bin: str | None = None
    quantity: Decimal | None = None
    expires_on: date | None = None
    reorder_point: Decimal | None = None
    available: Decimal | None = None
    incoming: Decimal | None = None

    @property
    def cursor(self) -> Cursor:
        """Where the next page starts when this alert ends a page."""
        return (self.kind, self.sku, self.warehouse, self.lot or "", self.bin or "")


@dataclass(frozen=True)
class _Ask:
    conn: Connection
    tenant_id: UUID
    today: date | None
    now: datetime | None

    def dates(self, table: Table) -> dict[str, date]:
        """The business date of every warehouse the table has rows of."""
        codes = self.conn.scalars(
            select(table.c.warehouse).distinct().where(table.c.tenant_id == self.tenant_id)
        )
        return business_dates(self.conn, self.tenant_id, codes, today=self.today, now=self.now)


def alerts(
    conn: Connection,
    tenant_id: UUID,
    *,
    today: date | None = None,
    now: datetime | None = None,
    kinds: Collection[AlertKind] | None = None,
    after: Cursor | None = None,
    limit: int = 100,
) -> list[Alert]:
    """A page of one tenant's alerts ordered by (kind, SKU, warehouse, lot, bin), after a
    cursor (the last alert's `cursor`).

    Each warehouse's business date is today at `now` (default: the current time) in its time
    zone; `today` sets one date for every warehouse instead. A lot is expired once its
    expiry date is before that date. Low stock is judged per stock level row (a SKU stocked
    in or ordered for the warehouse) of an active product with a reorder point.
    """
    ask = _Ask(conn, tenant_id, today, now or datetime.now(UTC))
    found: list[Alert] = []
    for kind in KINDS:
        if (kinds is not None and kind not in kinds) or (after is not None and kind < after[0]):
            continue
        start = after[1:] if after is not None and after[0] == kind else None
        found += _SCANS[kind](ask, start, limit - len(found))
        if len(found) >= limit:
            break
    return found


def _scan(
    fetch: Callable[[Start | None, int], Sequence[Row[Any]]],
    judge: Callable[[Sequence[Row[Any]]], list[Alert]],
    key: Callable[[Row[Any]], Start],
    start: Start | None,
    limit: int,
) -> list[Alert]:
    """Candidates in order, a chunk at a time, until `limit` of them are judged alerts."""
    found: list[Alert] = []
    while len(found) < limit:
        rows = fetch(start, CHUNK)
        found += judge(rows)
        if len(rows) < CHUNK:
            break
        start = key(rows[-1])
    return found[:limit]


def _lot_rows(ask: _Ask, start: Start | None, limit: int, *bounds: Any) -> Select[Any]:
    order = (LOTS.c.sku, LOTS.c.warehouse, LOTS.c.lot, LOTS.c.bin)
    query = (
        select(*order, LOTS.c.on_hand, LOTS.c.expires_on, PRODUCTS.c.expiry_alert_days)
        .outerjoin(
            PRODUCTS, and_(PRODUCTS.c.tenant_id == LOTS.c.tenant_id, PRODUCTS.c.sku == LOTS.c.sku)
        )
        .where(LOTS.c.tenant_id == ask.tenant_id, LOTS.c.expires_on.is_not(None), *bounds)
    )
    if start is not None:
        query = query.where(tuple_(*order) > tuple_(*start[:4]))
    return query.order_by(*order).limit(limit)


def _lot_alert(kind: AlertKind, row: Row[Any]) -> Alert:
    return Alert(
        kind,
        row.sku,
        row.warehouse,
        lot=row.lot,
        bin=row.bin,
        quantity=row.on_hand,
        expires_on=row.expires_on,
    )


def _lot_key(row: Row[Any]) -> Start:
    return (row.sku, row.warehouse, row.lot, row.bin)


def _expired(ask: _Ask, start: Start | None, limit: int) -> list[Alert]:
    dates = ask.dates(LOTS)
    if not dates:
        return []
    latest = max(dates.values())

    def fetch(after: Start | None, n: int) -> Sequence[Row[Any]]:
        return list(ask.conn.execute(_lot_rows(ask, after, n, LOTS.c.expires_on < latest)))

    def judge(rows: Sequence[Row[Any]]) -> list[Alert]:
        return [
            _lot_alert("expired", r)
            for r in rows
            if r.on_hand > 0 and r.expires_on < dates[r.warehouse]
        ]

    return _scan(fetch, judge, _lot_key, start, limit)


def _expiring(ask: _Ask, start: Start | None, limit: int) -> list[Alert]:
    dates = ask.dates(LOTS)
    days = ask.conn.scalar(
        select(func.max(PRODUCTS.c.expiry_alert_days)).where(PRODUCTS.c.tenant_id == ask.tenant_id)
    )
    if not dates or days is None:
        return []
    earliest, horizon = min(dates.values()), max(dates.values()) + timedelta(days=days)
    bounds = (
        LOTS.c.expires_on >= earliest,
        LOTS.c.expires_on <= horizon,
        PRODUCTS.c.expiry_alert_days.is_not(None),
    )

    def fetch(after: Start | None, n: int) -> Sequence[Row[Any]]:
        return list(ask.conn.execute(_lot_rows(ask, after, n, *bounds)))

    def judge(rows: Sequence[Row[Any]]) -> list[Alert]:
        return [
            _lot_alert("expiring", r)
            for r in rows
            if r.on_hand > 0
            and dates[r.warehouse]
            <= r.expires_on
            <= dates[r.warehouse] + timedelta(days=r.expiry_alert_days)
        ]

    return _scan(fetch, judge, _lot_key, start, limit)


def _low_stock(ask: _Ask, start: Start | None, limit: int) -> list[Alert]:
    order = (LEVELS.c.sku, LEVELS.c.warehouse)

    def fetch(after: Start | None, n: int) -> Sequence[Row[Any]]:
        query = (
            select(*order, LEVELS.c.incoming, PRODUCTS.c.reorder_point)
            .join(
                PRODUCTS,
                and_(PRODUCTS.c.tenant_id == LEVELS.c.tenant_id, PRODUCTS.c.sku == LEVELS.c.sku),
            )
            .where(
                LEVELS.c.tenant_id == ask.tenant_id,
                PRODUCTS.c.reorder_point.is_not(None),
                PRODUCTS.c.active.is_(True),
            )
        )
        if after is not None:
            query = query.where(tuple_(*order) > tuple_(*after[:2]))
        return list(ask.conn.execute(query.order_by(*order).limit(n)))

    def judge(rows: Sequence[Row[Any]]) -> list[Alert]:
        free = available(
            ask.conn,
            ask.tenant_id,
            [(r.sku, r.warehouse) for r in rows],
            today=ask.today,
            now=ask.now,
        )
        return [
            Alert(
                "low_stock",
                r.sku,
                r.warehouse,
                reorder_point=r.reorder_point,
                available=free[(r.sku, r.warehouse)],
                incoming=r.incoming,
            )
            for r in rows
            if free[(r.sku, r.warehouse)] < r.reorder_point
        ]

    return _scan(fetch, judge, lambda r: (r.sku, r.warehouse), start, limit)


_SCANS: dict[AlertKind, Callable[[_Ask, Start | None, int], list[Alert]]] = {
    "expired": _expired,
    "expiring": _expiring,
    "low_stock": _low_stock,
}
