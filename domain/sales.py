"""A sales order: lines reserved on stock by policy, shipped, cancelled or returned."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import UnknownReference, ValidationFailed
from domain.orders import (
    LineQuantity,
    LineReturn,
    LineShipment,
    OrderAggregate,
    OrderedLine,
    check_lines,
    total,
)
from domain.quantities import ZERO

OPEN = "open"
PARTIALLY_ALLOCATED = "partially_allocated"
ALLOCATED = "allocated"
PARTIALLY_SHIPPED = "partially_shipped"
SHIPPED = "shipped"
CANCELLED = "cancelled"
CLOSED = "closed"
ACTIVE = (OPEN, PARTIALLY_ALLOCATED, ALLOCATED, PARTIALLY_SHIPPED)

DISPOSITIONS = frozenset({"restock", "quarantine", "scrap"})


@dataclasses.dataclass(frozen=True)
class SalesLine:
    """A line of a sales order and where its quantity stands."""

    line: int
    sku: str
    ordered: Decimal
    allocated: Decimal = ZERO  # reserved on stock, not yet shipped
    shipped: Decimal = ZERO
    returned: Decimal = ZERO
    cancelled: Decimal = ZERO

    @property
    def unallocated(self) -> Decimal:
        """What is neither reserved nor shipped (nor cancelled): the backorder."""
        return max(self.ordered - self.cancelled - self.shipped - self.allocated, ZERO)


def _add(lines: list[SalesLine], field: str, changes: Iterable[LineQuantity], sign: int) -> None:
    for change in changes:
        line = lines[change.line - 1]
        value = getattr(line, field) + sign * change.quantity
        lines[change.line - 1] = dataclasses.replace(line, **{field: value})


def status_of(lines: list[SalesLine]) -> str:
    """An active order's status follows its quantities."""
    if all(line.shipped >= line.ordered for line in lines):
        return SHIPPED
    if any(line.shipped > ZERO for line in lines):
        return PARTIALLY_SHIPPED
    if all(line.allocated >= line.ordered for line in lines):
        return ALLOCATED
    if any(line.allocated > ZERO for line in lines):
        return PARTIALLY_ALLOCATED
    return OPEN


class SalesOrder(OrderAggregate):
    """Stock promised to a customer from one warehouse, reserved on the stock it ships from."""

    kind = "sales_order"

    class Created(Aggregate.Created):
        """A sales order was opened."""

        customer: str
        warehouse: str
        external_id: str | None
        reference: str | None
        lines: list[OrderedLine]

    class Allocated(Aggregate.Event):
        """Stock was reserved for lines; blocked reservations were released; the rest waits."""

        reserved: list[LineQuantity]
        released: list[LineQuantity]
        backordered: list[LineQuantity]
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, SalesOrder)
            _add(aggregate.lines, "allocated", self.released, -1)
            _add(aggregate.lines, "allocated", self.reserved, +1)
            aggregate.status = self.status

    class ReservationLost(Aggregate.Event):
        """Reserved stock went away outside the order (a count found less, a write-off)."""

        released: list[LineQuantity]
        reason: str
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, SalesOrder)
            _add(aggregate.lines, "allocated", self.released, -1)
            aggregate.status = self.status

    class Shipped(Aggregate.Event):
        """Reserved stock left the warehouse for the customer."""

        shipments: list[LineShipment]
        effective_at: datetime
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, SalesOrder)
            quantities = [LineQuantity(s.line, s.quantity) for s in self.shipments]
            _add(aggregate.lines, "allocated", quantities, -1)
            _add(aggregate.lines, "shipped", quantities, +1)
            for shipment in self.shipments:
                aggregate.shipments.setdefault(shipment.line, []).append(shipment)
            aggregate.status = self.status

    class Cancelled(Aggregate.Event):
        """The order was cancelled: reservations released, the unshipped remainder cancelled."""

        released: list[LineQuantity]
        cancelled: list[LineQuantity]
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, SalesOrder)
            _add(aggregate.lines, "allocated", self.released, -1)
            _add(aggregate.lines, "cancelled", self.cancelled, +1)
            aggregate.status = self.status

    class Returned(Aggregate.Event):
        """The customer sent shipped stock back: restocked, quarantined or scrapped."""

        returns: list[LineReturn]
        effective_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, SalesOrder)
            quantities = [LineQuantity(r.line, r.quantity) for r in self.returns]
            _add(aggregate.lines, "returned", quantities, +1)
            for returned in self.returns:
                aggregate.returns.setdefault(returned.line, []).append(returned)

    def __init__(
        self,
        customer: str,
        warehouse: str,
        external_id: str | None,
        reference: str | None,
        lines: list[OrderedLine],
    ) -> None:
        self.customer = customer
        self.warehouse = warehouse
        self.external_id = external_id
        self.reference = reference
        self.status = OPEN
        self.lines = [SalesLine(line.line, line.sku, line.quantity) for line in lines]
        self.shipments: dict[int, list[LineShipment]] = {}
        self.returns: dict[int, list[LineReturn]] = {}

    @classmethod
    def open(
        cls,
        order_id: UUID,
        customer: str,
        warehouse: str,
        lines: list[tuple[str, Decimal]],
        *,
        external_id: str | None = None,
        reference: str | None = None,
    ) -> SalesOrder:
        """Opens an order of (sku, quantity) lines, numbered from 1."""
        check_lines(lines)
        order: SalesOrder = cls._create(
            cls.Created,
            id=order_id,
            customer=customer,
            warehouse=warehouse,
            external_id=external_id,
            reference=reference,
            lines=[OrderedLine(n, sku, qty) for n, (sku, qty) in enumerate(lines, start=1)],
        )
        return order

    def line(self, number: int) -> SalesLine:
        if not 1 <= number <= len(self.lines):
            raise UnknownReference(f"sales order line {number} does not exist")
        return self.lines[number - 1]

    def _status_after(self, *changes: tuple[str, list[LineQuantity], int]) -> str:
        lines = list(self.lines)
        for field, quantities, sign in changes:
            _add(lines, field, quantities, sign)
        return status_of(lines)

    def allocated(
        self,
        reserved: list[LineQuantity],
        released: list[LineQuantity],
        backordered: list[LineQuantity],
    ) -> None:
        """Records what an allocation reserved and released (nothing changed: nothing recorded)."""
        self.require("allocate", *ACTIVE)
        if not reserved and not released:
            return
        status = self._status_after(("allocated", released, -1), ("allocated", reserved, +1))
        self.trigger_event(
            self.Allocated,
            reserved=reserved,
            released=released,
            backordered=backordered,
            status=status,
        )

    def reservation_lost(self, released: list[LineQuantity], reason: str) -> None:
        status = self._status_after(("allocated", released, -1))
        if self.status not in ACTIVE:
            status = self.status
        self.trigger_event(self.ReservationLost, released=released, reason=reason, status=status)

    def shipped(self, shipments: list[LineShipment], effective_at: datetime) -> None:
        self.require("ship", PARTIALLY_ALLOCATED, ALLOCATED, PARTIALLY_SHIPPED)
        quantities = [LineQuantity(s.line, s.quantity) for s in shipments]
        status = self._status_after(("allocated", quantities, -1), ("shipped", quantities, +1))
        self.trigger_event(
            self.Shipped, shipments=shipments, effective_at=effective_at, status=status
        )

    def check_cancel(self) -> None:
        self.require("cancel", *ACTIVE)

    def cancelled(self, released: list[LineQuantity]) -> None:
        """Cancels what is not shipped; after a partial shipment the order is closed."""
        self.check_cancel()
        remainder = [
            LineQuantity(line.line, line.ordered - line.shipped)
            for line in self.lines
            if line.ordered > line.shipped
        ]
        shipped_any = any(line.shipped > ZERO for line in self.lines)
        self.trigger_event(
            self.Cancelled,
            released=released,
            cancelled=remainder,
            status=CLOSED if shipped_any else CANCELLED,
        )

    def check_returns(self, quantities: dict[int, Decimal]) -> None:
        """Returns are of shipped stock, at most what was shipped and not yet returned."""
        self.require("return", PARTIALLY_SHIPPED, SHIPPED, CLOSED)
        for number, quantity in quantities.items():
            line = self.line(number)
            if quantity > line.shipped - line.returned:
                raise ValidationFailed(
                    "quantity",
                    f"line {number}: {quantity} returned, but only"
                    f" {line.shipped - line.returned} shipped and not yet returned",
                )

    def returnable(self, number: int, lot: str | None) -> list[tuple[LineShipment, Decimal]]:
        """Shipped stock of a line not yet returned, latest shipment first (or of one lot)."""
        left: list[tuple[LineShipment, Decimal]] = []
        returned: dict[tuple[str, Decimal], Decimal] = {}
        for done in self.returns.get(number, []):
            key = (done.lot, done.unit_cost)
            returned[key] = returned.get(key, ZERO) + done.quantity
        for shipment in self.shipments.get(number, []):  # the earliest returns count first
            key = (shipment.lot, shipment.unit_cost)
            used = min(returned.get(key, ZERO), shipment.quantity)
            returned[key] = returned.get(key, ZERO) - used
            if shipment.quantity > used and (lot is None or shipment.lot == lot):
                left.append((shipment, shipment.quantity - used))
        return left[::-1]

    def returned(self, returns: list[LineReturn], effective_at: datetime) -> None:
        self.trigger_event(self.Returned, returns=returns, effective_at=effective_at)

    @property
    def reserved_quantity(self) -> Decimal:
        return total(line.allocated for line in self.lines)
