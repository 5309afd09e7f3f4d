"""Order commands: each changes an order and the stock it moves in one atomic save."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import MutableOrImmutableAggregate

from domain.catalog import Product
from domain.errors import AlreadyExists, NotFound, ValidationFailed
from domain.idempotency import IdempotencyRecord
from domain.inventory import Aggregates, InventoryApplication
from domain.lots import Lot
from domain.metadata import EventMetadata
from domain.orders import (
    ExternalKey,
    LineQuantity,
    LineReceipt,
    LineReturn,
    LineShipment,
    OrderAggregate,
    external_key_id,
)
from domain.quantities import ZERO, quantity
from domain.stock import Conditions, StockItem

Order = TypeVar("Order", bound=OrderAggregate)


@dataclasses.dataclass(frozen=True)
class OrderResult:
    """What an order command did: the order's status, and the stock it reserved or moved."""

    position: int
    order_id: UUID
    status: str
    reserved: tuple[LineQuantity, ...] = ()
    released: tuple[LineQuantity, ...] = ()
    backordered: tuple[LineQuantity, ...] = ()
    receipts: tuple[LineReceipt, ...] = ()
    shipments: tuple[LineShipment, ...] = ()
    returns: tuple[LineReturn, ...] = ()
    replayed: bool = False

    @property
    def cost(self) -> Decimal:
        """The cost of the stock shipped."""
        return sum((s.quantity * s.unit_cost for s in self.shipments), ZERO)

    def outcome(self) -> bytes:
        data = dataclasses.asdict(self)
        del data["position"], data["replayed"]
        return orjson.dumps(data, default=str)

    @classmethod
    def replay(cls, record: IdempotencyRecord) -> OrderResult:
        data = orjson.loads(record.outcome)
        return cls(
            position=record.position,
            order_id=UUID(data["order_id"]),
            status=data["status"],
            reserved=_values(LineQuantity, data["reserved"]),
            released=_values(LineQuantity, data["released"]),
            backordered=_values(LineQuantity, data["backordered"]),
            receipts=_values(LineReceipt, data["receipts"]),
            shipments=_values(LineShipment, data["shipments"]),
            returns=_values(LineReturn, data["returns"]),
            replayed=True,
        )


V = TypeVar("V")


def _values(cls: Callable[..., V], rows: list[dict[str, Any]]) -> tuple[V, ...]:
    """Line values from their JSON form: quantities and costs as decimals, expiries as dates."""
    decoded = []
    for row in rows:
        fields = dict(row)
        for name in ("quantity", "unit_cost"):
            if name in fields:
                fields[name] = Decimal(fields[name])
        if fields.get("expires_on") is not None:
            fields["expires_on"] = date.fromisoformat(fields["expires_on"])
        decoded.append(cls(**fields))
    return tuple(decoded)


class Work:
    """The aggregates one order command reads and changes, each loaded once."""

    def __init__(self, app: InventoryApplication, meta: EventMetadata) -> None:
        self.app = app
        self.meta = meta
        self.tenant = app.tenant()
        self.touched: dict[UUID, MutableOrImmutableAggregate[UUID]] = {}
        self.products: dict[str, Product] = {}
        self.items: dict[tuple[str, str], StockItem | None] = {}
        self.lots: dict[tuple[str, str], Lot | None] = {}
        self.places: dict[tuple[str, str], Conditions] = {}

    def touch(self, *aggregates: MutableOrImmutableAggregate[UUID]) -> None:
        for aggregate in aggregates:
            self.touched[aggregate.id] = aggregate

    def product(self, sku: str) -> Product:
        if sku not in self.products:
            self.products[sku] = self.app.product(sku)
        return self.products[sku]

    def conditions(self, sku: str, warehouse: str) -> Conditions:
        if (sku, warehouse) not in self.places:
            site = self.app.warehouse(warehouse)
            self.places[(sku, warehouse)] = self.app.conditions(
                self.product(sku), site, self.tenant, self.meta
            )
        return self.places[(sku, warehouse)]

    def item(self, sku: str, warehouse: str) -> StockItem | None:
        if (sku, warehouse) not in self.items:
            self.items[(sku, warehouse)] = self.app.stock_item(sku, warehouse)
        return self.items[(sku, warehouse)]

    def lot(self, sku: str, code: str) -> Lot | None:
        if (sku, code) not in self.lots:
            self.lots[(sku, code)] = self.app.lot(sku, code)
        return self.lots[(sku, code)]

    def register_lot(self, lot: Lot) -> None:
        self.lots[(lot.sku, lot.lot)] = lot
        self.touch(lot)

    def result(self, result: OrderResult) -> tuple[Aggregates, OrderResult]:
        return list(self.touched.values()), result


def ordered_quantity(app: InventoryApplication, sku: str, qty: Decimal | int | str) -> Decimal:
    """An order line's quantity of an active product, in the product's unit."""
    product = app.product(sku)
    if not product.active:
        raise ValidationFailed("lines", f"{sku} is inactive")
    return quantity(qty, product.decimals)


def load_order(app: InventoryApplication, order_id: UUID, kind: type[Order]) -> Order:
    """An order of this tenant by id, else `not-found`."""
    order: object
    try:
        order = app.repository.get(order_id)
    except AggregateNotFoundError:
        order = None
    if not isinstance(order, kind):
        raise NotFound(f"{kind.kind.replace('_', ' ')} {order_id} does not exist")
    return order


def claim_external_id(
    app: InventoryApplication, kind: str, external_id: str | None, order_id: UUID
) -> list[ExternalKey]:
    """An order's external id, unique per tenant and kind: claimed in the order's save."""
    if external_id is None:
        return []
    try:
        app.repository.get(external_key_id(app.tenant_id, kind, external_id))
    except AggregateNotFoundError:
        return [ExternalKey.claim(app.tenant_id, kind, external_id, order_id)]
    raise AlreadyExists(f"{kind.replace('_', ' ')} external_id {external_id!r} is already used")


def order_by_external_id(app: InventoryApplication, kind: str, external_id: str) -> UUID:
    try:
        key: object = app.repository.get(external_key_id(app.tenant_id, kind, external_id))
    except AggregateNotFoundError:
        raise NotFound(f"no {kind.replace('_', ' ')} has external_id {external_id!r}") from None
    assert isinstance(key, ExternalKey)
    return key.order_id
