"""The catalog: products with their stock rules and barcodes, warehouses with their time zones,
and bins."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import (
    Connection,
    Index,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from projections.events import LedgerEvent
from projections.schema import (
    Base,
    BinRow,
    Code,
    Position,
    ProductRow,
    Quantity,
    TenantId,
    WarehouseRow,
)


class BarcodeRow(Base):
    """A barcode of a product: what a scanned code names, and how many units it stands for."""

    __tablename__ = "rm_product_barcodes"
    __table_args__ = (Index("rm_product_barcodes_sku", "tenant_id", "sku"),)

    tenant_id: Mapped[TenantId]
    code: Mapped[Code]
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    pack_quantity: Mapped[Quantity]
    last_position: Mapped[Position]


PRODUCTS = cast("Table", ProductRow.__table__)
WAREHOUSES = cast("Table", WarehouseRow.__table__)
BINS = cast("Table", BinRow.__table__)
BARCODES = cast("Table", BarcodeRow.__table__)
PRODUCT_FIELDS = (
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
    "active",
)
JSON_FIELDS = ("barcodes", "attributes")


@dataclass(frozen=True)
class BarcodeView:
    """A barcode of a product: its code, its kind and the units one scan stands for."""

    code: str
    kind: str
    pack_quantity: Decimal


@dataclass(frozen=True)
class ProductView:
    """A product as the query functions return it."""

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
    active: bool
    barcodes: tuple[BarcodeView, ...]
    attributes: dict[str, Any]
    position: int


@dataclass(frozen=True)
class WarehouseView:
    """A warehouse as the query functions return it."""

    code: str
    name: str
    timezone: str
    position: int


@dataclass(frozen=True)
class BinView:
    """A bin as the query functions return it."""

    warehouse: str
    code: str
    zone: str | None
    pickable: bool
    position: int


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


@dataclass
class _Row:
    values: dict[str, Any]
    stored: bool
    changed: bool = False


@dataclass
class _Batch:
    products: dict[UUID, _Row] = field(default_factory=dict)
    warehouses: dict[UUID, _Row] = field(default_factory=dict)
    bins: list[dict[str, Any]] = field(default_factory=list)
    #: SKU -> its barcodes after the batch, the position that set them, and whether the table
    #: may hold earlier ones (a product registered in this batch has none there yet).
    barcodes: dict[str, tuple[list[dict[str, Any]], int, bool]] = field(default_factory=dict)


class Catalog:
    """Folds product and warehouse events into product, barcode, warehouse and bin rows."""

    name = "catalog"
    tables = ("rm_products", "rm_warehouses", "rm_bins", "rm_product_barcodes")
    kinds = frozenset(
        {
            "Product.Registered",
            "Product.Changed",
            "Warehouse.Registered",
            "Warehouse.BinAdded",
        }
    )

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """A batch in memory, then written; an event at or below its stream's row is skipped."""
        wanted = [e for e in events if e.kind in self.kinds]
        batch = _Batch(
            _load(conn, PRODUCTS, tenant_id, {e.stream_id for e in wanted if _product(e)}),
            _load(conn, WAREHOUSES, tenant_id, {e.stream_id for e in wanted if not _product(e)}),
        )
        for event in wanted:
            rows = batch.products if _product(event) else batch.warehouses
            row = rows.get(event.stream_id)
            if row is not None and event.position <= row.values["last_position"]:
                continue
            if event.kind.endswith(".Registered"):
                rows[event.stream_id] = _Row(_registered(event), stored=False)
                if _product(event):
                    _barcodes_set(batch, event, event.data.get("barcodes"), stored=False)
                continue
            assert row is not None, f"{event.kind} on {event.stream_id}, never registered"
            _change(batch, row, event)
            row.values["last_position"], row.changed = event.position, True
            if event.kind == "Product.Changed" and "barcodes" in event.data["changes"]:
                barcodes = event.data["changes"]["barcodes"]
                _barcodes_set(batch, event, barcodes, stored=row.stored)
        _write(conn, PRODUCTS, tenant_id, batch.products)
        _write(conn, WAREHOUSES, tenant_id, batch.warehouses)
        if batch.bins:
            conn.execute(insert(BINS), [{"tenant_id": tenant_id, **b} for b in batch.bins])
        _write_barcodes(conn, tenant_id, batch.barcodes)


def _barcodes_set(batch: _Batch, event: LedgerEvent, barcodes: Any, *, stored: bool) -> None:
    sku = batch.products[event.stream_id].values["sku"]
    earlier = batch.barcodes.get(sku)
    stored = stored or (earlier is not None and earlier[2])
    if barcodes or earlier is not None or stored:
        batch.barcodes[sku] = (list(barcodes or []), event.position, stored)


def _write_barcodes(
    conn: Connection, tenant_id: UUID, barcodes: dict[str, tuple[list[dict[str, Any]], int, bool]]
) -> None:
    """Replaces the barcodes of the products changed; codes stay unique after the whole batch,
    as they were after every event of it."""
    replaced = [{"t": tenant_id, "s": sku} for sku, (_, _, stored) in barcodes.items() if stored]
    if replaced:
        conn.execute(
            delete(BARCODES).where(
                BARCODES.c.tenant_id == bindparam("t"), BARCODES.c.sku == bindparam("s")
            ),
            replaced,
        )
    rows = [
        {
            "tenant_id": tenant_id,
            "code": b["code"],
            "sku": sku,
            "kind": b.get("kind") or "other",
            "pack_quantity": Decimal(str(b.get("pack_quantity") or 1)),
            "last_position": position,
        }
        for sku, (found, position, _) in barcodes.items()
        for b in found
    ]
    if rows:
        conn.execute(insert(BARCODES), rows)


def _product(event: LedgerEvent) -> bool:
    return event.kind.startswith("Product.")


def _registered(event: LedgerEvent) -> dict[str, Any]:
    data = event.data
    if _product(event):
        values = {name: data.get(name) for name in PRODUCT_FIELDS}
        values["active"] = data.get("active", True)
        values["barcodes"] = _json(data.get("barcodes"))
        values["attributes"] = _json(data.get("attributes") or {})
        values["sku"] = data["sku"]
    else:
        values = {"code": data["code"], "name": data["name"], "timezone": data["timezone"]}
    return {**values, "stream_id": event.stream_id, "last_position": event.position}


def _change(batch: _Batch, row: _Row, event: LedgerEvent) -> None:
    data = event.data
    if event.kind == "Warehouse.BinAdded":
        batch.bins.append(
            {
                "warehouse": row.values["code"],
                "code": data["code"],
                "zone": data["zone"],
                "pickable": data["pickable"],
                "last_position": event.position,
            }
        )
        return
    for name, value in data["changes"].items():  # fields it does not know are left out
        if name in PRODUCT_FIELDS:
            row.values[name] = value
        elif name in JSON_FIELDS:
            row.values[name] = _json(value)


def _load(conn: Connection, table: Table, tenant_id: UUID, streams: set[UUID]) -> dict[UUID, _Row]:
    if not streams:
        return {}
    found = conn.execute(
        select(table).where(table.c.tenant_id == tenant_id, table.c.stream_id.in_(streams))
    )
    return {r.stream_id: _Row(dict(r._mapping), stored=True) for r in found}


def _write(conn: Connection, table: Table, tenant_id: UUID, rows: dict[UUID, _Row]) -> None:
    new = [{**r.values, "tenant_id": tenant_id} for r in rows.values() if not r.stored]
    if new:
        conn.execute(insert(table), new)
    changed = [r.values for r in rows.values() if r.stored and r.changed]
    if changed:
        names = [c.name for c in table.columns if c.name not in ("tenant_id", "stream_id")]
        conn.execute(
            update(table)
            .where(table.c.tenant_id == bindparam("t"), table.c.stream_id == bindparam("s"))
            .values({name: bindparam(f"v_{name}") for name in names}),
            [
                {"t": tenant_id, "s": v["stream_id"], **{f"v_{n}": v[n] for n in names}}
                for v in changed
            ],
        )


def business_dates(
    conn: Connection,
    tenant_id: UUID,
    warehouses: Iterable[str],
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> dict[str, date]:
    """Each warehouse's business date: the date at `now` (default: the current time) in its
    time zone, UTC for a warehouse the catalog does not know yet; `today` sets one date for
    all of them."""
    codes = set(warehouses)
    if today is not None:
        return dict.fromkeys(codes, today)
    instant = now or datetime.now(UTC)
    zones = dict.fromkeys(codes, "UTC")
    if codes:
        found = conn.execute(
            select(WAREHOUSES.c.code, WAREHOUSES.c.timezone).where(
                WAREHOUSES.c.tenant_id == tenant_id, WAREHOUSES.c.code.in_(codes)
            )
        )
        zones.update((row.code, row.timezone) for row in found)
    return {code: instant.astimezone(ZoneInfo(zone)).date() for code, zone in zones.items()}


def products(
    conn: Connection,
    tenant_id: UUID,
    *,
    sku: str | None = None,
    active: bool | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[ProductView]:
    """A page of one tenant's products by SKU, after a cursor (the last SKU of a page)."""
    query = select(PRODUCTS).where(PRODUCTS.c.tenant_id == tenant_id)
    if sku is not None:
        query = query.where(PRODUCTS.c.sku == sku)
    if active is not None:
        query = query.where(PRODUCTS.c.active.is_(active))
    if after is not None:
        query = query.where(PRODUCTS.c.sku > after)
    rows = conn.execute(query.order_by(PRODUCTS.c.sku).limit(limit))
    return [
        ProductView(
            **{name: getattr(r, name) for name in ("sku", *PRODUCT_FIELDS)},
            barcodes=_barcode_views(r.barcodes),
            attributes=orjson.loads(r.attributes),
            position=r.last_position,
        )
        for r in rows
    ]


def _barcode_views(stored: str | None) -> tuple[BarcodeView, ...]:
    """A product row's barcodes; a product recorded before barcodes existed has none."""
    return tuple(
        BarcodeView(b["code"], b.get("kind") or "other", Decimal(str(b.get("pack_quantity") or 1)))
        for b in orjson.loads(stored or "[]")
    )


def product_by_barcode(
    conn: Connection, tenant_id: UUID, code: str
) -> tuple[str, BarcodeView] | None:
    """The SKU of the product one of whose barcodes is `code`, with that barcode."""
    row = conn.execute(
        select(BARCODES).where(BARCODES.c.tenant_id == tenant_id, BARCODES.c.code == code)
    ).first()
    if row is None:
        return None
    return row.sku, BarcodeView(row.code, row.kind, row.pack_quantity)


def warehouses(
    conn: Connection, tenant_id: UUID, *, after: str | None = None, limit: int = 100
) -> list[WarehouseView]:
    """A page of one tenant's warehouses by code, after a cursor (the last code of a page)."""
    query = select(WAREHOUSES).where(WAREHOUSES.c.tenant_id == tenant_id)
    if after is not None:
        query = query.where(WAREHOUSES.c.code > after)
    rows = conn.execute(query.order_by(WAREHOUSES.c.code).limit(limit))
    return [WarehouseView(r.code, r.name, r.timezone, r.last_position) for r in rows]


def bins(
    conn: Connection,
    tenant_id: UUID,
    *,
    warehouse: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[BinView]:
    """A page of one tenant's bins by (warehouse, code), after a cursor."""
    order = (BINS.c.warehouse, BINS.c.code)
    query = select(BINS).where(BINS.c.tenant_id == tenant_id)
    if warehouse is not None:
        query = query.where(BINS.c.warehouse == warehouse)
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*after))
    rows = conn.execute(query.order_by(*order).limit(limit))
    return [BinView(r.warehouse, r.code, r.zone, r.pickable, r.last_position) for r in rows]
