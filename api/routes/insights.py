"""KPIs and alerts (`GET /v1/kpis`, `GET /v1/alerts`) and the audit feed (`GET /v1/audit/events`,
`GET /v1/audit/verify`)."""

from __future__ import annotations

import base64
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import orjson
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
from api.problems import Problem, problem_responses
from api.routes.inputs import Filter
from eventstore.records import ChainRow
from ledger.export_lines import header_of
from projections.alerts import Alert, AlertKind, alerts
from projections.kpis import kpis

router = APIRouter(prefix="/v1")
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
Auditor = Annotated[Principal, Depends(permitted("audit:read"))]
#: Alerts judge lots, products (reorder points, alert days), warehouses and stock levels.
ALERT_READS = ("lots", "catalog", "stock_levels")
ZERO_HASH = bytes(32)

QUERY_PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        503: "`projection-lagging`: `min_position` not reached in time; `service-unavailable`",
    }
)
AUDIT_PROBLEMS = problem_responses({403: "`forbidden`: needs `audit:read`"})


def _text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


# --- KPIs -------------------------------------------------------------------------------------


class KpiAnswer(BaseModel):
    """The KPIs of the business days from `from` to `to` (inclusive); a rate whose
    denominator is zero is null."""

    cogs: str
    average_inventory_value: str
    inventory_turnover: str | None
    days_of_inventory: str | None
    unit_fill_rate: str | None
    line_fill_rate: str | None
    stockout_events: int
    expired_quantity: str
    expired_value: str
    record_accuracy: str | None
    supplier_on_time_rate: str | None
    warehouse: str | None
    position: int


@router.get(
    "/kpis",
    response_model=KpiAnswer,
    tags=["queries"],
    summary="Inventory KPIs of a period of business days, of one warehouse or all",
    responses=QUERY_PROBLEMS,
)
def get_kpis(
    request: Request,
    caller: Reader,
    start: Annotated[date, Query(alias="from", description="First business day (ISO date).")],
    end: Annotated[date, Query(alias="to", description="Last business day, inclusive.")],
    warehouse: Filter = None,
    min_position: MinPosition = None,
) -> KpiAnswer:
    if end < start:
        raise Problem(
            "validation-error",
            "the request is not valid",
            errors=[{"field": "query.to", "message": f"{end} is before `from` {start}"}],
        )
    with read_model(request, caller.tenant_id, "kpis", min_position) as (conn, at):
        found = kpis(conn, caller.tenant_id, start=start, end=end, warehouse=warehouse)
    return KpiAnswer(
        cogs=decimal_text(found.cogs),
        average_inventory_value=decimal_text(found.average_inventory_value),
        inventory_turnover=_text(found.inventory_turnover),
        days_of_inventory=_text(found.days_of_inventory),
        unit_fill_rate=_text(found.unit_fill_rate),
        line_fill_rate=_text(found.line_fill_rate),
        stockout_events=found.stockout_events,
        expired_quantity=decimal_text(found.expired_quantity),
        expired_value=decimal_text(found.expired_value),
        record_accuracy=_text(found.record_accuracy),
        supplier_on_time_rate=_text(found.supplier_on_time_rate),
        warehouse=warehouse,
        position=at,
    )


# --- Alerts -----------------------------------------------------------------------------------


class AlertItem(BaseModel):
    """`low_stock` of a SKU in a warehouse (reorder point, available, incoming), or `expiring`
    / `expired` of a lot in a bin (quantity on hand, expiry)."""

    kind: AlertKind
    sku: str
    warehouse: str
    lot: str | None
    bin: str | None
    quantity: str | None
    expires_on: date | None
    reorder_point: str | None
    available: str | None
    incoming: str | None


class AlertPage(Page):
    items: list[AlertItem]


def _alert_item(alert: Alert) -> AlertItem:
    return AlertItem(
        kind=alert.kind,
        sku=alert.sku,
        warehouse=alert.warehouse,
        lot=alert.lot,
        bin=alert.bin,
        quantity=_text(alert.quantity),
        expires_on=alert.expires_on,
        reorder_point=_text(alert.reorder_point),
        available=_text(alert.available),
        incoming=_text(alert.incoming),
    )


@router.get(
    "/alerts",
    response_model=AlertPage,
    tags=["queries"],
    summary="Low stock, lots within their expiry alert days, expired lots on hand",
    responses=QUERY_PROBLEMS,
)
def list_alerts(
    request: Request,
    caller: Reader,
    kind: Annotated[
        list[AlertKind] | None, Query(description="Only these kinds (repeatable).")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> AlertPage:
    after = None if cursor is None else decode_cursor(cursor, 5)
    if after is not None and (
        after[0] not in ("expired", "expiring", "low_stock")
        or not all(isinstance(part, str) for part in after)
    ):
        raise Problem(
            "validation-error",
            "the cursor is not one this list gave",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
        )
    with read_model(request, caller.tenant_id, ALERT_READS, min_position) as (conn, at):
        found = alerts(
            conn,
            caller.tenant_id,
            kinds=kind,
            after=None if after is None else (after[0], after[1], after[2], after[3], after[4]),
            limit=limit + 1,
        )
    more = len(found) > limit
    found = found[:limit]
    return AlertPage(
        items=[_alert_item(a) for a in found],
        next_cursor=encode_cursor(found[-1].cursor) if more else None,
        position=at,
    )


# --- Audit ------------------------------------------------------------------------------------


class AuditEvent(BaseModel):
    """A stored event as recorded: `payload` is its exact bytes (base64); `hash` is
    sha256(`prev_hash` || payload), lowercase hex."""

    position: int
    type: str | None
    stream: str | None
    version: int | None
    data: Any
    actor: Any
    request_id: str | None
    idempotency_key: str | None
    recorded_at: str | None
    effective_at: str | None
    payload: str
    prev_hash: str | None
    hash: str


class AuditPage(Page):
    items: list[AuditEvent]


def _plain(value: Any) -> Any:
    """Stored JSON with its typed values (`{"_type_": ..., "_data_": ...}`) as their text."""
    if isinstance(value, dict):
        if "_type_" in value and "_data_" in value and len(value) == 2:
            return _plain(value["_data_"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _data_of(payload: bytes) -> Any:
    cut = payload.find(b"\n")
    if cut < 0:
        return None
    try:
        return _plain(orjson.loads(payload[cut + 1 :]))
    except ValueError:  # a tampered row is shown as it is stored (its payload)
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def audit_event(row: ChainRow, prev_hash: bytes | None) -> AuditEvent:
    """A stored event as the audit feed gives it (`prev_hash` None: the one before is missing)."""
    position, payload, digest = row
    header = header_of(payload)
    topic = header.get("topic")
    version = header.get("version")
    recorded = _str(header.get("recorded_at"))
    return AuditEvent(
        position=position,
        type=topic.rpartition(":")[2] if isinstance(topic, str) else None,
        stream=_str(header.get("stream_id")),
        version=version if isinstance(version, int) else None,
        data=_data_of(payload),
        actor=header.get("actor"),
        request_id=_str(header.get("request_id")),
        idempotency_key=_str(header.get("idempotency_key")),
        recorded_at=recorded,
        effective_at=_str(header.get("effective_at")) or recorded,
        payload=base64.b64encode(payload).decode("ascii"),
        prev_hash=None if prev_hash is None else prev_hash.hex(),
        hash=digest.hex(),
    )


@router.get(
    "/audit/events",
    response_model=AuditPage,
    tags=["audit"],
    summary="Every stored event in position order, with its exact bytes and hash chain",
    responses=AUDIT_PROBLEMS,
)
def list_audit_events(
    request: Request,
    caller: Auditor,
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="Events after this position.")
    ] = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AuditPage:
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit() and int(cursor) <= MAX_POSITION):
            raise Problem(
                "validation-error",
                "the cursor is not one this list gave",
                errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
            )
        after = int(cursor)
    store = request.app.state.ledger.store
    tenant_id = caller.tenant_id
    head = store.head(tenant_id).position
    count = min(limit, head - after)
    rows: list[ChainRow] = store.read_chain(tenant_id, after, count) if count > 0 else []
    if after == 0:
        prev: bytes | None = ZERO_HASH
    else:
        before = store.read_chain(tenant_id, after - 1, 1)
        prev = before[0][2] if before and before[0][0] == after else None
    items = []
    expected = after + 1
    for row in rows:
        if row[0] != expected:
            prev = None  # the row before is missing: its hash is not known
        items.append(audit_event(row, prev))
        prev, expected = row[2], row[0] + 1
    last = rows[-1][0] if rows else after
    return AuditPage(
        items=items,
        next_cursor=str(last) if rows and last < head else None,
        position=head,
    )


class AuditVerification(BaseModel):
    ok: bool
    checked_to_position: int
    first_bad_position: int | None
    head_hash: str
    reason: str | None


@router.get(
    "/audit/verify",
    response_model=AuditVerification,
    tags=["audit"],
    summary="Recomputes the tenant's hash chain from the stored payloads",
    responses=AUDIT_PROBLEMS,
)
def verify_audit_chain(request: Request, caller: Auditor) -> AuditVerification:
    result = request.app.state.ledger.store.verify(caller.tenant_id)
    return AuditVerification(
        ok=result.ok,
        checked_to_position=result.checked_to_position,
        first_bad_position=result.first_bad_position,
        head_hash=result.head_hash.hex(),
        reason=result.reason,
    )
