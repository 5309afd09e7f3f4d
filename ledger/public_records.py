"""The public data of catalog, lot and order events: decimals as text, dates in ISO form, and
the names a stream's creation gives (a product's SKU, a warehouse's code, a lot's id)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from domain.purchasing import DRAFT
from domain.sales import OPEN
from ledger.public_stock import STOCK_CONVERTERS, Data, Public, day, text
from projections.events import LedgerEvent


def _lines(items: list[Data], *fields: str) -> list[Data]:
    """Order line values with their decimals as text and dates in ISO form."""
    out = []
    for item in items:
        row: Data = {}
        for field in fields:
            value = item.get(field)
            row[field] = value if isinstance(value, int | str | None) else _value(value)
        out.append(row)
    return out


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item) for item in value]
    if hasattr(value, "as_tuple"):  # a Decimal
        return text(value)
    if hasattr(value, "isoformat"):  # a date (datetimes are not in order or catalog data)
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


Converter = Callable[[LedgerEvent, Data], Public]
PRODUCT_FIELDS = (
    "sku",
    "name",
    "uom",
    "decimals",
    "lot_tracked",
    "expiry_tracked",
    "removal_policy",
    "shelf_life_days",
    "expiry_alert_days",
    "reorder_point",
    "reorder_quantity",
    "attributes",
)


def _product_registered(event: LedgerEvent, _: Data) -> Public:
    data = event.data
    found = {f: _value(data[f]) for f in PRODUCT_FIELDS}
    return "product.registered", found | {"barcodes": _value(data.get("barcodes") or [])}


def _order_created(kind: str, status: str, partner: str, line_fields: tuple[str, ...]) -> Converter:
    def convert(event: LedgerEvent, _: Data) -> Public:
        data = event.data
        extra = {"expected_on": day(data["expected_on"])} if "expected_on" in data else {}
        return f"{kind}.created", {
            "order_id": str(event.stream_id),
            "status": status,
            partner: data[partner],
            "warehouse": data["warehouse"],
            "external_id": data["external_id"],
            "reference": data["reference"],
            "lines": _lines(data["lines"], *line_fields),
            **extra,
        }

    return convert


def _order_event(name: str, **lists: tuple[str, ...]) -> Converter:
    """An order event: its id, its status if it has one, and these other fields."""

    def convert(event: LedgerEvent, _: Data) -> Public:
        data = event.data
        found: Data = {"order_id": str(event.stream_id)}
        if "status" in data:
            found["status"] = data["status"]
        for field, line_fields in lists.items():
            value = data[field]
            found[field] = _lines(value, *line_fields) if line_fields else _value(value)
        return name, found

    return convert


def _named(public_type: str, **fields: str) -> Converter:
    """An event whose data is some of its own fields and some of its stream's creation."""

    def convert(event: LedgerEvent, origin: Data) -> Public:
        return public_type, {
            public: _value(origin[stored[1:]] if stored.startswith("^") else event.data[stored])
            for public, stored in fields.items()
        }

    return convert


QUANTITY = ("line", "quantity")
CONVERTERS: dict[str, Converter] = {
    **STOCK_CONVERTERS,
    "Product.Registered": _product_registered,
    "Product.Changed": _named("product.changed", sku="^sku", changes="changes"),
    "Warehouse.Registered": _named(
        "warehouse.registered", code="code", name="name", timezone="timezone"
    ),
    "Warehouse.BinAdded": _named(
        "bin.added", warehouse="^code", code="code", zone="zone", pickable="pickable"
    ),
    "Lot.Registered": _named(
        "lot.registered", sku="sku", lot="lot", expires_on="expires_on", warehouse="warehouse"
    ),
    "Lot.StatusChanged": _named("lot.status_changed", sku="^sku", lot="^lot", status="status"),
    "PurchaseOrder.Created": _order_created(
        "purchase_order", DRAFT, "supplier", ("line", "sku", "quantity", "unit_cost")
    ),
    "PurchaseOrder.Submitted": _order_event("purchase_order.submitted"),
    "PurchaseOrder.Received": _order_event(
        "purchase_order.received",
        expected_on=(),
        receipts=("line", "sku", "quantity", "unit_cost", "bin", "lot", "expires_on"),
    ),
    "PurchaseOrder.Closed": _order_event("purchase_order.closed", short=QUANTITY),
    "PurchaseOrder.Cancelled": _order_event("purchase_order.cancelled"),
    "SalesOrder.Created": _order_created(
        "sales_order", OPEN, "customer", ("line", "sku", "quantity")
    ),
    "SalesOrder.Allocated": _order_event(
        "sales_order.allocated", reserved=QUANTITY, released=QUANTITY, backordered=QUANTITY
    ),
    "SalesOrder.ReservationLost": _order_event(
        "sales_order.reservation_lost", reason=(), released=QUANTITY
    ),
    "SalesOrder.Shipped": _order_event(
        "sales_order.shipped",
        shipments=("line", "sku", "lot", "bin", "quantity", "unit_cost", "expires_on"),
    ),
    "SalesOrder.Cancelled": _order_event(
        "sales_order.cancelled", released=QUANTITY, cancelled=QUANTITY
    ),
    "SalesOrder.Returned": _order_event(
        "sales_order.returned",
        returns=("line", "sku", "quantity", "lot", "unit_cost", "expires_on", "bin", "disposition"),
    ),
}
