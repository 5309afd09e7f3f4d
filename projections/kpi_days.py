"""The daily KPI facts the `kpis` projection adds to, and the KPIs of a period computed from them.

Sums (cost of goods sold, expired quantity and value, stockouts) are exact. Averages and ratios
are computed exactly as fractions, then rounded once, half to even, to `PLACES` decimal places.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import Connection, Select, Table, bindparam, insert, select, update

from domain.errors import ValidationFailed
from projections.schema import KpiDayRow

ZERO = Decimal(0)
PLACES = 6
DAYS = cast("Table", KpiDayRow.__table__)
T = TypeVar("T", bound=tuple[Any, ...])


@dataclass
class Facts:
    """What happened on one business day in one warehouse (or summed over several)."""

    value_change: Decimal = ZERO  # net change of the stock's value at cost
    sold_cost: Decimal = ZERO  # cost of stock removed with reason "sale"
    returned_cost: Decimal = ZERO  # cost of stock taken back into stock from sales
    expired_quantity: Decimal = ZERO
    expired_value: Decimal = ZERO
    stockouts: int = 0
    counts: int = 0
    accurate_counts: int = 0
    ordered_units: Decimal = ZERO  # of sales orders created that day
    shipped_units: Decimal = ZERO  # of those orders, whenever shipped
    order_lines: int = 0
    filled_lines: int = 0
    received_units: Decimal = ZERO  # against purchase orders
    on_time_units: Decimal = ZERO

    def add(self, other: Facts) -> None:
        for name in COLUMNS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS = tuple(f.name for f in fields(Facts))
Key = tuple[date, str]  # (business day, warehouse)


def add_facts(conn: Connection, tenant_id: UUID, facts: dict[Key, Facts]) -> None:
    """Adds a batch's facts to the stored ones of the same days and warehouses."""
    touched = {key: found for key, found in facts.items() if any(found.values().values())}
    if not touched:
        return
    rows = conn.execute(
        select(DAYS).where(
            DAYS.c.tenant_id == tenant_id,
            DAYS.c.day.in_({day for day, _ in touched}),
            DAYS.c.warehouse.in_({warehouse for _, warehouse in touched}),
        )
    )
    stored = {(row.day, row.warehouse): _facts_of(row) for row in rows}
    changes = []
    for (day, warehouse), found in touched.items():
        total = stored.get((day, warehouse))
        if total is not None:
            total.add(found)
        values = (found if total is None else total).values()
        changes.append((total is not None, {"day": day, "warehouse": warehouse, **values}))
    save_rows(conn, DAYS, tenant_id, ("day", "warehouse"), changes)


def save_rows(
    conn: Connection,
    table: Table,
    tenant_id: UUID,
    keys: tuple[str, ...],
    rows: Sequence[tuple[bool, dict[str, Any]]],
) -> None:
    """Inserts a tenant's rows (stored: False) and updates its stored ones, found by `keys`."""
    new = [{"tenant_id": tenant_id, **row} for stored, row in rows if not stored]
    changed = [
        {**{f"key_{k}": row[k] for k in keys}, **{c: v for c, v in row.items() if c not in keys}}
        for stored, row in rows
        if stored
    ]
    if new:
        conn.execute(insert(table), new)
    if changed:
        where = [table.c[k] == bindparam(f"key_{k}") for k in keys]
        columns = [c for c in changed[0] if not c.startswith("key_")]
        statement = update(table).where(table.c.tenant_id == tenant_id, *where)
        conn.execute(statement.values({c: bindparam(c) for c in columns}), changed)


def _facts_of(row: Any) -> Facts:
    return Facts(**{name: getattr(row, name) for name in COLUMNS})


@dataclass(frozen=True)
class DailyValue:
    """The stock's value at cost at the close of a business day."""

    day: date
    value: Decimal


@dataclass(frozen=True)
class Kpis:
    """Inventory KPIs of a period of business days (in the tenant's time zone).

    - cogs: cost of stock that left for sales (order shipments, issues with reason "sale"), less
      the cost of sold stock taken back into stock (returns restocked or quarantined; scrapped
      returns never come back, so their cost stays sold).
    - average_inventory_value: the mean of each day's closing value at cost.
    - inventory_turnover: cogs / average_inventory_value; days_of_inventory: days / turnover.
    - unit_fill_rate, line_fill_rate: of sales order lines by the day their order was created,
      shipped so far / ordered, and lines shipped in full / lines. Cancelled quantities stay
      ordered and count as not filled.
    - stockout_events: times a stock item's on hand less reserved fell from above zero to zero
      or below, in the order the ledger recorded the changes.
    - expired_quantity, expired_value: stock removed with reason "expiry" (write-offs).
    - record_accuracy: counts that found no difference / counts. The domain appends an event
      for a count only when it finds a difference, so until it records matching counts too,
      this is 0 for any period with counts.
    - supplier_on_time_rate: quantity received against purchase orders on or before their
      expected date / quantity received; an order without an expected date is on time.

    A rate whose denominator is zero is None.
    """

    cogs: Decimal
    average_inventory_value: Decimal
    inventory_turnover: Decimal | None
    days_of_inventory: Decimal | None
    unit_fill_rate: Decimal | None
    line_fill_rate: Decimal | None
    stockout_events: int
    expired_quantity: Decimal
    expired_value: Decimal
    record_accuracy: Decimal | None
    supplier_on_time_rate: Decimal | None


def kpis(
    conn: Connection, tenant_id: UUID, *, start: date, end: date, warehouse: str | None = None
) -> Kpis:
    """The KPIs of the business days from `start` to `end` (inclusive), of one warehouse or all."""
    days = _days(start, end)
    by_day = _facts_by_day(conn, tenant_id, start, end, warehouse)
    opening = _opening(conn, tenant_id, start, warehouse)
    closing = [v.value for v in _closing(opening, by_day, start, days)]
    total = Facts()
    for facts in by_day.values():
        total.add(facts)
    cogs = total.sold_cost - total.returned_cost
    average = Fraction(sum(closing, ZERO)) / days
    turnover = Fraction(cogs) / average if average else None
    days_of_inventory = days / turnover if turnover else None
    return Kpis(
        cogs=_tidy(cogs),
        average_inventory_value=_rounded(average),
        inventory_turnover=None if turnover is None else _rounded(turnover),
        days_of_inventory=None if days_of_inventory is None else _rounded(days_of_inventory),
        unit_fill_rate=_rate(total.shipped_units, total.ordered_units),
        line_fill_rate=_rate(total.filled_lines, total.order_lines),
        stockout_events=total.stockouts,
        expired_quantity=_tidy(total.expired_quantity),
        expired_value=_tidy(total.expired_value),
        record_accuracy=_rate(total.accurate_counts, total.counts),
        supplier_on_time_rate=_rate(total.on_time_units, total.received_units),
    )


def closing_values(
    conn: Connection, tenant_id: UUID, *, start: date, end: date, warehouse: str | None = None
) -> list[DailyValue]:
    """The stock's value at the close of each business day from `start` to `end`; a day without
    changes carries the previous day's value forward, from everything recorded before `start`."""
    days = _days(start, end)
    opening = _opening(conn, tenant_id, start, warehouse)
    return _closing(opening, _facts_by_day(conn, tenant_id, start, end, warehouse), start, days)


def _opening(conn: Connection, tenant_id: UUID, start: date, warehouse: str | None) -> Decimal:
    """The value at the close of the day before `start`: every change of the days before it."""
    query = select(DAYS.c.value_change).where(DAYS.c.day < start)
    return sum(conn.scalars(_scoped(query, tenant_id, warehouse)), ZERO)


def _closing(
    opening: Decimal, changes: dict[date, Facts], start: date, days: int
) -> list[DailyValue]:
    value, closing = opening, []
    for offset in range(days):
        day = start + timedelta(days=offset)
        found = changes.get(day)
        if found is not None:
            value += found.value_change
        closing.append(DailyValue(day, _tidy(value)))
    return closing


def _facts_by_day(
    conn: Connection, tenant_id: UUID, start: date, end: date, warehouse: str | None
) -> dict[date, Facts]:
    query = select(DAYS).where(DAYS.c.day >= start, DAYS.c.day <= end)
    by_day: dict[date, Facts] = {}
    for row in conn.execute(_scoped(query, tenant_id, warehouse)):
        by_day.setdefault(row.day, Facts()).add(_facts_of(row))
    return by_day


def _scoped(query: Select[T], tenant_id: UUID, warehouse: str | None) -> Select[T]:
    query = query.where(DAYS.c.tenant_id == tenant_id)
    return query if warehouse is None else query.where(DAYS.c.warehouse == warehouse)


def _days(start: date, end: date) -> int:
    if end < start:
        raise ValidationFailed("to", f"{end} is before the period's start {start}")
    return (end - start).days + 1


def _rate(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    return _rounded(Fraction(part) / Fraction(whole)) if whole else None


def _rounded(exact: Fraction) -> Decimal:
    return _tidy(Decimal(round(exact * 10**PLACES)).scaleb(-PLACES))


def _tidy(value: Decimal) -> Decimal:
    """The same number without trailing zeros (and never in exponent notation)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal
