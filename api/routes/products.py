"""The catalog's products: added, listed, read and changed (`/v1/products`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.commands import IdempotencyKey, command_meta, mark_replayed
from api.pages import Cursor, Limit, MinPosition, decode_cursor, encode_cursor, read_model
from api.problems import Problem
from api.routes.catalog_models import (
    CLEARABLE,
    NOT_FOUND,
    READS,
    STOCKED,
    TAKEN,
    WRITES,
    NewProduct,
    Product,
    ProductChanges,
    ProductItem,
    ProductPage,
    Reader,
    Writer,
    barcodes_in,
    documented,
    product_out,
    storable,
    taken,
    view_fields,
)
from domain.catalog import BarcodeTaken
from domain.errors import UnknownReference
from projections.catalog import products as product_rows

router = APIRouter()


@router.post(
    "/products",
    status_code=201,
    response_model=Product,
    summary="Add a product to the catalog",
    responses=documented(WRITES, TAKEN),
)
def create_product(
    request: Request,
    response: Response,
    caller: Writer,
    body: NewProduct,
    idempotency_key: IdempotencyKey = None,
) -> Product:
    """Add a product to the catalog."""
    fields = body.model_dump(exclude={"sku", "name", "barcodes"})
    barcodes = barcodes_in(body.barcodes)
    if barcodes is not None:
        fields["barcodes"] = barcodes
    app = request.app.state.ledger.app(caller.tenant_id)
    meta = command_meta(request, caller, idempotency_key)
    try:
        result = app.register_product(body.sku, body.name, meta, **fields)
    except BarcodeTaken as error:
        raise taken(error) from None
    mark_replayed(response, result.replayed)
    # As registered, not as it may have changed since: a replay answers what the first did.
    return product_out(app.product_as_registered(body.sku), result.position)


@router.get(
    "/products",
    response_model=ProductPage,
    summary="The catalog's products by SKU",
    responses=documented(READS),
)
def list_products(
    request: Request,
    caller: Reader,
    active: Annotated[bool | None, Query(description="Only active (or inactive) ones.")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> ProductPage:
    """The catalog's products by SKU."""
    after = None if cursor is None else str(decode_cursor(cursor, 1)[0])
    with read_model(request, caller.tenant_id, "catalog", min_position) as (conn, at):
        rows = product_rows(conn, caller.tenant_id, active=active, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return ProductPage(
        items=[ProductItem(**view_fields(r), position=r.position) for r in rows],
        next_cursor=encode_cursor((rows[-1].sku,)) if more else None,
        position=at,
    )


@router.get(
    "/products/{sku:path}",
    response_model=Product,
    summary="One product",
    responses=documented(READS, NOT_FOUND),
)
def get_product(
    request: Request, caller: Reader, sku: str, min_position: MinPosition = None
) -> Product:
    """One product."""
    if not storable(sku):
        raise Problem("not-found", f"product {sku!r} does not exist")
    with read_model(request, caller.tenant_id, "catalog", min_position) as (conn, at):
        rows = product_rows(conn, caller.tenant_id, sku=sku, limit=1)
    if not rows:
        raise Problem("not-found", f"product {sku!r} does not exist")
    return Product(**view_fields(rows[0]), position=at)


@router.patch(
    "/products/{sku:path}",
    response_model=Product,
    summary="Change a product (name, reorder, alerts, policy, barcodes, attributes, active, ...)",
    responses=documented(WRITES, NOT_FOUND, STOCKED),
)
def change_product(
    request: Request,
    response: Response,
    caller: Writer,
    sku: str,
    body: ProductChanges,
    idempotency_key: IdempotencyKey = None,
) -> Product:
    """Change a product; a `barcodes` list replaces the product's barcodes."""
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
        changes["barcodes"] = barcodes_in(body.barcodes)
    app = request.app.state.ledger.app(caller.tenant_id)
    try:
        result = app.change_product(sku, command_meta(request, caller, idempotency_key), **changes)
        product = app.product(sku)
    except UnknownReference as error:
        raise Problem("not-found", str(error)) from None
    except BarcodeTaken as error:
        raise taken(error) from None
    mark_replayed(response, result.replayed)
    return product_out(product, result.position)
