"""Sales orders: their commands (`so:write`) and reads (`stock:read`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.commands import (
    IdempotencyKey,
)
from api.pages import (
    Cursor,
    Limit,
    MinPosition,
    decimal_text,
)
from api.routes.order_support import (
    READ_PROBLEMS,
    SALES_PROBLEMS,
    AllocationDone,
    ExternalId,
    OrderDone,
    PickOut,
    Reader,
    Reference,
    ReturnOut,
    ReturnsDone,
    ReturnsIn,
    SalesOrderIn,
    SalesOrderPage,
    SalesOrderRead,
    SalesWriter,
    ShipIn,
    ShipmentDone,
    Status,
    _done,
    _ledger,
    _meta,
    _order_id,
    _quantities,
    _read_one,
    _read_page,
    _sales,
)
from domain.orders import ReturnLine, ShipLine
from domain.sales import SalesOrder

router = APIRouter(prefix="/v1")


# -- sales orders ---------------------------------------------------------------------------------


@router.post(
    "/sales-orders",
    status_code=201,
    response_model=OrderDone,
    tags=["sales orders"],
    responses=SALES_PROBLEMS,
)
def create_sales_order(
    request: Request,
    response: Response,
    caller: SalesWriter,
    body: SalesOrderIn,
    idempotency_key: IdempotencyKey = None,
) -> OrderDone:
    """Open a customer's order shipping from one warehouse."""
    app = _ledger(request, caller)
    result = app.create_sales_order(
        body.customer,
        body.warehouse,
        [(line.sku, line.quantity) for line in body.lines],
        _meta(request, caller, app, idempotency_key),
        external_id=body.external_id,
        reference=body.reference,
    )
    return _done(response, result)


@router.post(
    "/sales-orders/{order_id}/allocate",
    response_model=AllocationDone,
    tags=["sales orders"],
    responses=SALES_PROBLEMS,
)
def allocate_sales_order(
    request: Request,
    response: Response,
    caller: SalesWriter,
    order_id: str,
    idempotency_key: IdempotencyKey = None,
) -> AllocationDone:
    """Reserve by policy; short lines stay backordered, blocked reservations are replaced."""
    app = _ledger(request, caller)
    meta = _meta(request, caller, app, idempotency_key)
    result = app.allocate_sales_order(_order_id(order_id), meta)
    return AllocationDone(
        **_done(response, result).model_dump(),
        reserved=_quantities(result.reserved),
        released=_quantities(result.released),
        backordered=_quantities(result.backordered),
    )


@router.post(
    "/sales-orders/{order_id}/ship",
    response_model=ShipmentDone,
    tags=["sales orders"],
    responses=SALES_PROBLEMS,
)
def ship_sales_order(
    request: Request,
    response: Response,
    caller: SalesWriter,
    order_id: str,
    body: ShipIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> ShipmentDone:
    """Issue the reserved lots (all that is allocated without lines), with picks and cost."""
    app = _ledger(request, caller)
    wanted = body or ShipIn()
    lines = None if wanted.lines is None else [ShipLine(s.line, s.quantity) for s in wanted.lines]
    result = app.ship_sales_order(
        _order_id(order_id),
        _meta(request, caller, app, idempotency_key, wanted.effective_at),
        lines=lines,
    )
    picks = [
        PickOut(
            line=s.line,
            sku=s.sku,
            lot=s.lot,
            bin=s.bin,
            quantity=decimal_text(s.quantity),
            unit_cost=decimal_text(s.unit_cost),
            expires_on=s.expires_on,
        )
        for s in result.shipments
    ]
    done = _done(response, result).model_dump()
    return ShipmentDone(**done, picks=picks, cost=decimal_text(result.cost))


@router.post(
    "/sales-orders/{order_id}/cancel",
    response_model=OrderDone,
    tags=["sales orders"],
    responses=SALES_PROBLEMS,
)
def cancel_sales_order(
    request: Request,
    response: Response,
    caller: SalesWriter,
    order_id: str,
    idempotency_key: IdempotencyKey = None,
) -> OrderDone:
    """Release every reservation; after a partial shipment the order is closed instead."""
    app = _ledger(request, caller)
    meta = _meta(request, caller, app, idempotency_key)
    return _done(response, app.cancel_sales_order(_order_id(order_id), meta))


@router.post(
    "/sales-orders/{order_id}/returns",
    status_code=201,
    response_model=ReturnsDone,
    tags=["sales orders"],
    responses=SALES_PROBLEMS,
)
def return_sales_order(
    request: Request,
    response: Response,
    caller: SalesWriter,
    order_id: str,
    body: ReturnsIn,
    idempotency_key: IdempotencyKey = None,
) -> ReturnsDone:
    """Take shipped stock back per line: restocked, quarantined or scrapped."""
    app = _ledger(request, caller)
    result = app.return_sales_order(
        _order_id(order_id),
        [ReturnLine(r.line, r.quantity, r.disposition, r.bin, r.lot) for r in body.lines],
        _meta(request, caller, app, idempotency_key, body.effective_at),
    )
    returns = [
        ReturnOut(
            line=r.line,
            sku=r.sku,
            quantity=decimal_text(r.quantity),
            lot=r.lot,
            unit_cost=decimal_text(r.unit_cost),
            expires_on=r.expires_on,
            bin=r.bin,
            disposition=r.disposition,
        )
        for r in result.returns
    ]
    return ReturnsDone(**_done(response, result).model_dump(), returns=returns)


@router.get(
    "/sales-orders",
    response_model=SalesOrderPage,
    tags=["sales orders"],
    responses=READ_PROBLEMS,
)
def list_sales_orders(
    request: Request,
    caller: Reader,
    status: Status = None,
    reference: Reference = None,
    external_id: ExternalId = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> SalesOrderPage:
    """The tenant's sales orders with their lines, in a stable order."""
    filters = (status, reference, external_id)
    page, after, at = _read_page(request, caller, "sales", filters, limit, cursor, min_position)
    return SalesOrderPage(items=[_sales(o) for o in page], next_cursor=after, position=at)


@router.get(
    "/sales-orders/{order_id}",
    response_model=SalesOrderRead,
    tags=["sales orders"],
    responses=READ_PROBLEMS,
)
def get_sales_order(
    request: Request, caller: Reader, order_id: str, min_position: MinPosition = None
) -> SalesOrderRead:
    """A sales order with its lines' ordered, allocated, shipped, returned and cancelled."""
    found, at = _read_one(request, caller, SalesOrder, _order_id(order_id), min_position)
    return SalesOrderRead(**_sales(found).model_dump(), position=at)
