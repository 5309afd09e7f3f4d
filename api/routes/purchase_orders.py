"""Purchase orders: their commands (`po:write`) and reads (`stock:read`)."""

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
    PURCHASE_PROBLEMS,
    READ_PROBLEMS,
    ExternalId,
    OrderDone,
    PurchaseOrderIn,
    PurchaseOrderPage,
    PurchaseOrderRead,
    PurchaseWriter,
    Reader,
    ReceiptOut,
    ReceiptsDone,
    ReceiptsIn,
    Reference,
    Status,
    _done,
    _ledger,
    _meta,
    _order_id,
    _purchase,
    _read_one,
    _read_page,
)
from domain.orders import ReceiveLine
from domain.purchasing import PurchaseOrder

router = APIRouter(prefix="/v1")


# -- purchase orders ------------------------------------------------------------------------------


@router.post(
    "/purchase-orders",
    status_code=201,
    response_model=OrderDone,
    tags=["purchase orders"],
    responses=PURCHASE_PROBLEMS,
)
def create_purchase_order(
    request: Request,
    response: Response,
    caller: PurchaseWriter,
    body: PurchaseOrderIn,
    idempotency_key: IdempotencyKey = None,
) -> OrderDone:
    """Draft a purchase order from a supplier for one warehouse."""
    app = _ledger(request, caller)
    result = app.create_purchase_order(
        body.supplier,
        body.warehouse,
        [(line.sku, line.quantity, line.unit_cost) for line in body.lines],
        _meta(request, caller, app, idempotency_key),
        expected_on=body.expected_on,
        external_id=body.external_id,
        reference=body.reference,
    )
    return _done(response, result)


@router.post(
    "/purchase-orders/{order_id}/submit",
    response_model=OrderDone,
    tags=["purchase orders"],
    responses=PURCHASE_PROBLEMS,
)
def submit_purchase_order(
    request: Request,
    response: Response,
    caller: PurchaseWriter,
    order_id: str,
    idempotency_key: IdempotencyKey = None,
) -> OrderDone:
    """Send a draft to the supplier: its open quantities become incoming stock."""
    app = _ledger(request, caller)
    meta = _meta(request, caller, app, idempotency_key)
    return _done(response, app.submit_purchase_order(_order_id(order_id), meta))


@router.post(
    "/purchase-orders/{order_id}/cancel",
    response_model=OrderDone,
    tags=["purchase orders"],
    responses=PURCHASE_PROBLEMS,
)
def cancel_purchase_order(
    request: Request,
    response: Response,
    caller: PurchaseWriter,
    order_id: str,
    idempotency_key: IdempotencyKey = None,
) -> OrderDone:
    """Cancel a draft or submitted order before anything arrived."""
    app = _ledger(request, caller)
    meta = _meta(request, caller, app, idempotency_key)
    return _done(response, app.cancel_purchase_order(_order_id(order_id), meta))


@router.post(
    "/purchase-orders/{order_id}/close",
    response_model=OrderDone,
    tags=["purchase orders"],
    responses=PURCHASE_PROBLEMS,
)
def close_purchase_order(
    request: Request,
    response: Response,
    caller: PurchaseWriter,
    order_id: str,
    idempotency_key: IdempotencyKey = None,
) -> OrderDone:
    """Short-close a submitted or partially received order: the open remainder is cancelled."""
    app = _ledger(request, caller)
    meta = _meta(request, caller, app, idempotency_key)
    return _done(response, app.close_purchase_order(_order_id(order_id), meta))


@router.post(
    "/purchase-orders/{order_id}/receipts",
    status_code=201,
    response_model=ReceiptsDone,
    tags=["purchase orders"],
    responses=PURCHASE_PROBLEMS,
)
def receive_purchase_order(
    request: Request,
    response: Response,
    caller: PurchaseWriter,
    order_id: str,
    body: ReceiptsIn,
    idempotency_key: IdempotencyKey = None,
) -> ReceiptsDone:
    """Receive lines, in part or in full, into bins as lots: order and stock change at once."""
    app = _ledger(request, caller)
    result = app.receive_purchase_order(
        _order_id(order_id),
        [ReceiveLine(r.line, r.quantity, r.bin, r.lot, r.expires_on) for r in body.lines],
        _meta(request, caller, app, idempotency_key, body.effective_at),
    )
    receipts = [
        ReceiptOut(
            line=r.line,
            sku=r.sku,
            quantity=decimal_text(r.quantity),
            unit_cost=decimal_text(r.unit_cost),
            bin=r.bin,
            lot=r.lot,
            expires_on=r.expires_on,
        )
        for r in result.receipts
    ]
    return ReceiptsDone(**_done(response, result).model_dump(), receipts=receipts)


@router.get(
    "/purchase-orders",
    response_model=PurchaseOrderPage,
    tags=["purchase orders"],
    responses=READ_PROBLEMS,
)
def list_purchase_orders(
    request: Request,
    caller: Reader,
    status: Status = None,
    reference: Reference = None,
    external_id: ExternalId = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> PurchaseOrderPage:
    """The tenant's purchase orders with their lines, in a stable order."""
    filters = (status, reference, external_id)
    page, after, at = _read_page(request, caller, "purchase", filters, limit, cursor, min_position)
    return PurchaseOrderPage(items=[_purchase(o) for o in page], next_cursor=after, position=at)


@router.get(
    "/purchase-orders/{order_id}",
    response_model=PurchaseOrderRead,
    tags=["purchase orders"],
    responses=READ_PROBLEMS,
)
def get_purchase_order(
    request: Request, caller: Reader, order_id: str, min_position: MinPosition = None
) -> PurchaseOrderRead:
    """A purchase order with its lines' ordered, received and open quantities."""
    found, at = _read_one(request, caller, PurchaseOrder, _order_id(order_id), min_position)
    return PurchaseOrderRead(**_purchase(found).model_dump(), position=at)
