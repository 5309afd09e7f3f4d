"""A purchase order: lines ordered from a supplier, received into stock in parts."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import OverReceipt, UnknownReference, ValidationFailed
from domain.orders import (
    LineQuantity,
    LineReceipt,
    OrderAggregate,
    OrderedLine,
    check_lines,
    total,
)
from domain.quantities import ZERO

DRAFT = "draft"
SUBMITTED = "submitted"
PARTIALLY_RECEIVED = "partially_received"
RECEIVED = "received"
CLOSED = "closed"
CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True)
class PurchaseLine:
    """A line of a purchase order: what was ordered at what cost, and what has arrived."""

    line: int
    sku: str
    ordered: Decimal
    unit_cost: Decimal
    received: Decimal = ZERO

    @property
    def open(self) -> Decimal:
        return max(self.ordered - self.received, ZERO)


class PurchaseOrder(OrderAggregate):
    """Stock ordered from a supplier for one warehouse; receipts change order and stock at once."""

    kind = "purchase_order"

    class Created(Aggregate.Created):
        """A purchase order was drafted."""

        supplier: str
        warehouse: str
        expected_on: date | None
        external_id: str | None
        reference: str | None
        lines: list[OrderedLine]

    class Submitted(Aggregate.Event):
        """The order was sent to the supplier: its open quantities are now incoming stock."""

        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PurchaseOrder)
            aggregate.status = self.status

    class Received(Aggregate.Event):
        """Stock arrived against some lines (partial or full), recorded with the expected date."""

        receipts: list[LineReceipt]
        expected_on: date | None
        effective_at: datetime
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PurchaseOrder)
            for receipt in self.receipts:
                line = aggregate.lines[receipt.line - 1]
                aggregate.lines[receipt.line - 1] = dataclasses.replace(
                    line, received=line.received + receipt.quantity
                )
            aggregate.status = self.status

    class Closed(Aggregate.Event):
        """The order was short-closed: what was still open will not come."""

        short: list[LineQuantity]
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PurchaseOrder)
            aggregate.status = self.status

    class Cancelled(Aggregate.Event):
        """The order was cancelled before anything arrived."""

        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PurchaseOrder)
            aggregate.status = self.status

    def __init__(
        self,
        supplier: str,
        warehouse: str,
        expected_on: date | None,
        external_id: str | None,
        reference: str | None,
        lines: list[OrderedLine],
    ) -> None:
        self.supplier = supplier
        self.warehouse = warehouse
        self.expected_on = expected_on
        self.external_id = external_id
        self.reference = reference
        self.status = DRAFT
        self.lines = [
            PurchaseLine(line.line, line.sku, line.quantity, line.unit_cost or ZERO)
            for line in lines
        ]

    @classmethod
    def draft(
        cls,
        order_id: UUID,
        supplier: str,
        warehouse: str,
        lines: list[tuple[str, Decimal, Decimal]],
        *,
        expected_on: date | None = None,
        external_id: str | None = None,
        reference: str | None = None,
    ) -> PurchaseOrder:
        """Drafts an order of (sku, quantity, unit cost) lines, numbered from 1."""
        check_lines(lines)
        order: PurchaseOrder = cls._create(
            cls.Created,
            id=order_id,
            supplier=supplier,
            warehouse=warehouse,
            expected_on=expected_on,
            external_id=external_id,
            reference=reference,
            lines=[
                OrderedLine(n, sku, qty, cost) for n, (sku, qty, cost) in enumerate(lines, start=1)
            ],
        )
        return order

    def line(self, number: int) -> PurchaseLine:
        if not 1 <= number <= len(self.lines):
            raise UnknownReference(f"purchase order line {number} does not exist")
        return self.lines[number - 1]

    def submit(self) -> None:
        self.require("submit", DRAFT)
        self.trigger_event(self.Submitted, status=SUBMITTED)

    def cancel(self) -> None:
        self.require("cancel", DRAFT, SUBMITTED)
        self.trigger_event(self.Cancelled, status=CANCELLED)

    def close(self) -> list[LineQuantity]:
        """Short-closes the order: the open remainder of every line is cancelled."""
        self.require("close", SUBMITTED, PARTIALLY_RECEIVED)
        short = [LineQuantity(line.line, line.open) for line in self.lines if line.open > ZERO]
        self.trigger_event(self.Closed, short=short, status=CLOSED)
        return short

    def check_receipts(self, quantities: dict[int, Decimal], tolerance_pct: Decimal) -> None:
        """Receipts are allowed once submitted, up to ordered plus the tolerance per line."""
        self.require("receive", SUBMITTED, PARTIALLY_RECEIVED)
        for number, quantity in quantities.items():
            line = self.line(number)
            receivable = line.ordered * (1 + tolerance_pct / 100)
            if line.received + quantity > receivable:
                raise OverReceipt(
                    f"line {number}: {line.received} of {line.ordered} received, {quantity} more"
                    f" exceeds the {tolerance_pct}% tolerance ({receivable} in all)",
                    ordered=line.ordered,
                    receivable=receivable - line.received,
                )

    def receive(self, receipts: list[LineReceipt], effective_at: datetime) -> None:
        """Records stock received against lines; the status follows the quantities."""
        if not receipts:
            raise ValidationFailed("lines", "a receipt needs at least one line")
        received = {line.line: line.received for line in self.lines}
        for receipt in receipts:
            received[receipt.line] += receipt.quantity
        complete = all(received[line.line] >= line.ordered for line in self.lines)
        self.trigger_event(
            self.Received,
            receipts=receipts,
            expected_on=self.expected_on,
            effective_at=effective_at,
            status=RECEIVED if complete else PARTIALLY_RECEIVED,
        )

    @property
    def open_quantity(self) -> Decimal:
        """What is still incoming: open quantities while the supplier may deliver."""
        if self.status not in (SUBMITTED, PARTIALLY_RECEIVED):
            return ZERO
        return total(line.open for line in self.lines)
