"""What the catalog routes take and give: request and response schemas, the permissions and
documented errors they share, and how products are turned into responses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictBool, StrictInt

from api.auth import Principal, permitted
from api.commands import MAX_DIGITS, exact
from api.pages import Page, decimal_text
from api.problems import Problem, problem_responses
from api.routes.inputs import MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTES, Body, attributes_in
from domain.catalog import MAX_CODE_LENGTH, BarcodeKind, BarcodeTaken
from domain.catalog import Product as ProductAggregate
from domain.quantities import MAX_DECIMALS
from projections.catalog import BarcodeView, ProductView

Reader = Annotated[Principal, Depends(permitted("catalog:read"))]
Writer = Annotated[Principal, Depends(permitted("catalog:write"))]

#: The error cases of the catalog routes (each route adds `COMMON`'s through `documented`).
WRITES: dict[int, str] = {
    403: "`forbidden`: needs `catalog:write`",
    409: "`already-exists`, `idempotency-key-in-progress`",
    422: "`validation-error`, `idempotency-key-reused`",
}
READS: dict[int, str] = {
    403: "`forbidden`: needs `catalog:read`",
    503: "`projection-lagging`: `min_position` not reached in time;"
    " `service-unavailable`: the database is unreachable",
}
NOT_FOUND: dict[int, str] = {404: "`not-found`: no such resource in this tenant"}
STOCKED: dict[int, str] = {
    409: "`already-exists`: a barcode belongs to another product (`barcode`, `sku` name it);"
    " `invalid-state`: decimals or tracking flags while stock is on hand"
}
TAKEN: dict[int, str] = {
    409: "`already-exists`: the SKU, or a barcode, already names a product here"
    " (for a barcode, `barcode` and `sku` name it and its product)"
}
UNKNOWN_CODE: dict[int, str] = {404: "`not-found`: the code names no product, bin or lot here"}


def documented(*cases: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route with these error cases (a later case map wins)."""
    merged: dict[int, str] = {}
    for found in cases:
        merged |= found
    return problem_responses(merged)


# -- request values ---------------------------------------------------------------------------


def _canonical(value: Decimal) -> Decimal:
    """A decimal by its value: 12.5, "12.50" and "1.25E1" are the same request."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


Quantity = Annotated[
    Decimal,
    BeforeValidator(exact),
    Field(allow_inf_nan=False, ge=0, max_digits=MAX_DIGITS),
    AfterValidator(_canonical),
]
Code = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
#: A day count (shelf life, expiry alert): at most a hundred years.
MAX_DAYS = 36500
Days = Annotated[StrictInt, Field(ge=0, le=MAX_DAYS)]
Attributes = Annotated[
    dict[str, Any],
    AfterValidator(attributes_in),
    Field(
        description=f"Free-form JSON: at most {MAX_ATTRIBUTES} keys and"
        f" {MAX_ATTRIBUTE_BYTES // 1024} KiB encoded; integers within 64 bits."
    ),
]
Policy = Literal["fifo", "fefo"]


class BarcodeIn(BaseModel):
    code: Code = Field(description="1-64 printable characters, case-sensitive.")
    kind: BarcodeKind | None = Field(
        None,
        description="Default `other`. `ean13`, `ean8`, `upc_a` and `gtin14` are digits only"
        " with a valid GS1 check digit; `code128` is ASCII.",
    )
    pack_quantity: Quantity | None = Field(
        None,
        description="Units of the product one scan stands for (a case of 12: 12); above 0,"
        " within the product's decimals. Default 1.",
    )


class NewProduct(Body):
    sku: Code
    name: Name
    uom: Code = "each"
    decimals: Annotated[StrictInt, Field(ge=0, le=MAX_DECIMALS)] = 0
    lot_tracked: StrictBool = False
    expiry_tracked: StrictBool = False
    removal_policy: Policy | None = Field(
        None,
        description="`fefo` needs `expiry_tracked`. Default: the tenant's"
        " `default_removal_policy` (`fifo` for a product that does not track expiry).",
    )
    shelf_life_days: Days | None = None
    expiry_alert_days: Days | None = None
    reorder_point: Quantity | None = None
    reorder_quantity: Quantity | None = None
    barcodes: list[BarcodeIn] | None = Field(
        None,
        description="Unique per tenant: a code of another product (barcode or SKU) is 409.",
    )
    attributes: Attributes = Field(default_factory=dict)


class ProductChanges(Body):
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
    barcodes: list[BarcodeIn] | None = Field(
        None,
        description="Replaces every barcode; a code left out is released for other products.",
    )
    attributes: Attributes | None = None
    active: StrictBool | None = None


#: PATCH fields that may be set to null (the others need a value when given).
CLEARABLE = frozenset(
    {"shelf_life_days", "expiry_alert_days", "reorder_point", "reorder_quantity", "barcodes"}
)


class NewWarehouse(Body):
    code: Code
    name: Name
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone")


class NewBin(Body):
    code: Code
    zone: Code | None = None
    pickable: StrictBool = Field(
        True, description="Stock in a non-pickable bin is on hand but never picked or available."
    )


# -- responses --------------------------------------------------------------------------------


class Barcode(BaseModel):
    code: str
    kind: str = Field(
        description="One of the request's kinds; clients ignore kinds they do not know."
    )
    pack_quantity: str = Field(description="Units of the product one scan stands for.")


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


# -- mapping ----------------------------------------------------------------------------------


def storable(code: str) -> bool:
    """Whether a code from a path or query could name anything (a NUL byte never could, and
    PostgreSQL refuses to compare with one)."""
    return len(code) <= MAX_CODE_LENGTH and code.isprintable()


def text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def barcode_out(view: BarcodeView) -> Barcode:
    return Barcode(code=view.code, kind=view.kind, pack_quantity=decimal_text(view.pack_quantity))


def barcodes_in(barcodes: list[BarcodeIn] | None) -> list[dict[str, Any]] | None:
    if barcodes is None:
        return None
    return [b.model_dump(exclude_none=True, mode="json") for b in barcodes]


def view_fields(view: ProductView) -> dict[str, Any]:
    """A product of the read model as the response fields."""
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
        "reorder_point": text(view.reorder_point),
        "reorder_quantity": text(view.reorder_quantity),
        "barcodes": [barcode_out(b) for b in view.barcodes],
        "attributes": view.attributes,
        "active": view.active,
    }


def product_out(product: ProductAggregate, position: int) -> Product:
    """A product aggregate as a command's response."""
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
        reorder_point=text(product.reorder_point),
        reorder_quantity=text(product.reorder_quantity),
        barcodes=[
            Barcode(code=b["code"], kind=b["kind"], pack_quantity=decimal_text(b["pack_quantity"]))
            for b in product.barcodes
        ],
        attributes=product.attributes,
        active=product.active,
        position=position,
    )


def taken(error: BarcodeTaken) -> Problem:
    """A code of another product: `already-exists`, naming the code and the product."""
    return Problem("already-exists", str(error), barcode=error.code, sku=error.holder)
