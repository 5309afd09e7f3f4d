"""What purchase and sales orders share: statuses, line values, external ids and validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import JSONTranscoder

from domain.errors import InvalidState, ValidationFailed
from domain.ids import stream_id
from domain.quantities import normalised
from domain.values import DataclassAsDict

MAX_LINES = 500
MAX_TEXT = 200

#: Stock reservations of a sales order's line are held under this reference prefix; only
#: the order's own commands reserve, release or ship them.
SALES_ORDER_REFERENCE = "sales-order:"


@dataclasses.dataclass(frozen=True)
class OrderedLine:
    """A line as ordered: SKU and quantity, and for purchases the unit cost."""

    line: int
    sku: str
    quantity: Decimal
    unit_cost: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class LineQuantity:
    """A quantity of one order line: reserved, released, backordered, cancelled."""

    line: int
    quantity: Decimal


@dataclasses.dataclass(frozen=True)
class LineReceipt:
    """Stock received against a purchase order line, into a bin as a lot."""

    line: int
    sku: str
    quantity: Decimal
    unit_cost: Decimal
    bin: str
    lot: str
    expires_on: date | None


@dataclasses.dataclass(frozen=True)
class LineReturn:
    """Stock a customer sent back against a sales order line, and what became of it."""

    line: int
    sku: str
    quantity: Decimal
    lot: str
    unit_cost: Decimal
    expires_on: date | None
    bin: str | None
    disposition: str


@dataclasses.dataclass(frozen=True)
class LineShipment:
    """Stock shipped for a sales order line: lot, bin, quantity and cost."""

    line: int
    sku: str
    lot: str
    bin: str
    quantity: Decimal
    unit_cost: Decimal
    expires_on: date | None


@dataclasses.dataclass(frozen=True)
class ReceiveLine:
    """A receipt against a purchase order line: quantity into a bin, as a lot."""

    line: int
    quantity: Decimal | int | str
    bin: str
    lot: str | None = None
    expires_on: date | None = None


@dataclasses.dataclass(frozen=True)
class ShipLine:
    """A shipment of part of a sales order line's reserved stock."""

    line: int
    quantity: Decimal | int | str


@dataclasses.dataclass(frozen=True)
class ReturnLine:
    """Shipped stock sent back: restocked or quarantined into a bin, or scrapped."""

    line: int
    quantity: Decimal | int | str
    disposition: str
    bin: str | None = None
    lot: str | None = None


def request_of(value: object) -> dict[str, Any]:
    """A command input as the plain data its idempotency fingerprint is taken over."""
    assert dataclasses.is_dataclass(value)
    assert not isinstance(value, type)
    return {
        name: normalised(v) if name == "quantity" else v
        for name, v in dataclasses.asdict(value).items()
    }


def register_order_transcodings(transcoder: JSONTranscoder) -> None:
    """The order value objects, for events that carry them."""
    for cls, name in (
        (OrderedLine, "ordered_line"),
        (LineQuantity, "line_quantity"),
        (LineReceipt, "line_receipt"),
        (LineReturn, "line_return"),
        (LineShipment, "line_shipment"),
    ):
        transcoder.register(DataclassAsDict(cls, name))


def reservation_reference(order_id: UUID, line: int) -> str:
    """The stock reservation reference of one sales order line."""
    return f"{SALES_ORDER_REFERENCE}{order_id}:{line}"


def parse_reservation_reference(reference: str) -> tuple[UUID, int] | None:
    """The (order id, line) a reservation reference names, if it is a sales order's."""
    if not reference.startswith(SALES_ORDER_REFERENCE):
        return None
    order, _, line = reference.removeprefix(SALES_ORDER_REFERENCE).rpartition(":")
    try:
        return UUID(order), int(line)
    except ValueError:
        return None


def check_reference(reference: str | None) -> None:
    """A direct stock command may not use a sales order's reservation reference."""
    if reference is not None and reference.startswith(SALES_ORDER_REFERENCE):
        raise ValidationFailed(
            "reference", "a sales order's reservations change only through the order's commands"
        )


def check_text(field: str, value: str | None, *, required: bool = True) -> str | None:
    """Names and references: 1-200 printable characters."""
    if value is None:
        if required:
            raise ValidationFailed(field, "is required")
        return None
    stripped = value.strip()
    if not stripped or len(stripped) > MAX_TEXT or not stripped.isprintable():
        raise ValidationFailed(field, f"must be 1-{MAX_TEXT} printable characters")
    return stripped


def check_lines(lines: Sequence[Any]) -> None:
    if not lines:
        raise ValidationFailed("lines", "an order needs at least one line")
    if len(lines) > MAX_LINES:
        raise ValidationFailed("lines", f"at most {MAX_LINES} lines per order")


def total(quantities: Iterable[Decimal]) -> Decimal:
    return sum(quantities, Decimal(0))


class OrderAggregate(Aggregate):
    """An order with a status that allows some commands and refuses the others."""

    status: str
    kind = "order"

    def require(self, command: str, *allowed: str) -> None:
        """Refuses a command the current status does not allow, naming the status."""
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {command} a {self.kind.replace('_', ' ')} that is {self.status}",
                self.status,
            )


def external_key_id(tenant_id: UUID, kind: str, external_id: str) -> UUID:
    return stream_id(tenant_id, "external-id", kind, external_id)


class ExternalKey(Aggregate):
    """A client's own id for an order, claimed once per tenant and kind of order."""

    class Claimed(Aggregate.Created):
        """The external id was given to an order."""

        kind: str
        external_id: str
        order_id: UUID

    def __init__(self, kind: str, external_id: str, order_id: UUID) -> None:
        self.kind = kind
        self.external_id = external_id
        self.order_id = order_id

    @classmethod
    def claim(cls, tenant_id: UUID, kind: str, external_id: str, order_id: UUID) -> ExternalKey:
        key: ExternalKey = cls._create(
            cls.Claimed,
            id=external_key_id(tenant_id, kind, external_id),
            kind=kind,
            external_id=external_id,
            order_id=order_id,
        )
        return key
