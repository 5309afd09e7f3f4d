"""Which alert conditions hold for some (SKU, warehouse) keys now: low stock of each key, and
expiring or expired lots of its lots, judged as `GET /v1/alerts` judges them (available stock
and each warehouse's business date from projections.alerts and projections.catalog)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from uuid import UUID

import orjson
from sqlalchemy import Connection, and_, select, tuple_

from domain.quantities import decimal_text
from projections.alerts import LEVELS, LOTS, Key, available
from projections.catalog import PRODUCTS, business_dates

ConditionKind = Literal["low_stock", "expiring", "expired"]
CONDITION_KINDS: tuple[ConditionKind, ...] = ("low_stock", "expiring", "expired")
#: Keys per IN list.
SLICE = 500


@dataclass(frozen=True)
class Finding:
    """A condition in force: low stock of a SKU in a warehouse, or an expiring or expired lot
    in a bin, with what was judged."""

    kind: ConditionKind
    sku: str
    warehouse: str
    lot: str | None
    bin: str | None
    details: dict[str, str | None]

    @property
    def key(self) -> Key:
        return (self.sku, self.warehouse)

    @property
    def subject(self) -> str:
        return subject_of(self.sku, self.warehouse, self.lot, self.bin)


def subject_of(sku: str, warehouse: str, lot: str | None, bin_code: str | None) -> str:
    """The subject text of a condition: its SKU and warehouse, and its lot and bin if any."""
    parts = (
        [sku, warehouse] if lot is None and bin_code is None else [sku, warehouse, lot, bin_code]
    )
    return orjson.dumps(parts).decode()


def slices(keys: Collection[Key]) -> Iterator[list[Key]]:
    """The keys in sorted slices short enough for one IN list."""
    ordered = sorted(keys)
    for start in range(0, len(ordered), SLICE):
        yield ordered[start : start + SLICE]


def judge(conn: Connection, tenant_id: UUID, keys: Collection[Key], now: datetime) -> list[Finding]:
    """Every condition in force at `now` for the keys: low stock of an active product with a
    reorder point stocked in (or ordered for) the warehouse, and lots on hand within their
    product's expiry alert days (`expiring`) or past their expiry (`expired`)."""
    found: list[Finding] = []
    for part in slices(keys):
        found += _low_stock(conn, tenant_id, part, now)
        found += _lots(conn, tenant_id, part, now)
    return found


def _low_stock(conn: Connection, tenant_id: UUID, keys: list[Key], now: datetime) -> list[Finding]:
    rows = list(
        conn.execute(
            select(LEVELS.c.sku, LEVELS.c.warehouse, LEVELS.c.incoming, PRODUCTS.c.reorder_point)
            .join(
                PRODUCTS,
                and_(PRODUCTS.c.tenant_id == LEVELS.c.tenant_id, PRODUCTS.c.sku == LEVELS.c.sku),
            )
            .where(
                LEVELS.c.tenant_id == tenant_id,
                tuple_(LEVELS.c.sku, LEVELS.c.warehouse).in_(keys),
                PRODUCTS.c.reorder_point.is_not(None),
                PRODUCTS.c.active.is_(True),
            )
        )
    )
    if not rows:
        return []
    free = available(conn, tenant_id, [(r.sku, r.warehouse) for r in rows], now=now)
    return [
        Finding(
            "low_stock",
            r.sku,
            r.warehouse,
            None,
            None,
            {
                "reorder_point": decimal_text(r.reorder_point),
                "available": decimal_text(free[(r.sku, r.warehouse)]),
                "incoming": decimal_text(r.incoming),
            },
        )
        for r in rows
        if free[(r.sku, r.warehouse)] < r.reorder_point
    ]


def _lots(conn: Connection, tenant_id: UUID, keys: list[Key], now: datetime) -> list[Finding]:
    rows = list(
        conn.execute(
            select(
                LOTS.c.sku,
                LOTS.c.warehouse,
                LOTS.c.lot,
                LOTS.c.bin,
                LOTS.c.on_hand,
                LOTS.c.expires_on,
                PRODUCTS.c.expiry_alert_days,
            )
            .outerjoin(
                PRODUCTS,
                and_(PRODUCTS.c.tenant_id == LOTS.c.tenant_id, PRODUCTS.c.sku == LOTS.c.sku),
            )
            .where(
                LOTS.c.tenant_id == tenant_id,
                tuple_(LOTS.c.sku, LOTS.c.warehouse).in_(keys),
                LOTS.c.expires_on.is_not(None),
                LOTS.c.on_hand > 0,
            )
        )
    )
    if not rows:
        return []
    dates = business_dates(conn, tenant_id, {r.warehouse for r in rows}, now=now)
    found = []
    for r in rows:
        kind = lot_condition(r.expires_on, dates[r.warehouse], r.expiry_alert_days)
        if kind is not None:
            details = {"quantity": decimal_text(r.on_hand), "expires_on": r.expires_on.isoformat()}
            found.append(Finding(kind, r.sku, r.warehouse, r.lot, r.bin, details))
    return found


def lot_condition(expires_on: date, today: date, alert_days: int | None) -> ConditionKind | None:
    """`expired` once the expiry is before the business date, `expiring` from `alert_days`
    before it through the expiry date itself (usable that day), else None."""
    if expires_on < today:
        return "expired"
    if alert_days is not None and expires_on <= today + timedelta(days=alert_days):
        return "expiring"
    return None
