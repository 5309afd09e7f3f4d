"""The catalog and the locations: products, warehouses and their bins, and what a scanned code
names (`/v1/products`, `/v1/warehouses`, `/v1/warehouses/{code}/bins`, `/v1/lookup`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictBool, StrictInt
from sqlalchemy import Connection, select

from api.auth import Principal, permitted
from api.commands import IdempotencyKey, command_meta, exact, mark_replayed
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
from api.problems import Problem
from domain.errors import UnknownReference
from domain.quantities import MAX_DECIMALS
from projections.catalog import BINS, PRODUCTS, WAREHOUSES, BinView, ProductView, WarehouseView
from projections.catalog import bins as bin_rows
from projections.catalog import products as product_rows
from projections.catalog import warehouses as warehouse_rows
from projections.lots import lots as lot_rows

router = APIRouter(prefix="/v1", tags=["catalog"])
Reader = Annotated[Principal, Depends(permitted("catalog:read"))]
Writer = Annotated[Principal, Depends(permitted("catalog:write"))]

_UNAUTHENTICATED = {"description": "`unauthenticated`"}
_INVALID = {"description": "`validation-error`"}
_LAGGING = {"description": "`projection-lagging`: `min_position` not reached in time"}
WRITES: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHENTICATED,
    403: {"description": "`forbidden`: needs `catalog:write`"},
    409: {"description": "`already-exists`, `idempotency-key-in-progress`"},
    422: {"description": "`validation-error`, `idempotency-key-reused`"},
}
READS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHENTICATED,
    403: {"description": "`forbidden`: needs `catalog:read`"},
    422: _INVALID,
    503: _LAGGING,
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "`not-found`: no such resource in this tenant"}
}

STOCKED: dict[int | str, dict[str, Any]] = {
    409: {"description": "`invalid-state`: decimals or tracking flags while stock is on hand"}
}
UNKNOWN_CODE: dict[int | str, dict[str, Any]] = {
    404: {"description": "`not-found`: the code names no product, bin or lot here"}
}


# -- request values ---------------------------------------------------------------------------


def _canonical(value: Decimal) -> Decimal:
    """A decimal by its value: 12.5, "12.50" and "1.25E1" are the same request."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


Quantity = Annotated[
    Decimal,
    BeforeValidator(exact),
    Field(allow_inf_nan=False, ge=0),
    AfterValidator(_canonical),
]
Code = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Days = Annotated[StrictInt, Field(ge=0)]
Policy = Literal["fifo", "fefo"]


class BarcodeIn(BaseModel):
    code: Code
    kind: str | None = Field(None, max_length=64, description="e.g. `ean13`, `gtin14`, `qr`")
    pack_quantity: Quantity | None = Field(
        None, description="Units of the product this code stands for (a case, a pallet)."
    )


class NewProduct(BaseModel):
    sku: Code
    name: Name
    uom: Code = "each"
    decimals: Annotated[StrictInt, Field(ge=0, le=MAX_DECIMALS)] = 0
    lot_tracked: StrictBool = False
    expiry_tracked: StrictBool = False
    removal_policy: Policy = Field("fifo", description="`fefo` needs `expiry_tracked`.")
    shelf_life_days: Days | None = None
    expiry_alert_days: Days | None = None
    reorder_point: Quantity | None = None
    reorder_quantity: Quantity | None = None
    barcodes: list[BarcodeIn] | None = Field(None, description="Unique per tenant.")
    attributes: dict[str, Any] = Field(default_factory=dict)


class ProductChanges(BaseModel):
    """The fields to change; a field left out stays as it is, `null` clears an optional one.
    `decimals` and the tracking flags cannot change while stock is on hand (409)."""

    name: Name | None = None
    decimals: Annotated[StrictInt, Field(ge=0, le=MAX_DECIMALS)] | None = None
    lot_tracked: StrictBool | None = None
    expiry_tracked: StrictBool | None = None
    removal_policy: Policy | None = None
    shelf_life_days: Days | None = None
    expiry_alert_days: Days | None = None
    reorder_point: Quantity | None = None
    reorder_quantity: Quantity | None = None
    barcodes: list[BarcodeIn] | None = None
    attributes: dict[str, Any] | None = None
    active: StrictBool | None = None


#: PATCH fields that may be set to null (the others need a value when given).
CLEARABLE = frozenset(
    {"shelf_life_days", "expiry_alert_days", "reorder_point", "reorder_quantity", "barcodes"}
)


class NewWarehouse(BaseModel):
    code: Code
    name: Name
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone")


class NewBin(BaseModel):
    code: Code
    zone: Code | None = None
    pickable: StrictBool = Field(
        True, description="Stock in a non-pickable bin is on hand but never picked or available."
    )


# -- responses --------------------------------------------------------------------------------


class Barcode(BaseModel):
    code: str
    kind: str | None = None
    pack_quantity: str | None = None


class ProductFields(BaseModel):
    sku: str
    name: str
    uom: str
    decimals: int
    lot_tracked: bool
    expiry_tracked: bool
    removal_policy: str
    shelf_life_days: int | None
    expiry_alert_days: int | None
    reorder_point: str | None
    reorder_quantity: str | None
    barcodes: list[Barcode]
    attributes: dict[str, Any]
    active: bool


class ProductItem(ProductFields):
    position: int = Field(description="The position of the product's last change.")


class Product(ProductFields):
    position: int = Field(
        description="A command's: the position it reached; a query's: the read model's."
    )


class ProductPage(Page):
    items: list[ProductItem]


class WarehouseItem(BaseModel):
    code: str
    name: str
    timezone: str
    position: int


class WarehousePage(Page):
    items: list[WarehouseItem]


class BinItem(BaseModel):
    warehouse: str
    code: str
    zone: str | None
    pickable: bool
    position: int


class BinPage(Page):
    items: list[BinItem]


class LotPlace(BaseModel):
    lot: str
    sku: str
    warehouse: str
    bin: str
    on_hand: str
    reserved: str
    expires_on: date | None
    status: str


class Lookup(BaseModel):
    """What a code names: the first of a product (by SKU, then barcode), a bin, a lot."""

    kind: Literal["product", "bin", "lot"]
    code: str
    product: ProductItem | None = Field(None, description="With `kind` product.")
    barcode: Barcode | None = Field(None, description="The barcode the code matched, if any.")
    bins: list[BinItem] = Field(
        default_factory=list, description="Every bin with this code (one per warehouse)."
    )
    lots: list[LotPlace] = Field(
        default_factory=list, description="Every place a lot with this id is kept."
    )
    also: list[str] = Field(default_factory=list, description="Other kinds this code names too.")
    position: int


# -- helpers ----------------------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _barcode(value: Any) -> Barcode:
    if isinstance(value, dict):
        quantity = value.get("pack_quantity")
        return Barcode(
            code=str(value.get("code")),
            kind=value.get("kind"),
            pack_quantity=_text(Decimal(str(quantity))) if quantity is not None else None,
        )
    return Barcode(code=str(value))


def _barcodes_in(barcodes: list[BarcodeIn] | None) -> list[dict[str, Any]] | None:
    if barcodes is None:
        return None
    return [b.model_dump(exclude_none=True) for b in barcodes]


def _fields(view: ProductView) -> dict[str, Any]:
    return {
        "sku": view.sku,
        "name": view.name,
        "uom": view.uom,
        "decimals": view.decimals,
        "lot_tracked": view.lot_tracked,
        "expiry_tracked": view.expiry_tracked,
        "removal_policy": view.removal_policy,
        "shelf_life_days": view.shelf_life_days,
        "expiry_alert_days": view.expiry_alert_days,
        "reorder_point": _text(view.reorder_point),
        "reorder_quantity": _text(view.reorder_quantity),
        "barcodes": [_barcode(b) for b in view.barcodes or []],
        "attributes": view.attributes,
        "active": view.active,
    }


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


# -- products ---------------------------------------------------------------------------------


@router.post(
    "/products",
    status_code=201,
    response_model=Product,
    summary="Add a product to the catalog",
    responses=WRITES,
)
def create_product(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewProduct,
    idempotency_key: IdempotencyKey = None,
) -> Product:
    fields = body.model_dump(exclude={"sku", "name", "barcodes"})
    barcodes = _barcodes_in(body.barcodes)
    if barcodes is not None:
        fields["barcodes"] = barcodes
    app = request.app.state.ledger.app(caller.tenant_id)
    result = app.register_product(
        body.sku, body.name, command_meta(request, caller, idempotency_key), **fields
    )
    mark_replayed(response, result.replayed)
    return Product(
        sku=body.sku,
        name=body.name.strip(),
        uom=body.uom,
        decimals=body.decimals,
        lot_tracked=body.lot_tracked,
        expiry_tracked=body.expiry_tracked,
        removal_policy=body.removal_policy,
        shelf_life_days=body.shelf_life_days,
        expiry_alert_days=body.expiry_alert_days,
        reorder_point=_text(body.reorder_point),
        reorder_quantity=_text(body.reorder_quantity),
        barcodes=[_barcode(b) for b in barcodes or []],
        attributes=body.attributes,
        active=True,
        position=result.position,
    )


@router.get(
    "/products",
    response_model=ProductPage,
    summary="The catalog's products by SKU",
    responses=READS,
)
def list_products(
    request: Request,
    caller: Reader,
    active: Annotated[bool | None, Query(description="Only active (or inactive) ones.")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> ProductPage:
    after = None if cursor is None else str(decode_cursor(cursor, 1)[0])
    with read_model(request, caller.tenant_id, "catalog", min_position) as (conn, at):
        rows = product_rows(conn, caller.tenant_id, active=active, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return ProductPage(
        items=[ProductItem(**_fields(r), position=r.position) for r in rows],
        next_cursor=encode_cursor((rows[-1].sku,)) if more else None,
        position=at,
    )


@router.get(
    "/products/{sku:path}",
    response_model=Product,
    summary="One product",
    responses=READS | NOT_FOUND,
)
def get_product(
    request: Request, caller: Reader, sku: str, min_position: MinPosition = None
) -> Product:
    with read_model(request, caller.tenant_id, "catalog", min_position) as (conn, at):
        rows = product_rows(conn, caller.tenant_id, sku=sku, limit=1)
    if not rows:
        raise Problem("not-found", f"product {sku!r} does not exist")
    return Product(**_fields(rows[0]), position=at)


@router.patch(
    "/products/{sku:path}",
    response_model=Product,
    summary="Change a product (name, reorder, alerts, policy, attributes, active, ...)",
    responses=WRITES | NOT_FOUND | STOCKED,
)
def change_product(
    request: Request,
    response: Response,
    caller: Writer,
    sku: str,
    body: ProductChanges,
    idempotency_key: IdempotencyKey = None,
) -> Product:
    changes = body.model_dump(include=body.model_fields_set)
    nulls = sorted(k for k, v in changes.items() if v is None and k not in CLEARABLE)
    if nulls:
        raise Problem(
            "validation-error",
            "the request is not valid",
            errors=[{"field": f"body.{k}", "message": "must not be null"} for k in nulls],
        )
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    if "barcodes" in body.model_fields_set:
        changes["barcodes"] = _barcodes_in(body.barcodes)
    app = request.app.state.ledger.app(caller.tenant_id)
    try:
        result = app.change_product(sku, command_meta(request, caller, idempotency_key), **changes)
        product = app.product(sku)
    except UnknownReference as error:
        raise _in_path(error) from None
    mark_replayed(response, result.replayed)
    return Product(
        sku=product.sku,
        name=product.name,
        uom=product.uom,
        decimals=product.decimals,
        lot_tracked=product.lot_tracked,
        expiry_tracked=product.expiry_tracked,
        removal_policy=product.removal_policy,
        shelf_life_days=product.shelf_life_days,
        expiry_alert_days=product.expiry_alert_days,
        reorder_point=_text(product.reorder_point),
        reorder_quantity=_text(product.reorder_quantity),
        barcodes=[_barcode(b) for b in getattr(product, "barcodes", None) or []],
        attributes=product.attributes,
        active=product.active,
        position=result.position,
    )


# -- warehouses and bins ----------------------------------------------------------------------


@router.post(
    "/warehouses",
    status_code=201,
    response_model=WarehouseItem,
    summary="Add a warehouse with its time zone",
    responses=WRITES,
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
    responses=READS,
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
    responses=WRITES | NOT_FOUND,
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
    responses=READS | NOT_FOUND,
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


# -- lookup -----------------------------------------------------------------------------------


def _by_barcode(
    conn: Connection, caller: Principal, code: str
) -> tuple[ProductItem, Barcode] | None:
    """The product with a barcode `code`, and that barcode."""
    quoted = orjson.dumps(code).decode()
    pattern = "%" + quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = select(PRODUCTS.c.sku, PRODUCTS.c.barcodes).where(
        PRODUCTS.c.tenant_id == caller.tenant_id,
        PRODUCTS.c.barcodes.like(pattern, escape="\\"),
    )
    for row in conn.execute(query.order_by(PRODUCTS.c.sku)):
        for entry in orjson.loads(row.barcodes) or []:
            barcode = _barcode(entry)
            if barcode.code == code:
                view = product_rows(conn, caller.tenant_id, sku=row.sku, limit=1)[0]
                return ProductItem(**_fields(view), position=view.position), barcode
    return None


@router.get(
    "/lookup",
    response_model=Lookup,
    summary="What a scanned code names: a product (SKU or barcode), a bin or a lot",
    responses=READS | UNKNOWN_CODE,
)
def lookup(
    request: Request,
    caller: Reader,
    code: Annotated[str, Query(min_length=1, max_length=255, description="The scanned code.")],
    min_position: MinPosition = None,
) -> Lookup:
    with read_model(request, caller.tenant_id, ("catalog", "lots"), min_position) as (conn, at):
        product: ProductItem | None = None
        barcode: Barcode | None = None
        views = product_rows(conn, caller.tenant_id, sku=code, limit=1)
        if views:
            product = ProductItem(**_fields(views[0]), position=views[0].position)
        else:
            found = _by_barcode(conn, caller, code)
            if found is not None:
                product, barcode = found
        query = (
            select(BINS)
            .where(BINS.c.tenant_id == caller.tenant_id, BINS.c.code == code)
            .order_by(BINS.c.warehouse)
        )
        places = [
            BinItem(
                warehouse=r.warehouse,
                code=r.code,
                zone=r.zone,
                pickable=r.pickable,
                position=r.last_position,
            )
            for r in conn.execute(query)
        ]
        lots = [
            LotPlace(
                lot=r.lot,
                sku=r.sku,
                warehouse=r.warehouse,
                bin=r.bin,
                on_hand=_text(r.on_hand) or "0",
                reserved=_text(r.reserved) or "0",
                expires_on=r.expires_on,
                status=r.status,
            )
            for r in lot_rows(conn, caller.tenant_id, lot=code, limit=1000)
        ]
    kinds: list[Literal["product", "bin", "lot"]] = []
    if product is not None:
        kinds.append("product")
    if places:
        kinds.append("bin")
    if lots:
        kinds.append("lot")
    if not kinds:
        raise Problem("not-found", f"{code!r} names no product, bin or lot here")
    return Lookup(
        kind=kinds[0],
        code=code,
        product=product,
        barcode=barcode,
        bins=places,
        lots=lots,
        also=list(kinds[1:]),
        position=at,
    )
