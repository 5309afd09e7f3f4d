"""Lots in bins (`GET /v1/lots`), the movement history (`GET /v1/movements`), and stock and
lots as of any time (`GET /v1/stock-levels/as-of`, `GET /v1/lots/as-of`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Connection

from api.auth import Principal, permitted
from api.pages import (
    Cursor,
    Limit,
    MinPosition,
    Page,
    decimal_text,
    decode_cursor,
    encode_cursor,
    read_model,
)
from api.problems import Problem, problem_responses
from api.routes.inputs import Filter
from projections.catalog import business_dates
from projections.history import lots_as_of, stock_levels_as_of
from projections.lots import LotLevel, lots
from projections.movements import Movement, movements

router = APIRouter(prefix="/v1", tags=["queries"])
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
#: Lots, and the catalog for each warehouse's time zone (business date).
LOT_READS = ("lots", "catalog")
MOVEMENT_READS = ("movements",)
#: Rows fetched per round when the route filters what the query function cannot.
BATCH = 500
UNIT_COST = Decimal("0.000001")

PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        503: "`projection-lagging`: `min_position` not reached in time; `service-unavailable`",
    }
)

T = TypeVar("T")


class LotItem(BaseModel):
    lot: str
    sku: str
    warehouse: str
    bin: str
    on_hand: str
    reserved: str
    expires_on: date | None
    expired: bool  # `expires_on` before the warehouse's business date
    received_at: datetime  # when the oldest stock still in this bin was received
    unit_cost: str | None  # value / on_hand, to 6 decimals; null when nothing is on hand
    status: str
    position: int  # the position of the row's last change


class LotPage(Page):
    items: list[LotItem]


class MovementItem(BaseModel):
    position: int
    seq: int
    sku: str
    warehouse: str
    lot: str
    bin: str
    quantity: str  # negative when stock left the bin
    unit_cost: str
    reason: str
    reference: str | None
    effective_at: datetime
    recorded_at: datetime
    actor: str | None  # "<kind>:<id>" of who caused it
    request_id: str | None

    @classmethod
    def of(cls, row: Movement) -> MovementItem:
        """The API's view of a movement row (decimals as the contract writes them)."""
        return cls(
            position=row.position,
            seq=row.seq,
            sku=row.sku,
            warehouse=row.warehouse,
            lot=row.lot,
            bin=row.bin,
            quantity=decimal_text(row.quantity),
            unit_cost=decimal_text(row.unit_cost),
            reason=row.reason,
            reference=row.reference,
            effective_at=row.effective_at,
            recorded_at=row.recorded_at,
            actor=row.actor,
            request_id=row.request_id,
        )


class MovementPage(Page):
    items: list[MovementItem]


def _filtered(
    fetch: Callable[[Any, int], Sequence[T]],
    keep: Callable[[Sequence[T]], list[bool]],
    key: Callable[[T], Any],
    after: Any,
    limit: int,
) -> list[T]:
    """Up to `limit` rows `keep` accepts, reading pages of `fetch` after `after`."""
    found: list[T] = []
    size = max(limit, BATCH)
    while len(found) < limit:
        rows = fetch(after, size)
        found += [row for row, ok in zip(rows, keep(rows), strict=True) if ok]
        if len(rows) < size:
            break
        after = key(rows[-1])
    return found[:limit]


def aware_time(moment: datetime | None, field: str) -> datetime | None:
    """The time in UTC; 422 without an offset or out of the range of times (years 1-9999)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise _invalid_time(field, "a time needs an offset (or Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _invalid_time(field, "the time in UTC is out of range") from None


def _invalid_time(field: str, message: str) -> Problem:
    return Problem(
        "validation-error", message, errors=[{"field": f"query.{field}", "message": message}]
    )


def _horizon(today: date, days: int) -> date:
    """`days` after `today`, or the last date there is."""
    try:
        return today + timedelta(days=days)
    except OverflowError:
        return date.max


def _cost(value: Decimal, on_hand: Decimal) -> str | None:
    """Value per unit on hand, to 6 decimals; None when nothing is on hand."""
    if on_hand == 0:
        return None
    return decimal_text((value / on_hand).quantize(UNIT_COST, rounding=ROUND_HALF_EVEN))


def _lot_key(row: LotLevel) -> tuple[str, str, str, str]:
    return (row.sku, row.warehouse, row.lot, row.bin)


class _Dates:
    """Each warehouse's business date at one instant, looked up once per warehouse."""

    def __init__(self, conn: Connection, tenant_id: Any, now: datetime) -> None:
        self.conn, self.tenant_id, self.now = conn, tenant_id, now
        self.known: dict[str, date] = {}

    def of(self, rows: Sequence[LotLevel]) -> dict[str, date]:
        missing = {r.warehouse for r in rows} - self.known.keys()
        if missing:
            self.known |= business_dates(self.conn, self.tenant_id, missing, now=self.now)
        return self.known


def _expired(row: LotLevel, today: date) -> bool:
    return row.expires_on is not None and row.expires_on < today


@router.get(
    "/lots",
    response_model=LotPage,
    summary="Lots per SKU, warehouse and bin: on hand, reserved, expiry, unit cost, status",
    responses=PROBLEMS,
)
def list_lots(
    request: Request,
    caller: Reader,
    sku: Filter = None,
    warehouse: Filter = None,
    bin: Filter = None,
    lot: Filter = None,
    status: Literal["released", "hold", "quarantine"] | None = None,
    expiring_within_days: Annotated[
        int | None,
        Query(
            ge=0,
            description="Only unexpired lots expiring within this many days of the business date.",
        ),
    ] = None,
    expired: Annotated[
        bool | None, Query(description="Only expired (true) or unexpired (false) lots.")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> LotPage:
    after = None if cursor is None else tuple(str(part) for part in decode_cursor(cursor, 4))
    now = datetime.now(UTC)
    with read_model(request, caller.tenant_id, LOT_READS, min_position) as (conn, at):
        dates = _Dates(conn, caller.tenant_id, now)

        def fetch(start: Any, n: int) -> list[LotLevel]:
            return lots(
                conn, caller.tenant_id, sku=sku, warehouse=warehouse, lot=lot, after=start, limit=n
            )

        def keep(rows: Sequence[LotLevel]) -> list[bool]:
            today = dates.of(rows)
            return [_wanted(r, today[r.warehouse]) for r in rows]

        def _wanted(row: LotLevel, today: date) -> bool:
            if bin is not None and row.bin != bin:
                return False
            if status is not None and row.status != status:
                return False
            if expired is not None and _expired(row, today) != expired:
                return False
            if expiring_within_days is not None:
                horizon = _horizon(today, expiring_within_days)
                return row.expires_on is not None and today <= row.expires_on <= horizon
            return True

        rows = _filtered(fetch, keep, _lot_key, after, limit + 1)
        today = dates.of(rows)
    more = len(rows) > limit
    rows = rows[:limit]
    return LotPage(
        items=[
            LotItem(
                lot=r.lot,
                sku=r.sku,
                warehouse=r.warehouse,
                bin=r.bin,
                on_hand=decimal_text(r.on_hand),
                reserved=decimal_text(r.reserved),
                expires_on=r.expires_on,
                expired=_expired(r, today[r.warehouse]),
                received_at=r.received_at,
                unit_cost=_cost(r.value, r.on_hand),
                status=r.status,
                position=r.position,
            )
            for r in rows
        ],
        next_cursor=encode_cursor(_lot_key(rows[-1])) if more else None,
        position=at,
    )


#: The `from` / `to` filters of movements (effective time; `to` exclusive).
MovedFrom = Annotated[
    datetime | None,
    Query(alias="from", description="Only movements effective at or after this time."),
]
MovedBefore = Annotated[
    datetime | None, Query(description="Only movements effective before this time.")
]


@router.get(
    "/movements",
    response_model=MovementPage,
    summary="Movement history: every change of on hand per lot and bin, with actor and reference",
    responses=PROBLEMS,
)
def list_movements(
    request: Request,
    caller: Reader,
    sku: Filter = None,
    warehouse: Filter = None,
    lot: Filter = None,
    reference: Filter = None,
    from_: MovedFrom = None,
    to: MovedBefore = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> MovementPage:
    start, end = aware_time(from_, "from"), aware_time(to, "to")
    after = None if cursor is None else decode_cursor(cursor, 2)
    if after is not None and not all(type(part) is int for part in after):
        raise Problem(
            "validation-error",
            "the cursor is not one this list gave",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
        )

    def wanted(row: Movement) -> bool:
        return (
            (reference is None or row.reference == reference)
            and (start is None or row.effective_at >= start)
            and (end is None or row.effective_at < end)
        )

    with read_model(request, caller.tenant_id, MOVEMENT_READS, min_position) as (conn, at):

        def fetch(first: Any, n: int) -> list[Movement]:
            return movements(
                conn, caller.tenant_id, sku=sku, warehouse=warehouse, lot=lot, after=first, limit=n
            )

        rows = _filtered(
            fetch,
            lambda page: [wanted(r) for r in page],
            lambda r: (r.position, r.seq),
            None if after is None else (after[0], after[1]),
            limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return MovementPage(
        items=[MovementItem.of(r) for r in rows],
        next_cursor=encode_cursor((rows[-1].position, rows[-1].seq)) if more else None,
        position=at,
    )


class LevelAsOfItem(BaseModel):
    sku: str
    warehouse: str
    on_hand: str
    reserved: str
    value: str


class LevelAsOfPage(Page):
    items: list[LevelAsOfItem]


class LotAsOfItem(BaseModel):
    lot: str
    sku: str
    warehouse: str
    bin: str
    on_hand: str
    reserved: str
    expires_on: date | None
    expired: bool  # `expires_on` before the warehouse's business date at `at`
    received_at: datetime | None
    unit_cost: str | None
    status: str


class LotAsOfPage(Page):
    items: list[LotAsOfItem]


At = Annotated[datetime, Query(description="Effective time: stock as it was then.")]
KnownAt = Annotated[
    datetime | None,
    Query(description="Recorded time: as the ledger knew it then (default: now)."),
]


def _moment(at: datetime, known_at: datetime | None) -> tuple[datetime, datetime | None]:
    moment = aware_time(at, "at")
    assert moment is not None
    return moment, aware_time(known_at, "known_at")


def _ledger_head(store: Any, tenant_id: Any, min_position: int | None) -> int:
    """The tenant's head in the ledger itself (the as-of views fold its events, so every
    committed write counts); 503 `projection-lagging` for a `min_position` beyond it."""
    position: int = store.head(tenant_id).position
    if min_position is not None and min_position > position:
        raise Problem(
            "projection-lagging",
            f"position {min_position} is beyond the ledger's head {position}",
            wanted=min_position,
            reached=position,
            lagging=["ledger"],
        )
    return position


def _page_of(
    rows: list[T], key: Callable[[T], tuple[str, ...]], cursor: str | None, size: int, limit: int
) -> tuple[list[T], str | None]:
    """One page of rows sorted by `key`, after the key a cursor names."""
    rows = sorted(rows, key=key)
    if cursor is not None:
        after = tuple(str(part) for part in decode_cursor(cursor, size))
        rows = [row for row in rows if key(row) > after]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(key(rows[-1])) if more else None


@router.get(
    "/stock-levels/as-of",
    response_model=LevelAsOfPage,
    summary="Stock per SKU and warehouse at an effective time, as recorded by a known time",
    responses=PROBLEMS,
)
def list_stock_levels_as_of(
    request: Request,
    caller: Reader,
    at: At,
    known_at: KnownAt = None,
    sku: Filter = None,
    warehouse: Filter = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> LevelAsOfPage:
    moment, known = _moment(at, known_at)
    store = request.app.state.ledger.store
    position = _ledger_head(store, caller.tenant_id, min_position)
    rows = stock_levels_as_of(store, caller.tenant_id, moment, known, sku, warehouse)
    page, next_cursor = _page_of(rows, lambda r: (r.sku, r.warehouse), cursor, 2, limit)
    return LevelAsOfPage(
        items=[
            LevelAsOfItem(
                sku=r.sku,
                warehouse=r.warehouse,
                on_hand=decimal_text(r.on_hand),
                reserved=decimal_text(r.reserved),
                value=decimal_text(r.value),
            )
            for r in page
        ],
        next_cursor=next_cursor,
        position=position,
    )


@router.get(
    "/lots/as-of",
    response_model=LotAsOfPage,
    summary="Lots in bins at an effective time, as recorded by a known time",
    responses=PROBLEMS,
)
def list_lots_as_of(
    request: Request,
    caller: Reader,
    at: At,
    known_at: KnownAt = None,
    sku: Filter = None,
    warehouse: Filter = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> LotAsOfPage:
    moment, known = _moment(at, known_at)
    store = request.app.state.ledger.store
    position = _ledger_head(store, caller.tenant_id, min_position)
    rows = lots_as_of(store, caller.tenant_id, moment, known, sku, warehouse)
    page, next_cursor = _page_of(
        rows, lambda r: (r.sku, r.warehouse, r.lot, r.bin), cursor, 4, limit
    )
    with read_model(request, caller.tenant_id, "catalog", None) as (conn, _):
        today = business_dates(conn, caller.tenant_id, {r.warehouse for r in page}, now=moment)
    return LotAsOfPage(
        items=[
            LotAsOfItem(
                lot=r.lot,
                sku=r.sku,
                warehouse=r.warehouse,
                bin=r.bin,
                on_hand=decimal_text(r.on_hand),
                reserved=decimal_text(r.reserved),
                expires_on=r.expires_on,
                expired=r.expires_on is not None and r.expires_on < today[r.warehouse],
                received_at=r.received_at,
                unit_cost=_cost(r.value, r.on_hand),
                status=r.status,
            )
            for r in page
        ],
        next_cursor=next_cursor,
        position=position,
    )
