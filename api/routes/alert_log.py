"""Recorded alerts over HTTP (`GET /v1/alerts/records`): what the alerts consumer raised and
cleared, in the order it raised them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.auth import Principal, permitted
from api.pages import (
    MAX_POSITION,
    Cursor,
    Limit,
    MinPosition,
    Page,
    decode_cursor,
    encode_cursor,
    read_model,
)
from api.problems import Problem, problem_responses
from projections.alert_records import AlertRecord, LogKey, RecordKind, State, records

router = APIRouter(prefix="/v1/alerts", tags=["queries"])
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
#: The read model the log is: the alerts projection.
LOG_READS = "alerts"
PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        503: "`projection-lagging`: `min_position` not reached in time; `service-unavailable`",
    }
)


class AlertRecordItem(BaseModel):
    """An alert as it was raised (and cleared): `low_stock` of a SKU in a warehouse,
    `expiring` / `expired` of a lot in a bin, or `order_status`, a change of an order's
    status (raised and cleared at the same position)."""

    alert_id: str = Field(description="Stable id of this record.")
    kind: RecordKind
    sku: str | None = Field(description="The SKU of a stock alert; null for an order.")
    warehouse: str | None = Field(description="The warehouse of the stock or of the order.")
    lot: str | None = Field(description="The lot of an `expiring` or `expired` alert.")
    bin: str | None = Field(description="The bin of an `expiring` or `expired` alert.")
    order_id: str | None = Field(description="The order of an `order_status` record.")
    details: dict[str, str | None] = Field(
        description="What was judged when it was raised: `reorder_point`, `available`,"
        " `incoming` (low stock); `quantity`, `expires_on` (lots); `order_kind`, `event`,"
        " `old_status`, `new_status`, `external_id` (orders)."
    )
    raised_at: datetime = Field(description="When the event (or sweep) that raised it ran.")
    raised_position: int = Field(description="The tenant's position that raised it.")
    cleared_at: datetime | None = Field(description="When it was cleared; null while open.")
    cleared_position: int | None = Field(
        description="The tenant's position that cleared it; null while open."
    )


class AlertRecordPage(Page):
    items: list[AlertRecordItem] = Field(
        description="Records by raised position, then id; `position` is the alerts read model's."
    )


def _after(cursor: str | None) -> LogKey | None:
    """The key a cursor of this list names (422 `validation-error` if it is not one)."""
    if cursor is None:
        return None
    position, alert_id = decode_cursor(cursor, 2)
    if (
        type(position) is not int
        or not 0 <= position <= MAX_POSITION
        or type(alert_id) is not str
        or "\x00" in alert_id
    ):
        raise Problem(
            "validation-error",
            "the cursor is not one this list gave",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
        )
    return (position, alert_id)


def _item(record: AlertRecord) -> AlertRecordItem:
    return AlertRecordItem(
        alert_id=record.alert_id,
        kind=record.kind,
        sku=record.sku,
        warehouse=record.warehouse,
        lot=record.lot,
        bin=record.bin,
        order_id=record.order_id,
        details=record.details,
        raised_at=record.raised_at,
        raised_position=record.raised_position,
        cleared_at=record.cleared_at,
        cleared_position=record.cleared_position,
    )


@router.get(
    "/records",
    response_model=AlertRecordPage,
    summary="The log of recorded alerts: raised, and cleared when their condition ended",
    responses=PROBLEMS,
)
def list_alert_records(
    request: Request,
    caller: Reader,
    kind: Annotated[
        list[RecordKind] | None, Query(description="Only these kinds (repeatable).")
    ] = None,
    state: Annotated[
        State, Query(description="`open` (not cleared), `cleared`, or `all` (default).")
    ] = "all",
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> AlertRecordPage:
    after = _after(cursor)
    kinds = None if kind is None else tuple(kind)
    with read_model(request, caller.tenant_id, LOG_READS, min_position) as (conn, at):
        found = records(
            conn, caller.tenant_id, kinds=kinds, state=state, after=after, limit=limit + 1
        )
    page = found[:limit]
    return AlertRecordPage(
        items=[_item(r) for r in page],
        next_cursor=encode_cursor(page[-1].key) if len(found) > limit else None,
        position=at,
    )
