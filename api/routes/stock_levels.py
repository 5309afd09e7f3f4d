"""Stock levels per SKU and warehouse (`GET /v1/stock-levels`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.auth import Principal, permitted
from api.pages import (
    MAX_POSITION,
    Cursor,
    Limit,
    MinPosition,
    Page,
    decimal_text,
    decode_cursor,
    encode_cursor,
    read_model,
)
from api.problems import problem_responses
from api.routes.inputs import Filter
from projections.stock_levels import stock_levels

router = APIRouter(prefix="/v1", tags=["queries"])
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
#: Stock levels, and for `available` the lots and the bins (pickable or not).
READS = ("stock_levels", "lots", "catalog")


class StockLevelItem(BaseModel):
    sku: str
    warehouse: str
    on_hand: str
    reserved: str
    available: str
    incoming: str
    value: str
    position: int  # the position of the row's last change


class StockLevelPage(Page):
    items: list[StockLevelItem]


PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        503: "`projection-lagging`: `min_position` not reached in time; `service-unavailable`",
    }
)


@router.get(
    "/stock-levels",
    response_model=StockLevelPage,
    summary="On hand, reserved, available, incoming and value per SKU and warehouse",
    responses=PROBLEMS,
)
def list_stock_levels(
    request: Request,
    caller: Reader,
    sku: Filter = None,
    warehouse: Filter = None,
    changed_after: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION, description="Only rows changed after this position."),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> StockLevelPage:
    after = None if cursor is None else decode_cursor(cursor, 2)
    with read_model(request, caller.tenant_id, READS, min_position) as (conn, at):
        rows = stock_levels(
            conn,
            caller.tenant_id,
            sku=sku,
            warehouse=warehouse,
            changed_after=changed_after,
            after=None if after is None else (str(after[0]), str(after[1])),
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return StockLevelPage(
        items=[
            StockLevelItem(
                sku=r.sku,
                warehouse=r.warehouse,
                on_hand=decimal_text(r.on_hand),
                reserved=decimal_text(r.reserved),
                available=decimal_text(r.available),
                incoming=decimal_text(r.incoming),
                value=decimal_text(r.value),
                position=r.position,
            )
            for r in rows
        ],
        next_cursor=encode_cursor((rows[-1].sku, rows[-1].warehouse)) if more else None,
        position=at,
    )
