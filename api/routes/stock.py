"""Stock movements (`POST /v1/stock/...`): receipts, issues, reservations, moves, transfers,
adjustments, counts, write-offs of expired stock, and lot status (`stock:write` permission)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, permitted
from api.commands import (
    Code,
    EffectiveAt,
    IdempotencyKey,
    Number,
    Text,
    mark_replayed,
    movement_meta,
)
from api.pages import decimal_text
from api.problems import Problem, problem_responses
from api.routes.inputs import Body
from domain.commands import StockResult
from domain.errors import UnknownReference
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication

router = APIRouter(prefix="/v1/stock", tags=["stock movements"])
Writer = Annotated[Principal, Depends(permitted("stock:write"))]

#: Digits a quantity or amount may have in all (the read models keep 26 before the point).

CASES = {
    403: "`forbidden`: needs `stock:write` (and `stock:backdate` for an `effective_at` more"
    " than 24 hours back)",
    409: "`insufficient-stock` (with `requested`, `available`), `lot-expired`,"
    " `lot-unavailable`, `lot-conflict`, `count-mismatch`, `period-locked`,"
    " `concurrency-conflict`, `idempotency-key-in-progress`",
    422: "`validation-error`, `unknown-reference`, `lot-required`, `idempotency-key-reused`",
}
PROBLEMS = problem_responses(CASES)
LOT_PROBLEMS = problem_responses(
    CASES | {404: "`not-found`: no such lot of the SKU in this tenant"}
)


Reason = Literal[
    "sale", "consumption", "damage", "loss", "theft", "sample", "expiry", "correction", "other"
]


# -- requests -------------------------------------------------------------------------------------


class NewReceipt(Body):
    sku: Code
    warehouse: Code
    bin: Code
    quantity: Number
    unit_cost: Number
    lot: Code | None = Field(None, description="Generated when absent.")
    expires_on: date | None = None
    reference: Text | None = None
    effective_at: EffectiveAt = None


class NewIssue(Body):
    sku: Code
    warehouse: Code
    quantity: Number
    reason: Reason
    lot: Code | None = None
    bin: Code | None = None
    reference: Text | None = None
    effective_at: EffectiveAt = None


class NewReservation(Body):
    sku: Code
    warehouse: Code
    quantity: Number
    reference: Text
    lot: Code | None = None
    allow_partial: bool = False
    effective_at: EffectiveAt = None


class NewRelease(Body):
    sku: Code
    warehouse: Code
    reference: Text
    effective_at: EffectiveAt = None


class NewMove(Body):
    sku: Code
    warehouse: Code
    from_bin: Code
    to_bin: Code
    quantity: Number
    lot: Code | None = None
    reference: Text | None = None
    effective_at: EffectiveAt = None


class NewTransfer(Body):
    sku: Code
    from_warehouse: Code
    to_warehouse: Code
    to_bin: Code
    quantity: Number
    lot: Code | None = None
    from_bin: Code | None = None
    reference: Text | None = None
    effective_at: EffectiveAt = None


class NewAdjustment(Body):
    sku: Code
    warehouse: Code
    bin: Code
    delta: Number
    reason: Reason
    lot: Code | None = None
    unit_cost: Number | None = None
    effective_at: EffectiveAt = None


class NewCount(Body):
    sku: Code
    warehouse: Code
    bin: Code
    counted_quantity: Number
    lot: Code | None = None
    expected_quantity: Number | None = None
    effective_at: EffectiveAt = None


class NewWriteOff(Body):
    sku: Code
    warehouse: Code
    lot: Code | None = Field(None, description="Only this lot; all expired lots when absent.")
    effective_at: EffectiveAt = None


class NewLotStatus(Body):
    sku: Code
    status: Literal["released", "hold", "quarantine"]


# -- responses ------------------------------------------------------------------------------------


class PickItem(BaseModel):
    lot: str
    bin: str
    quantity: str
    unit_cost: str | None = Field(
        description="Unit cost of the cost layer the stock left; null for a reservation."
    )
    expires_on: date | None


class Movement(BaseModel):
    position: int = Field(description="The highest position the command appended.")
    picks: list[PickItem] = Field(description="Stock that left (or was reserved at) a place.")


class ReceiptDone(Movement):
    lot: str


class Outflow(Movement):
    cost: str = Field(
        description="The cost of the stock that left: sum of quantity times unit cost."
    )


class AdjustmentDone(Outflow):
    lot: str | None


class ReservationDone(Movement):
    reference: str
    reserved: str
    shortage: str = Field(description="What could not be reserved (only with allow_partial).")


class CountDone(Movement):
    lot: str
    difference: str = Field(description="Counted minus the ledger's quantity.")


class LotStatusDone(Movement):
    sku: str
    lot: str
    status: str


# -- helpers --------------------------------------------------------------------------------------


def _ledger(request: Request, caller: Principal) -> LedgerApplication:
    app: LedgerApplication = request.app.state.ledger.app(caller.tenant_id)
    return app


def _meta(
    request: Request,
    caller: Principal,
    app: LedgerApplication,
    key: str | None,
    effective_at: datetime | None,
) -> EventMetadata:
    """The command's metadata; an entry more than 24 hours back needs `stock:backdate`."""
    return movement_meta(request, caller, app.clock(), key, effective_at)


def _picks(result: StockResult, *, costed: bool = True) -> list[PickItem]:
    return [
        PickItem(
            lot=p.lot,
            bin=p.bin,
            quantity=decimal_text(p.quantity),
            unit_cost=decimal_text(p.unit_cost) if costed else None,
            expires_on=p.expires_on,
        )
        for p in result.picks
    ]


def _outflow(response: Response, result: StockResult) -> Outflow:
    mark_replayed(response, result.replayed)
    return Outflow(position=result.position, picks=_picks(result), cost=decimal_text(result.cost))


def _movement(response: Response, result: StockResult) -> Movement:
    mark_replayed(response, result.replayed)
    return Movement(position=result.position, picks=_picks(result))


# -- endpoints ------------------------------------------------------------------------------------


@router.post(
    "/receipts",
    status_code=201,
    response_model=ReceiptDone,
    summary="Receive stock into a bin as a lot at a unit cost",
    responses=PROBLEMS,
)
def receive(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewReceipt,
    idempotency_key: IdempotencyKey = None,
) -> ReceiptDone:
    app = _ledger(request, caller)
    result = app.receive(
        body.sku,
        body.warehouse,
        body.bin,
        body.quantity,
        body.unit_cost,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        expires_on=body.expires_on,
        reference=body.reference,
    )
    mark_replayed(response, result.replayed)
    assert result.lot is not None
    return ReceiptDone(position=result.position, picks=_picks(result), lot=result.lot)


@router.post(
    "/issues",
    status_code=201,
    response_model=Outflow,
    summary="Issue stock by the product's policy, or from a named lot or bin",
    responses=PROBLEMS,
)
def issue(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewIssue,
    idempotency_key: IdempotencyKey = None,
) -> Outflow:
    app = _ledger(request, caller)
    result = app.issue(
        body.sku,
        body.warehouse,
        body.quantity,
        body.reason,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        bin_code=body.bin,
        reference=body.reference,
    )
    return _outflow(response, result)


@router.post(
    "/reservations",
    status_code=201,
    response_model=ReservationDone,
    summary="Reserve available stock for a reference (all or nothing unless allow_partial)",
    responses=PROBLEMS,
)
def reserve(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewReservation,
    idempotency_key: IdempotencyKey = None,
) -> ReservationDone:
    app = _ledger(request, caller)
    result = app.reserve(
        body.sku,
        body.warehouse,
        body.quantity,
        body.reference,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        allow_partial=body.allow_partial,
    )
    mark_replayed(response, result.replayed)
    reserved = sum((p.quantity for p in result.picks), Decimal(0))
    return ReservationDone(
        position=result.position,
        picks=_picks(result, costed=False),
        reference=body.reference,
        reserved=decimal_text(reserved),
        shortage=decimal_text(result.shortage or Decimal(0)),
    )


@router.post(
    "/reservations/release",
    status_code=201,
    response_model=Movement,
    summary="Release everything a reference reserved of a SKU in a warehouse",
    responses=PROBLEMS,
)
def release(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewRelease,
    idempotency_key: IdempotencyKey = None,
) -> Movement:
    app = _ledger(request, caller)
    result = app.release(
        body.sku,
        body.warehouse,
        body.reference,
        _meta(request, caller, app, idempotency_key, body.effective_at),
    )
    return _movement(response, result)


@router.post(
    "/moves",
    status_code=201,
    response_model=Movement,
    summary="Move stock between bins of a warehouse",
    responses=PROBLEMS,
)
def move(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewMove,
    idempotency_key: IdempotencyKey = None,
) -> Movement:
    app = _ledger(request, caller)
    result = app.move(
        body.sku,
        body.warehouse,
        body.from_bin,
        body.to_bin,
        body.quantity,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        reference=body.reference,
    )
    return _movement(response, result)


@router.post(
    "/transfers",
    status_code=201,
    response_model=Movement,
    summary="Transfer stock to a bin of another warehouse (lot, expiry and cost travel with it)",
    responses=PROBLEMS,
)
def transfer(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewTransfer,
    idempotency_key: IdempotencyKey = None,
) -> Movement:
    app = _ledger(request, caller)
    result = app.transfer(
        body.sku,
        body.from_warehouse,
        body.to_warehouse,
        body.to_bin,
        body.quantity,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        from_bin=body.from_bin,
        reference=body.reference,
    )
    return _movement(response, result)


@router.post(
    "/adjustments",
    status_code=201,
    response_model=AdjustmentDone,
    summary="Correct stock in a bin by a delta with a reason",
    responses=PROBLEMS,
)
def adjust(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewAdjustment,
    idempotency_key: IdempotencyKey = None,
) -> AdjustmentDone:
    app = _ledger(request, caller)
    result = app.adjust(
        body.sku,
        body.warehouse,
        body.bin,
        body.delta,
        body.reason,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        unit_cost=body.unit_cost,
    )
    outflow = _outflow(response, result)
    return AdjustmentDone(**outflow.model_dump(), lot=result.lot)


@router.post(
    "/counts",
    status_code=201,
    response_model=CountDone,
    summary="Record a physical count of a lot in a bin (the difference is booked)",
    responses=PROBLEMS,
)
def count(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewCount,
    idempotency_key: IdempotencyKey = None,
) -> CountDone:
    app = _ledger(request, caller)
    result = app.count(
        body.sku,
        body.warehouse,
        body.bin,
        body.counted_quantity,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
        expected=body.expected_quantity,
    )
    mark_replayed(response, result.replayed)
    assert result.lot is not None
    return CountDone(
        position=result.position,
        picks=_picks(result),
        lot=result.lot,
        difference=decimal_text(result.difference or Decimal(0)),
    )


@router.post(
    "/write-offs",
    status_code=201,
    response_model=Outflow,
    summary="Write off expired stock (every expired lot, or one), reason `expiry`",
    responses=PROBLEMS,
)
def write_off(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewWriteOff,
    idempotency_key: IdempotencyKey = None,
) -> Outflow:
    app = _ledger(request, caller)
    result = app.write_off_expired(
        body.sku,
        body.warehouse,
        _meta(request, caller, app, idempotency_key, body.effective_at),
        lot=body.lot,
    )
    return _outflow(response, result)


@router.post(
    "/lots/{lot:path}/status",
    response_model=LotStatusDone,
    summary="Release a lot, put it on hold or quarantine it, in every warehouse holding it",
    responses=LOT_PROBLEMS,
)
def set_lot_status(
    request: Request,
    response: Response,
    caller: Writer,
    lot: str,
    body: NewLotStatus,
    idempotency_key: IdempotencyKey = None,
) -> LotStatusDone:
    app = _ledger(request, caller)
    meta = _meta(request, caller, app, idempotency_key, None)
    app.product(body.sku)  # an unknown SKU (in the body) is 422 `unknown-reference`
    try:
        result = app.set_lot_status(body.sku, lot, body.status, meta)
    except UnknownReference as error:
        raise Problem("not-found", str(error)) from None
    mark_replayed(response, result.replayed)
    return LotStatusDone(
        position=result.position, picks=[], sku=body.sku, lot=lot, status=body.status
    )
