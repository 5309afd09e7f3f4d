"""The catalog and the locations: products, warehouses and their bins, and what a scanned code
names (`/v1/products`, `/v1/warehouses`, `/v1/warehouses/{code}/bins`, `/v1/lookup`).

The products and the lookup live in their own modules; their routes are included here, so the
app includes one router for the whole catalog."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection, select

from api.auth import Principal
from api.commands import IdempotencyKey, command_meta, mark_replayed
from api.pages import Cursor, Limit, MinPosition, decode_cursor, encode_cursor, read_model
from api.problems import Problem
from api.routes import lookup, products
from api.routes.catalog_models import (
    NOT_FOUND,
    READS,
    WRITES,
    BinItem,
    BinPage,
    NewBin,
    NewWarehouse,
    Reader,
    WarehouseItem,
    WarehousePage,
    Writer,
    documented,
)
from domain.errors import UnknownReference
from projections.catalog import WAREHOUSES, BinView, WarehouseView
from projections.catalog import bins as bin_rows
from projections.catalog import warehouses as warehouse_rows

router = APIRouter(prefix="/v1", tags=["catalog"])
router.include_router(products.router)


def _warehouse(view: WarehouseView) -> WarehouseItem:
    return WarehouseItem(
        code=view.code, name=view.name, timezone=view.timezone, position=view.position
    )


def _bin(view: BinView) -> BinItem:
    return BinItem(
        warehouse=view.warehouse,
        code=view.code,
        zone=view.zone,
        pickable=view.pickable,
        position=view.position,
    )


def _in_path(error: UnknownReference) -> Problem:
    """An unknown identifier in the path is 404, not the body's 422."""
    return Problem("not-found", str(error))


def _warehouse_known(conn: Connection, caller: Principal, code: str) -> bool:
    query = select(WAREHOUSES.c.code).where(
        WAREHOUSES.c.tenant_id == caller.tenant_id, WAREHOUSES.c.code == code
    )
    return conn.execute(query).first() is not None


# -- warehouses and bins ----------------------------------------------------------------------


@router.post(
    "/warehouses",
    status_code=201,
    response_model=WarehouseItem,
    summary="Add a warehouse with its time zone",
    responses=documented(WRITES),
)
def create_warehouse(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewWarehouse,
    idempotency_key: IdempotencyKey = None,
) -> WarehouseItem:
    app = request.app.state.ledger.app(caller.tenant_id)
    meta = command_meta(request, caller, idempotency_key)
    result = app.register_warehouse(body.code, body.name, body.timezone, meta)
    mark_replayed(response, result.replayed)
    return WarehouseItem(
        code=body.code, name=body.name.strip(), timezone=body.timezone, position=result.position
    )


@router.get(
    "/warehouses",
    response_model=WarehousePage,
    summary="The tenant's warehouses by code",
    responses=documented(READS),
)
def list_warehouses(
    request: Request,
    caller: Reader,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> WarehousePage:
    after = None if cursor is None else str(decode_cursor(cursor, 1)[0])
    with read_model(request, caller.tenant_id, "catalog", min_position) as (conn, at):
        rows = warehouse_rows(conn, caller.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return WarehousePage(
        items=[_warehouse(r) for r in rows],
        next_cursor=encode_cursor((rows[-1].code,)) if more else None,
        position=at,
    )


@router.post(
    "/warehouses/{code:path}/bins",
    status_code=201,
    response_model=BinItem,
    summary="Add a bin to a warehouse",
    responses=documented(WRITES, NOT_FOUND),
)
def create_bin(
    request: Request,
    response: Response,
    caller: Writer,
    code: str,
    body: NewBin,
    idempotency_key: IdempotencyKey = None,
) -> BinItem:
    app = request.app.state.ledger.app(caller.tenant_id)
    meta = command_meta(request, caller, idempotency_key)
    try:
        result = app.add_bin(code, body.code, meta, zone=body.zone, pickable=body.pickable)
    except UnknownReference as error:
        raise _in_path(error) from None
    mark_replayed(response, result.replayed)
    return BinItem(
        warehouse=code,
        code=body.code,
        zone=body.zone,
        pickable=body.pickable,
        position=result.position,
    )


@router.get(
    "/warehouses/{code:path}/bins",
    response_model=BinPage,
    summary="A warehouse's bins by code",
    responses=documented(READS, NOT_FOUND),
)
def list_bins(
    request: Request,
    caller: Reader,
    code: str,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> BinPage:
    after = None if cursor is None else (code, str(decode_cursor(cursor, 1)[0]))
    with read_model(request, caller.tenant_id, "catalog", min_position) as (conn, at):
        if not _warehouse_known(conn, caller, code):
            raise Problem("not-found", f"warehouse {code!r} does not exist")
        rows = bin_rows(conn, caller.tenant_id, warehouse=code, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return BinPage(
        items=[_bin(r) for r in rows],
        next_cursor=encode_cursor((rows[-1].code,)) if more else None,
        position=at,
    )


router.include_router(lookup.router)
