"""The catalog: products per SKU, and warehouses with their zones and bins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.allocation import RemovalPolicy
from domain.errors import AlreadyExists, StockOnHand, ValidationFailed
from domain.ids import stream_id
from domain.quantities import MAX_DECIMALS, counted_quantity, quantity
from domain.tenant_settings import validate_name, validate_timezone
from domain.values import Bin

__all__ = [
    "BarcodeClaim",
    "BarcodeKind",
    "BarcodeTaken",
    "Bin",
    "Product",
    "ProductRules",
    "Warehouse",
]

MAX_CODE_LENGTH = 64


def validate_code(field: str, value: str) -> str:
    """SKUs, lot ids, bin and warehouse codes: 1-64 printable characters, case-sensitive."""
    if not 1 <= len(value) <= MAX_CODE_LENGTH or not value.isprintable():
        raise ValidationFailed(field, f"must be 1-{MAX_CODE_LENGTH} printable characters")
    return value


def product_id(tenant_id: UUID, sku: str) -> UUID:
    return stream_id(tenant_id, "product", sku)


def warehouse_id(tenant_id: UUID, code: str) -> UUID:
    return stream_id(tenant_id, "warehouse", code)


def barcode_id(tenant_id: UUID, code: str) -> UUID:
    return stream_id(tenant_id, "barcode", code)


class BarcodeKind(StrEnum):
    """The symbology of a barcode; GS1 numbers (EAN, UPC, GTIN) carry a check digit."""

    EAN13 = "ean13"
    EAN8 = "ean8"
    UPC_A = "upc_a"
    GTIN14 = "gtin14"
    CODE128 = "code128"
    QR = "qr"
    DATAMATRIX = "datamatrix"
    OTHER = "other"


#: The digits of each GS1 kind, the last of them a check digit.
GS1_LENGTHS = {
    BarcodeKind.EAN13: 13,
    BarcodeKind.EAN8: 8,
    BarcodeKind.UPC_A: 12,
    BarcodeKind.GTIN14: 14,
}


class BarcodeTaken(AlreadyExists):
    """A barcode (or a SKU) already names another product of the tenant."""

    def __init__(self, message: str, code: str, holder: str) -> None:
        super().__init__(message)
        self.code = code
        self.holder = holder


def gs1_check_digit(digits: str) -> int:
    """The GS1 check digit of the digits before it: weights 3, 1, 3, ... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def validated_barcodes(values: Any, decimals: int) -> list[dict[str, Any]]:
    """Barcodes as recorded: `{code, kind, pack_quantity}`, codes distinct, check digits right."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ValidationFailed("barcodes", "must be a list")
    found: list[dict[str, Any]] = []
    for index, value in enumerate(values):
        barcode = _barcode(f"barcodes.{index}", value, decimals)
        if any(b["code"] == barcode["code"] for b in found):
            raise ValidationFailed(f"barcodes.{index}.code", f"{barcode['code']!r} is listed twice")
        found.append(barcode)
    return found


def _barcode(field: str, value: Any, decimals: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(field, "must be an object with a code")
    unknown = sorted(set(value) - {"code", "kind", "pack_quantity"})
    if unknown:
        raise ValidationFailed(f"{field}.{unknown[0]}", "is not a barcode field")
    code = value.get("code")
    if not isinstance(code, str):
        raise ValidationFailed(f"{field}.code", "must be a string")
    validate_code(f"{field}.code", code)
    try:
        kind = BarcodeKind(value.get("kind") or BarcodeKind.OTHER)
    except ValueError:
        known = ", ".join(k.value for k in BarcodeKind)
        raise ValidationFailed(f"{field}.kind", f"must be one of {known}") from None
    _check_symbology(f"{field}.code", code, kind)
    pack = value.get("pack_quantity")
    pack_quantity = (
        Decimal(1) if pack is None else quantity(pack, decimals, f"{field}.pack_quantity")
    )
    return {"code": code, "kind": kind.value, "pack_quantity": pack_quantity}


def _check_symbology(field: str, code: str, kind: BarcodeKind) -> None:
    length = GS1_LENGTHS.get(kind)
    if length is not None:
        if len(code) != length or not (code.isascii() and code.isdigit()):
            raise ValidationFailed(field, f"{kind.value} is {length} digits, not {code!r}")
        expected = gs1_check_digit(code[:-1])
        if int(code[-1]) != expected:
            raise ValidationFailed(field, f"{code!r} has a wrong check digit (expected {expected})")
    elif kind is BarcodeKind.CODE128 and not code.isascii():
        raise ValidationFailed(field, "code128 holds ASCII characters only")


@dataclass(frozen=True)
class ProductRules:
    """What stock commands need to know of a product."""

    sku: str
    decimals: int
    lot_tracked: bool
    expiry_tracked: bool
    policy: RemovalPolicy
    shelf_life_days: int | None


LOCKED_WHILE_STOCKED = ("decimals", "lot_tracked", "expiry_tracked")
CHANGEABLE = (
    "name",
    "removal_policy",
    "shelf_life_days",
    "expiry_alert_days",
    "reorder_point",
    "reorder_quantity",
    "barcodes",
    "attributes",
    "active",
    *LOCKED_WHILE_STOCKED,
)


class Product(Aggregate):
    """A stock-keeping unit of a tenant, with the rules its stock follows."""

    #: What a product recorded before barcodes existed has (its events and snapshots lack them).
    barcodes: Sequence[dict[str, Any]] = ()

    class Registered(Aggregate.Created):
        """A product was added to the catalog."""

        sku: str
        name: str
        uom: str
        decimals: int
        lot_tracked: bool
        expiry_tracked: bool
        removal_policy: str
        shelf_life_days: int | None
        expiry_alert_days: int | None
        reorder_point: Decimal | None
        reorder_quantity: Decimal | None
        barcodes: list[dict[str, Any]]
        attributes: dict[str, Any]

    class Changed(Aggregate.Event):
        """Some of a product's fields were changed."""

        changes: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            for name, value in self.changes.items():
                setattr(aggregate, name, value)

    class StockedIn(Aggregate.Event):
        """A warehouse started keeping this product."""

        warehouse: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Product)
            aggregate.warehouses = [*aggregate.warehouses, self.warehouse]

    def __init__(
        self,
        sku: str,
        name: str,
        uom: str,
        decimals: int,
        lot_tracked: bool,
        expiry_tracked: bool,
        removal_policy: str,
        shelf_life_days: int | None,
        expiry_alert_days: int | None,
        reorder_point: Decimal | None,
        reorder_quantity: Decimal | None,
        attributes: dict[str, Any],
        barcodes: list[dict[str, Any]] | None = None,
    ) -> None:
        self.sku = sku
        self.name = name
        self.uom = uom
        self.decimals = decimals
        self.lot_tracked = lot_tracked
        self.expiry_tracked = expiry_tracked
        self.removal_policy = removal_policy
        self.shelf_life_days = shelf_life_days
        self.expiry_alert_days = expiry_alert_days
        self.reorder_point = reorder_point
        self.reorder_quantity = reorder_quantity
        self.attributes = attributes
        self.barcodes = list(barcodes or [])
        self.active = True
        self.warehouses: list[str] = []  # a list: what a snapshot gives back

    @classmethod
    def register(cls, tenant_id: UUID, sku: str, name: str, **fields: Any) -> Product:
        """Validates and registers a product; the SKU names it in the tenant for good."""
        validate_code("sku", sku)
        values = _validated(
            {
                "name": name,
                "uom": fields.pop("uom", "each"),
                "decimals": fields.pop("decimals", 0),
                "lot_tracked": fields.pop("lot_tracked", False),
                "expiry_tracked": fields.pop("expiry_tracked", False),
                "removal_policy": fields.pop("removal_policy", RemovalPolicy.FIFO.value),
                "shelf_life_days": fields.pop("shelf_life_days", None),
                "expiry_alert_days": fields.pop("expiry_alert_days", None),
                "reorder_point": fields.pop("reorder_point", None),
                "reorder_quantity": fields.pop("reorder_quantity", None),
                "barcodes": fields.pop("barcodes", None) or [],
                "attributes": fields.pop("attributes", {}),
            }
        )
        if fields:
            raise ValidationFailed(next(iter(fields)), "is not a product field")
        product: Product = cls._create(
            cls.Registered, id=product_id(tenant_id, sku), sku=sku, **values
        )
        return product

    @property
    def rules(self) -> ProductRules:
        return ProductRules(
            sku=self.sku,
            decimals=self.decimals,
            lot_tracked=self.lot_tracked,
            expiry_tracked=self.expiry_tracked,
            policy=RemovalPolicy(self.removal_policy),
            shelf_life_days=self.shelf_life_days,
        )

    def change(self, stock_on_hand: bool, **changes: Any) -> None:
        """Changes fields; decimals and tracking flags only while no stock is on hand."""
        unknown = set(changes) - set(CHANGEABLE)
        if unknown:
            raise ValidationFailed(sorted(unknown)[0], "cannot be changed")
        current = {name: getattr(self, name) for name in CHANGEABLE}
        current["barcodes"] = list(self.barcodes)
        merged = _validated({**current, **changes, "uom": self.uom})
        merged.pop("uom")
        diff = {k: v for k, v in merged.items() if v != current[k]}
        locked = sorted(k for k in diff if k in LOCKED_WHILE_STOCKED)
        if locked and stock_on_hand:
            raise StockOnHand(f"{locked[0]} cannot change while {self.sku} has stock on hand")
        if diff:
            self.trigger_event(self.Changed, changes=diff)

    @property
    def barcode_codes(self) -> frozenset[str]:
        return frozenset(b["code"] for b in self.barcodes)

    def stock_in(self, warehouse: str) -> None:
        """Notes that a warehouse keeps this product (so its stock can be found)."""
        if warehouse not in self.warehouses:
            self.trigger_event(self.StockedIn, warehouse=warehouse)


def _validated(values: dict[str, Any]) -> dict[str, Any]:
    values["name"] = validate_name(values["name"])
    validate_code("uom", values["uom"])
    decimals = values["decimals"]
    if not isinstance(decimals, int) or isinstance(decimals, bool):
        raise ValidationFailed("decimals", "must be an integer")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValidationFailed("decimals", f"must be between 0 and {MAX_DECIMALS}")
    try:
        policy = RemovalPolicy(values["removal_policy"])
    except ValueError:
        raise ValidationFailed("removal_policy", "must be fifo or fefo") from None
    values["removal_policy"] = policy.value
    if policy is RemovalPolicy.FEFO and not values["expiry_tracked"]:
        raise ValidationFailed("removal_policy", "fefo needs expiry_tracked")
    for name in ("shelf_life_days", "expiry_alert_days"):
        days = values[name]
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 0):
            raise ValidationFailed(name, "must be a non-negative integer")
    if values["shelf_life_days"] is not None and not values["expiry_tracked"]:
        raise ValidationFailed("shelf_life_days", "needs expiry_tracked")
    for name in ("reorder_point", "reorder_quantity"):
        if values[name] is not None:
            values[name] = counted_quantity(values[name], decimals, name)
    values["barcodes"] = validated_barcodes(values["barcodes"] or [], decimals)
    if not isinstance(values["attributes"], dict):
        raise ValidationFailed("attributes", "must be a JSON object")
    if "active" in values and not isinstance(values["active"], bool):
        raise ValidationFailed("active", "must be true or false")
    return values


class Warehouse(Aggregate):
    """A site with a time zone (its business date), zones and bins."""

    class Registered(Aggregate.Created):
        """A warehouse was added."""

        code: str
        name: str
        timezone: str

    class BinAdded(Aggregate.Event):
        """A bin was added to the warehouse."""

        code: str
        zone: str | None
        pickable: bool

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Warehouse)
            aggregate.bins[self.code] = Bin(self.code, self.zone, self.pickable)

    def __init__(self, code: str, name: str, timezone: str) -> None:
        self.code = code
        self.name = name
        self.timezone = timezone
        self.bins: dict[str, Bin] = {}

    @classmethod
    def register(cls, tenant_id: UUID, code: str, name: str, timezone: str) -> Warehouse:
        """Validates and registers a warehouse."""
        validate_code("code", code)
        warehouse: Warehouse = cls._create(
            cls.Registered,
            id=warehouse_id(tenant_id, code),
            code=code,
            name=validate_name(name),
            timezone=validate_timezone(timezone),
        )
        return warehouse

    def add_bin(self, code: str, zone: str | None = None, pickable: bool = True) -> None:
        """Adds a bin; its code is unique in the warehouse."""
        validate_code("code", code)
        if zone is not None:
            validate_code("zone", zone)
        if code in self.bins:
            raise AlreadyExists(f"bin {code!r} already exists in warehouse {self.code!r}")
        self.trigger_event(self.BinAdded, code=code, zone=zone, pickable=pickable)


class BarcodeClaim(Aggregate):
    """A barcode of the tenant and the product it names: one stream per code, so two products
    claiming one code race on its first version and only one of them wins."""

    class Claimed(Aggregate.Created):
        """A product took a barcode no product had taken before."""

        code: str
        sku: str

    class Released(Aggregate.Event):
        """The product gave the barcode up; another product may take it."""

        sku: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, BarcodeClaim)
            aggregate.sku = None

    class Reclaimed(Aggregate.Event):
        """A product took a barcode that had been released."""

        sku: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, BarcodeClaim)
            aggregate.sku = self.sku

    def __init__(self, code: str, sku: str) -> None:
        self.code = code
        self.sku: str | None = sku

    @classmethod
    def claim(cls, tenant_id: UUID, code: str, sku: str) -> BarcodeClaim:
        """The first claim of a code, by the product `sku`."""
        claim: BarcodeClaim = cls._create(
            cls.Claimed, id=barcode_id(tenant_id, code), code=code, sku=sku
        )
        return claim

    def take(self, sku: str) -> None:
        """Gives a released code to `sku`; a code held by another product is refused."""
        if self.sku == sku:
            return
        if self.sku is not None:
            raise BarcodeTaken(
                f"barcode {self.code!r} already belongs to product {self.sku!r}",
                code=self.code,
                holder=self.sku,
            )
        self.trigger_event(self.Reclaimed, sku=sku)

    def release(self, sku: str) -> None:
        """`sku` gives the code up (nothing happens unless it holds it)."""
        if self.sku == sku:
            self.trigger_event(self.Released, sku=sku)
