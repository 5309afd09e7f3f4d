"""The JSON Schemas (draft 2020-12) of the public events' `data`, one per public type."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TEXT: Schema = {"type": "string"}
CODE: Schema = {"type": "string", "minLength": 1, "maxLength": 64}
DECIMAL: Schema = {"type": "string", "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
DATE: Schema = {"type": "string", "format": "date"}
TIME: Schema = {"type": "string", "format": "date-time"}
UUID_TEXT: Schema = {"type": "string", "format": "uuid"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(**properties: Schema) -> Schema:
    """An object with every one of these properties (a null value is still present)."""
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


ORDER_LINE = obj(order_id=UUID_TEXT, line=INTEGER)
PICK = obj(lot=CODE, bin=CODE, quantity=DECIMAL, unit_cost=DECIMAL, expires_on=nullable(DATE))
HOLD = obj(lot=CODE, bin=CODE, quantity=DECIMAL)
RELEASE = obj(
    reference=TEXT, sales_order=nullable(ORDER_LINE), lot=CODE, bin=CODE, quantity=DECIMAL
)
LINE_QUANTITY = obj(line=INTEGER, quantity=DECIMAL)
STOCK = {"sku": CODE, "warehouse": CODE}
ARRIVAL = STOCK | {
    "lot": CODE,
    "bin": CODE,
    "quantity": DECIMAL,
    "unit_cost": DECIMAL,
    "expires_on": nullable(DATE),
    "received_at": TIME,
}
REMOVAL = STOCK | {
    "reference": nullable(TEXT),
    "quantity": DECIMAL,
    "cost": DECIMAL,
    "picks": array(PICK),
    "released": array(RELEASE),
}
ORDER = {"order_id": UUID_TEXT}
STATUS = {"order_id": UUID_TEXT, "status": TEXT}
FREE_OBJECT: Schema = {"type": "object"}
BARCODES = array(obj(code=CODE, kind=TEXT, pack_quantity=DECIMAL))

STOCK_SCHEMAS: dict[str, Schema] = {
    "stock.received": obj(**ARRIVAL, reference=nullable(TEXT), purchase_order=nullable(ORDER_LINE)),
    "stock.transferred_in": obj(**ARRIVAL, from_warehouse=CODE),
    "stock.returned": obj(**ARRIVAL, reference=nullable(TEXT), sales_order=nullable(ORDER_LINE)),
    "stock.adjusted": obj(
        **STOCK,
        reason=TEXT,
        quantity=DECIMAL,
        changes=array(obj(lot=CODE, bin=CODE, quantity=DECIMAL, unit_cost=DECIMAL)),
        released=array(RELEASE),
    ),
    "stock.issued": obj(**REMOVAL, reason=TEXT),
    "stock.shipped": obj(**REMOVAL, sales_order=nullable(ORDER_LINE)),
    "stock.transferred_out": obj(**REMOVAL, to_warehouse=nullable(CODE)),
    "stock.moved": obj(
        **STOCK,
        quantity=DECIMAL,
        moves=array(obj(lot=CODE, from_bin=CODE, to_bin=CODE, quantity=DECIMAL, unit_cost=DECIMAL)),
        reservations=array(TEXT),
    ),
    "stock.reserved": obj(
        **STOCK,
        reference=TEXT,
        sales_order=nullable(ORDER_LINE),
        quantity=DECIMAL,
        shortage=DECIMAL,
        holds=array(HOLD),
    ),
    "stock.reservation_released": obj(
        **STOCK, reason=TEXT, quantity=DECIMAL, releases=array(RELEASE)
    ),
    "stock.counted": obj(
        **STOCK,
        lot=CODE,
        bin=CODE,
        counted_quantity=DECIMAL,
        ledger_quantity=DECIMAL,
        difference=DECIMAL,
    ),
}

CATALOG_SCHEMAS: dict[str, Schema] = {
    "product.registered": obj(
        sku=CODE,
        name=TEXT,
        uom=TEXT,
        decimals=INTEGER,
        lot_tracked=BOOLEAN,
        expiry_tracked=BOOLEAN,
        removal_policy=TEXT,
        shelf_life_days=nullable(INTEGER),
        expiry_alert_days=nullable(INTEGER),
        reorder_point=nullable(DECIMAL),
        reorder_quantity=nullable(DECIMAL),
        attributes=FREE_OBJECT,
        barcodes=BARCODES,
    ),
    # `changes` holds only the fields that changed, each with its new value.
    "product.changed": obj(
        sku=CODE,
        changes={
            "type": "object",
            "properties": {
                "name": TEXT,
                "decimals": INTEGER,
                "lot_tracked": BOOLEAN,
                "expiry_tracked": BOOLEAN,
                "removal_policy": TEXT,
                "shelf_life_days": nullable(INTEGER),
                "expiry_alert_days": nullable(INTEGER),
                "reorder_point": nullable(DECIMAL),
                "reorder_quantity": nullable(DECIMAL),
                "attributes": FREE_OBJECT,
                "active": BOOLEAN,
                "barcodes": BARCODES,
            },
            "additionalProperties": True,
        },
    ),
    "warehouse.registered": obj(code=CODE, name=TEXT, timezone=TEXT),
    "bin.added": obj(warehouse=CODE, code=CODE, zone=nullable(CODE), pickable=BOOLEAN),
    "lot.registered": obj(sku=CODE, lot=CODE, expires_on=nullable(DATE), warehouse=CODE),
    "lot.status_changed": obj(sku=CODE, lot=CODE, status=TEXT),
}

ORDER_SCHEMAS: dict[str, Schema] = {
    "purchase_order.created": obj(
        **ORDER,
        status=TEXT,
        supplier=TEXT,
        warehouse=CODE,
        expected_on=nullable(DATE),
        external_id=nullable(TEXT),
        reference=nullable(TEXT),
        lines=array(obj(line=INTEGER, sku=CODE, quantity=DECIMAL, unit_cost=DECIMAL)),
    ),
    "purchase_order.submitted": obj(**STATUS),
    "purchase_order.received": obj(
        **STATUS,
        expected_on=nullable(DATE),
        receipts=array(
            obj(
                line=INTEGER,
                sku=CODE,
                quantity=DECIMAL,
                unit_cost=DECIMAL,
                bin=CODE,
                lot=CODE,
                expires_on=nullable(DATE),
            )
        ),
    ),
    "purchase_order.closed": obj(**STATUS, short=array(LINE_QUANTITY)),
    "purchase_order.cancelled": obj(**STATUS),
    "sales_order.created": obj(
        **ORDER,
        status=TEXT,
        customer=TEXT,
        warehouse=CODE,
        external_id=nullable(TEXT),
        reference=nullable(TEXT),
        lines=array(obj(line=INTEGER, sku=CODE, quantity=DECIMAL)),
    ),
    "sales_order.allocated": obj(
        **STATUS,
        reserved=array(LINE_QUANTITY),
        released=array(LINE_QUANTITY),
        backordered=array(LINE_QUANTITY),
    ),
    "sales_order.reservation_lost": obj(**STATUS, reason=TEXT, released=array(LINE_QUANTITY)),
    "sales_order.shipped": obj(
        **STATUS,
        shipments=array(
            obj(
                line=INTEGER,
                sku=CODE,
                lot=CODE,
                bin=CODE,
                quantity=DECIMAL,
                unit_cost=DECIMAL,
                expires_on=nullable(DATE),
            )
        ),
    ),
    "sales_order.cancelled": obj(
        **STATUS, released=array(LINE_QUANTITY), cancelled=array(LINE_QUANTITY)
    ),
    "sales_order.returned": obj(
        **ORDER,
        returns=array(
            obj(
                line=INTEGER,
                sku=CODE,
                quantity=DECIMAL,
                lot=CODE,
                unit_cost=DECIMAL,
                expires_on=nullable(DATE),
                bin=nullable(CODE),
                disposition=TEXT,
            )
        ),
    ),
}

SCHEMAS: dict[str, Schema] = STOCK_SCHEMAS | CATALOG_SCHEMAS | ORDER_SCHEMAS


def published(name: str, version: int, description: str) -> Schema:
    """The schema of a public type's `data` as `GET /v1/event-types` lists it.

    Objects accept properties beyond those listed: a later version of a type may add fields,
    and a consumer validating with the schema it fetched earlier must keep accepting them.
    """
    return {
        "$schema": DRAFT,
        "$id": f"urn:inventory-ledger:event-type:{name}:{version}",
        "title": name,
        "description": description,
        **SCHEMAS[name],
    }
