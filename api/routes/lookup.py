"""What a scanned code names in the tenant: a product (by SKU or barcode), bins, lots
(`/v1/lookup`)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from api.pages import MinPosition, read_model
from api.problems import Problem
from api.routes.catalog_models import (
    READS,
    UNKNOWN_CODE,
    Barcode,
    BinItem,
    LotPlace,
    ProductItem,
    Reader,
    barcode_out,
    documented,
    storable,
    text,
    view_fields,
)
from projections.catalog import BINS, ProductView, product_by_barcode
from projections.catalog import products as product_rows
from projections.lots import lots as lot_rows

router = APIRouter()

Kind = Literal["product", "bin", "lot"]


class ProductMatch(BaseModel):
    matched_by: Literal["sku", "barcode"]
    product: ProductItem
    barcode: Barcode | None = Field(
        None, description="When the code is one of the product's barcodes: that barcode."
    )


class Lookup(BaseModel):
    """What a code names, in this order of precedence: a product by its SKU, a product by one
    of its barcodes, bins, lots. `kind` and the product fields follow the first match; every
    match is listed, and `ambiguous` says whether there is more than one thing to choose from."""

    kind: Kind = Field(description="The kind of the first match.")
    code: str
    sku: str | None = Field(None, description="With `kind` product: the product's SKU.")
    product: ProductItem | None = Field(None, description="With `kind` product: the product.")
    barcode: Barcode | None = Field(
        None,
        description="When the code is one of the product's barcodes: that barcode, with the"
        " units one scan stands for (`pack_quantity`).",
    )
    products: list[ProductMatch] = Field(
        default_factory=list,
        description="Every product the code names: by SKU first, then by barcode. Barcodes"
        " are refused when they are another product's SKU, so two only after a race.",
    )
    bins: list[BinItem] = Field(
        default_factory=list, description="Every bin with this code (one per warehouse)."
    )
    lots: list[LotPlace] = Field(
        default_factory=list, description="Every place a lot with this id is kept."
    )
    also: list[Kind] = Field(default_factory=list, description="Other kinds this code names too.")
    ambiguous: bool = Field(
        False, description="The code names more than one product, or things of several kinds."
    )
    position: int


def _products(conn: Connection, tenant_id: UUID, code: str) -> list[ProductMatch]:
    """The products a code names: by SKU, then by barcode (one match when both name one)."""
    found = [
        ProductMatch(matched_by="sku", product=_item(v), barcode=None)
        for v in product_rows(conn, tenant_id, sku=code, limit=1)
    ]
    scanned = product_by_barcode(conn, tenant_id, code)
    if scanned is None:
        return found
    sku, barcode = scanned
    if found and found[0].product.sku == sku:
        found[0].barcode = barcode_out(barcode)
        return found
    for view in product_rows(conn, tenant_id, sku=sku, limit=1):
        found.append(
            ProductMatch(matched_by="barcode", product=_item(view), barcode=barcode_out(barcode))
        )
    return found


def _item(view: ProductView) -> ProductItem:
    return ProductItem(**view_fields(view), position=view.position)


def _bins(conn: Connection, tenant_id: UUID, code: str) -> list[BinItem]:
    query = (
        select(BINS)
        .where(BINS.c.tenant_id == tenant_id, BINS.c.code == code)
        .order_by(BINS.c.warehouse)
    )
    return [
        BinItem(
            warehouse=r.warehouse,
            code=r.code,
            zone=r.zone,
            pickable=r.pickable,
            position=r.last_position,
        )
        for r in conn.execute(query)
    ]


def _lots(conn: Connection, tenant_id: UUID, code: str) -> list[LotPlace]:
    return [
        LotPlace(
            lot=r.lot,
            sku=r.sku,
            warehouse=r.warehouse,
            bin=r.bin,
            on_hand=text(r.on_hand) or "0",
            reserved=text(r.reserved) or "0",
            expires_on=r.expires_on,
            status=r.status,
        )
        for r in lot_rows(conn, tenant_id, lot=code, limit=1000)
    ]


@router.get(
    "/lookup",
    response_model=Lookup,
    summary="What a scanned code names: a product (SKU or barcode), a bin or a lot",
    responses=documented(READS, UNKNOWN_CODE),
)
def lookup(
    request: Request,
    caller: Reader,
    code: Annotated[str, Query(min_length=1, max_length=255, description="The scanned code.")],
    min_position: MinPosition = None,
) -> Lookup:
    """What a scanned code names: a product by SKU, a product by barcode, bins, then lots."""
    tenant = caller.tenant_id
    if not storable(code):
        raise Problem("not-found", f"{code!r} names no product, bin or lot here")
    with read_model(request, tenant, ("catalog", "lots"), min_position) as (conn, at):
        products = _products(conn, tenant, code)
        bins, lots = _bins(conn, tenant, code), _lots(conn, tenant, code)
    kinds: list[Kind] = []
    if products:
        kinds.append("product")
    if bins:
        kinds.append("bin")
    if lots:
        kinds.append("lot")
    if not kinds:
        raise Problem("not-found", f"{code!r} names no product, bin or lot here")
    first = products[0] if products else None
    return Lookup(
        kind=kinds[0],
        code=code,
        sku=None if first is None else first.product.sku,
        product=None if first is None else first.product,
        barcode=None if first is None else first.barcode,
        products=products,
        bins=bins,
        lots=lots,
        also=kinds[1:],
        ambiguous=len(kinds) > 1 or len(products) > 1,
        position=at,
    )
