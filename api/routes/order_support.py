"""What the purchase and sales order routes share: request and response models, permissions,
reading the orders read model."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, permitted
from api.commands import (
    Code,
    EffectiveAt,
    Number,
    Text,
    mark_replayed,
    movement_meta,
)
from api.pages import (
    Page,
    decimal_text,
    decode_cursor,
    encode_cursor,
    read_model,
)
from api.problems import Problem, problem_responses
from api.routes.inputs import Body
from domain.metadata import EventMetadata
from domain.ordering import OrderResult, load_order
from domain.orders import LineQuantity, OrderAggregate
from domain.purchasing import PurchaseOrder
from domain.sales_orders import LedgerApplication
from projections.orders import Order, OrderLine, orders

PurchaseWriter = Annotated[Principal, Depends(permitted("po:write"))]
SalesWriter = Annotated[Principal, Depends(permitted("so:write"))]
Reader = Annotated[Principal, Depends(permitted("stock:read"))]

ZERO = Decimal(0)


def _problems(permission: str) -> dict[int | str, dict[str, Any]]:
    return problem_responses(
        {
            403: f"`forbidden`: needs `{permission}` (and `stock:backdate` for an"
            " `effective_at` more than 24 hours back)",
            404: "`not-found`: no such order in this tenant",
            409: "`invalid-state` (with `status`), `already-exists`, `over-receipt`,"
            " `insufficient-stock`, `lot-expired`, `lot-unavailable`, `lot-conflict`,"
            " `period-locked`, `concurrency-conflict`, `idempotency-key-in-progress`",
            422: "`validation-error`, `unknown-reference`, `lot-required`,"
            " `idempotency-key-reused`",
        }
    )


PURCHASE_PROBLEMS = _problems("po:write")
SALES_PROBLEMS = _problems("so:write")
READ_PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        404: "`not-found`: no such order in this tenant",
        503: "`projection-lagging`: `min_position` not reached in time; `service-unavailable`",
    }
)


#: Lines an order may have.
MAX_LINES = 500
LineNumber = Annotated[
    int, Field(ge=1, le=MAX_LINES, description="The order line's number (from 1).")
]


# -- requests -------------------------------------------------------------------------------------


class PurchaseLineIn(BaseModel):
    sku: Code
    quantity: Number
    unit_cost: Number


class PurchaseOrderIn(Body):
    supplier: Text
    warehouse: Code
    expected_on: date | None = None
    external_id: Text | None = None
    reference: Text | None = None
    lines: list[PurchaseLineIn] = Field(min_length=1, max_length=MAX_LINES)


class ReceiptLineIn(BaseModel):
    line: LineNumber
    quantity: Number
    bin: Code
    lot: Code | None = Field(None, description="Generated when absent.")
    expires_on: date | None = None


class ReceiptsIn(Body):
    lines: list[ReceiptLineIn] = Field(min_length=1)
    effective_at: EffectiveAt = None


class SalesLineIn(BaseModel):
    sku: Code
    quantity: Number


class SalesOrderIn(Body):
    customer: Text
    warehouse: Code
    external_id: Text | None = None
    reference: Text | None = None
    lines: list[SalesLineIn] = Field(min_length=1, max_length=MAX_LINES)


class ShipLineIn(BaseModel):
    line: LineNumber
    quantity: Number


class ShipIn(Body):
    lines: list[ShipLineIn] | None = Field(
        default=None, min_length=1, description="All that is allocated when absent."
    )
    effective_at: EffectiveAt = None


class ReturnLineIn(BaseModel):
    line: LineNumber
    quantity: Number
    disposition: Literal["restock", "quarantine", "scrap"]
    bin: Code | None = Field(None, description="Needed unless the disposition is `scrap`.")
    lot: Code | None = Field(None, description="Only stock shipped from this lot.")


class ReturnsIn(Body):
    lines: list[ReturnLineIn] = Field(min_length=1)
    effective_at: EffectiveAt = None


# -- command responses ----------------------------------------------------------------------------


class OrderDone(BaseModel):
    id: UUID
    status: str
    position: int = Field(description="The highest position the command appended.")


class LineQuantityOut(BaseModel):
    line: int
    quantity: str


class ReceiptOut(BaseModel):
    line: int
    sku: str
    quantity: str
    unit_cost: str
    bin: str
    lot: str
    expires_on: date | None


class ReceiptsDone(OrderDone):
    receipts: list[ReceiptOut]


class AllocationDone(OrderDone):
    reserved: list[LineQuantityOut]
    released: list[LineQuantityOut] = Field(
        description="Reservations given up because their lot expired or went on hold."
    )
    backordered: list[LineQuantityOut]


class PickOut(BaseModel):
    line: int
    sku: str
    lot: str
    bin: str
    quantity: str
    unit_cost: str
    expires_on: date | None


class ShipmentDone(OrderDone):
    picks: list[PickOut]
    cost: str = Field(description="The cost of the stock shipped.")


class ReturnOut(BaseModel):
    line: int
    sku: str
    quantity: str
    lot: str
    unit_cost: str
    expires_on: date | None
    bin: str | None
    disposition: str


class ReturnsDone(OrderDone):
    returns: list[ReturnOut]


# -- read model responses -------------------------------------------------------------------------


class OrderOut(BaseModel):
    id: UUID
    status: str
    warehouse: str
    external_id: str | None
    reference: str | None
    last_position: int = Field(description="The position of the order's last change.")


class PurchaseLineOut(BaseModel):
    line: int
    sku: str
    ordered: str
    unit_cost: str
    received: str
    cancelled: str = Field(description="Short-closed: will not come.")
    open: str = Field(description="Still expected.")


class PurchaseOrderOut(OrderOut):
    supplier: str
    expected_on: date | None
    lines: list[PurchaseLineOut]


class PurchaseOrderRead(PurchaseOrderOut):
    position: int


class PurchaseOrderPage(Page):
    items: list[PurchaseOrderOut]


class SalesLineOut(BaseModel):
    line: int
    sku: str
    ordered: str
    allocated: str = Field(description="Reserved and not yet shipped.")
    shipped: str
    returned: str
    cancelled: str
    unallocated: str = Field(description="Neither allocated, shipped nor cancelled.")


class SalesOrderOut(OrderOut):
    customer: str
    lines: list[SalesLineOut]


class SalesOrderRead(SalesOrderOut):
    position: int


class SalesOrderPage(Page):
    items: list[SalesOrderOut]


# -- helpers --------------------------------------------------------------------------------------


def _ledger(request: Request, caller: Principal) -> LedgerApplication:
    app: LedgerApplication = request.app.state.ledger.app(caller.tenant_id)
    return app


def _order_id(text: str) -> UUID:
    """An order id from the path; anything that is not a UUID names no order."""
    try:
        return UUID(text)
    except ValueError:
        raise Problem("not-found", f"no order {text!r} in this tenant") from None


def _meta(
    request: Request,
    caller: Principal,
    app: LedgerApplication,
    key: str | None,
    effective_at: datetime | None = None,
) -> EventMetadata:
    """The command's metadata; an entry more than 24 hours back needs `stock:backdate`."""
    return movement_meta(request, caller, app.clock(), key, effective_at)


def _done(response: Response, result: OrderResult) -> OrderDone:
    mark_replayed(response, result.replayed)
    return OrderDone(id=result.order_id, status=result.status, position=result.position)


def _quantities(values: tuple[LineQuantity, ...]) -> list[LineQuantityOut]:
    return [LineQuantityOut(line=v.line, quantity=decimal_text(v.quantity)) for v in values]


def _text(value: Decimal | None) -> str:
    """A read model's decimal (none counts as zero)."""
    return decimal_text(value if value is not None else ZERO)


def _purchase(order: Order) -> PurchaseOrderOut:
    ended = order.status in ("cancelled", "closed")

    def line(r: OrderLine) -> PurchaseLineOut:
        still = ZERO if ended else max(r.ordered - r.received - r.cancelled, ZERO)
        return PurchaseLineOut(
            line=r.line,
            sku=r.sku,
            ordered=_text(r.ordered),
            unit_cost=_text(r.unit_cost),
            received=_text(r.received),
            cancelled=_text(r.cancelled),
            open=_text(still),
        )

    return PurchaseOrderOut(
        id=order.order_id,
        status=order.status,
        supplier=order.partner,
        warehouse=order.warehouse,
        expected_on=order.expected_on,
        external_id=order.external_id,
        reference=order.reference,
        last_position=order.position,
        lines=[line(r) for r in order.lines],
    )


def _sales(order: Order) -> SalesOrderOut:
    def line(r: OrderLine) -> SalesLineOut:
        rest = max(r.ordered - r.allocated - r.shipped - r.cancelled, ZERO)
        return SalesLineOut(
            line=r.line,
            sku=r.sku,
            ordered=_text(r.ordered),
            allocated=_text(r.allocated),
            shipped=_text(r.shipped),
            returned=_text(r.returned),
            cancelled=_text(r.cancelled),
            unallocated=_text(rest),
        )

    return SalesOrderOut(
        id=order.order_id,
        status=order.status,
        customer=order.partner,
        warehouse=order.warehouse,
        external_id=order.external_id,
        reference=order.reference,
        last_position=order.position,
        lines=[line(r) for r in order.lines],
    )


def _find(
    request: Request, tenant_id: UUID, kind: str, order_id: UUID, min_position: int | None
) -> tuple[Order | None, int]:
    """The order as the read model has it (by id: the first order after its predecessor)."""
    if order_id.int == 0:
        return None, 0
    with read_model(request, tenant_id, "orders", min_position) as (conn, at):
        found = orders(conn, tenant_id, kind=kind, after=UUID(int=order_id.int - 1), limit=1)
    return (found[0] if found and found[0].order_id == order_id else None), at


def _read_one(
    request: Request,
    caller: Principal,
    kind: type[OrderAggregate],
    order_id: UUID,
    min_position: int | None,
) -> tuple[Order, int]:
    """One order of the caller's tenant; an order recorded but not yet projected is waited for,
    so a client reads its own writes even without `min_position`."""
    name = "purchase" if kind is PurchaseOrder else "sales"
    found, at = _find(request, caller.tenant_id, name, order_id, min_position)
    if found is None:
        load_order(_ledger(request, caller), order_id, kind)  # not-found unless it exists
        head = int(request.app.state.ledger.store.head(caller.tenant_id).position)
        found, at = _find(request, caller.tenant_id, name, order_id, max(head, min_position or 0))
    if found is None:
        raise Problem("not-found", f"no order {order_id} in this tenant")
    return found, at


def _read_page(
    request: Request,
    caller: Principal,
    kind: str,
    filters: tuple[str | None, str | None, str | None],
    limit: int,
    cursor: str | None,
    min_position: int | None,
) -> tuple[list[Order], str | None, int]:
    """A page of orders in id order; the read model's query has no `reference` filter, so it is
    applied here over as many of its pages as it takes."""
    status, reference, external_id = filters
    after = None if cursor is None else _cursor_id(cursor)
    found: list[Order] = []
    with read_model(request, caller.tenant_id, "orders", min_position) as (conn, at):
        while len(found) <= limit:
            batch = orders(
                conn,
                caller.tenant_id,
                kind=kind,
                status=status,
                external_id=external_id,
                after=after,
                limit=limit + 1,
            )
            found += [o for o in batch if reference is None or o.reference == reference]
            if len(batch) <= limit:
                break
            after = batch[-1].order_id
    page = found[:limit]
    more = len(found) > limit
    return page, encode_cursor((str(page[-1].order_id),)) if more else None, at


def _cursor_id(cursor: str) -> UUID:
    (key,) = decode_cursor(cursor, 1)
    try:
        return UUID(str(key))
    except ValueError:
        raise Problem(
            "validation-error",
            "the cursor is not one this list gave",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
        ) from None


Status = Annotated[str | None, Query(description="Only orders in this status.")]
Reference = Annotated[str | None, Query(description="Only orders with this reference.")]
ExternalId = Annotated[str | None, Query(description="Only the order with this external id.")]
