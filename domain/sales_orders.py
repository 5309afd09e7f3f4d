"""Sales order commands: open, allocate, ship, cancel and returns, with the stock they move."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from uuid import UUID

from domain.allocation import LotStatus
from domain.errors import InsufficientStock, ValidationFailed
from domain.inventory import Aggregates, Receipt
from domain.metadata import EventMetadata
from domain.ordering import (
    OrderResult,
    Work,
    claim_external_id,
    load_order,
    ordered_quantity,
)
from domain.orders import (
    LineQuantity,
    LineReturn,
    LineShipment,
    ReturnLine,
    ShipLine,
    check_text,
    parse_reservation_reference,
    request_of,
    reservation_reference,
    total,
)
from domain.purchase_orders import PurchasingApplication
from domain.quantities import ZERO, normalised, quantity
from domain.sales import DISPOSITIONS, SalesOrder
from domain.stock import StockItem
from domain.values import Hold

Number = Decimal | int | str


def _held(holds: Sequence[Hold]) -> Decimal:
    return total(hold.quantity for hold in holds)


class LedgerApplication(PurchasingApplication):
    """The tenant's whole ledger: catalog, stock, purchase orders and sales orders."""

    def create_sales_order(
        self,
        customer: str,
        warehouse: str,
        lines: Sequence[tuple[str, Number]],
        meta: EventMetadata,
        *,
        external_id: str | None = None,
        reference: str | None = None,
    ) -> OrderResult:
        """Opens an order of (sku, quantity) lines shipping from one warehouse."""
        order_id = uuid.uuid4()
        name = check_text("customer", customer)
        assert name is not None
        ref = check_text("reference", reference, required=False)
        external = check_text("external_id", external_id, required=False)

        def action() -> tuple[Aggregates, OrderResult]:
            self.warehouse(warehouse)  # it must exist
            checked = [(sku, ordered_quantity(self, sku, qty)) for sku, qty in lines]
            order = SalesOrder.open(
                order_id, name, warehouse, checked, external_id=external, reference=ref
            )
            keys = claim_external_id(self, SalesOrder.kind, external, order_id)
            return [order, *keys], OrderResult(0, order_id, order.status)

        request = {
            "customer": customer,
            "warehouse": warehouse,
            "lines": [(sku, normalised(qty)) for sku, qty in lines],
            "external_id": external_id,
            "reference": reference,
        }
        return self.run("create_sales_order", request, meta, action, OrderResult.replay)

    def allocate_sales_order(self, order_id: UUID, meta: EventMetadata) -> OrderResult:
        """Reserves each line by its product's policy; what cannot be reserved stays backordered.

        Allocating again reserves newly available stock, and replaces reservations on lots that
        expired or went on hold or into quarantine since.
        """

        def action() -> tuple[Aggregates, OrderResult]:
            work = Work(self, meta)
            order = load_order(self, order_id, SalesOrder)
            order.require(
                "allocate", "open", "partially_allocated", "allocated", "partially_shipped"
            )
            work.touch(order)
            reserved, released, backordered = [], [], []
            for line in order.lines:
                item = work.item(line.sku, order.warehouse)
                reference = reservation_reference(order_id, line.line)
                blocked = ZERO
                conditions = work.conditions(line.sku, order.warehouse)
                if item is not None and line.allocated > ZERO:
                    blocked = _held(item.release_blocked(reference, conditions))
                    if blocked:
                        released.append(LineQuantity(line.line, blocked))
                        work.touch(item)
                wanted = line.unallocated + blocked
                got = ZERO
                if item is not None and wanted > ZERO:
                    try:
                        allocation = item.reserve(wanted, reference, conditions, allow_partial=True)
                    except InsufficientStock:
                        pass  # nothing available: all of it waits
                    else:
                        got = _held(allocation.holds)
                        reserved.append(LineQuantity(line.line, got))
                        work.touch(item)
                if wanted > got:
                    backordered.append(LineQuantity(line.line, wanted - got))
            order.allocated(reserved, released, backordered)
            result = OrderResult(
                0,
                order_id,
                order.status,
                reserved=tuple(reserved),
                released=tuple(released),
                backordered=tuple(backordered),
            )
            return work.result(result)

        request = {"order_id": order_id}
        return self.run("allocate_sales_order", request, meta, action, OrderResult.replay)

    def ship_sales_order(
        self, order_id: UUID, meta: EventMetadata, *, lines: Sequence[ShipLine] | None = None
    ) -> OrderResult:
        """Issues reserved stock with its costs: all that is allocated, or the given quantities.

        A reservation on a lot that expired or is no longer released blocks its shipment
        (`lot-expired`, `lot-unavailable`) until the order is allocated again.
        """

        def action() -> tuple[Aggregates, OrderResult]:
            work = Work(self, meta)
            order = load_order(self, order_id, SalesOrder)
            order.require("ship", "partially_allocated", "allocated", "partially_shipped")
            work.touch(order)
            wanted = self._shipping(order, work, lines)
            shipments = []
            for number, amount in wanted.items():
                line = order.line(number)
                item = work.item(line.sku, order.warehouse)
                assert item is not None  # it holds the line's reservation
                work.touch(item)
                picks = item.issue_reserved(
                    reservation_reference(order_id, number),
                    work.conditions(line.sku, order.warehouse),
                    quantity=amount,
                    reason="sale",
                )
                shipments += [
                    LineShipment(
                        number, line.sku, p.lot, p.bin, p.quantity, p.unit_cost, p.expires_on
                    )
                    for p in picks
                ]
            effective_at = work.conditions(order.lines[0].sku, order.warehouse).effective_at
            order.shipped(shipments, effective_at)
            return work.result(OrderResult(0, order_id, order.status, shipments=tuple(shipments)))

        request = {
            "order_id": order_id,
            "lines": None if lines is None else [request_of(line) for line in lines],
        }
        return self.run("ship_sales_order", request, meta, action, OrderResult.replay)

    @staticmethod
    def _shipping(
        order: SalesOrder, work: Work, lines: Sequence[ShipLine] | None
    ) -> dict[int, Decimal]:
        """The quantity to ship per line: all allocated, or what was asked (within allocated)."""
        if lines is None:
            wanted = {line.line: line.allocated for line in order.lines if line.allocated > ZERO}
            if not wanted:
                raise InsufficientStock(
                    "nothing is allocated to ship: allocate the order first",
                    requested=total(line.unallocated for line in order.lines),
                    available=ZERO,
                )
            return wanted
        if not lines:
            raise ValidationFailed("lines", "name at least one line, or none to ship everything")
        asked: dict[int, Decimal] = {}
        for ship in lines:
            if ship.line in asked:
                raise ValidationFailed("lines", f"line {ship.line} is named twice")
            line = order.line(ship.line)
            amount = quantity(ship.quantity, work.product(line.sku).decimals)
            if amount > line.allocated:
                raise InsufficientStock(
                    f"line {ship.line}: {amount} to ship, {line.allocated} allocated",
                    requested=amount,
                    available=line.allocated,
                )
            asked[ship.line] = amount
        return asked

    def cancel_sales_order(self, order_id: UUID, meta: EventMetadata) -> OrderResult:
        """Releases every reservation; after a partial shipment the order is closed instead."""

        def action() -> tuple[Aggregates, OrderResult]:
            work = Work(self, meta)
            order = load_order(self, order_id, SalesOrder)
            order.check_cancel()
            work.touch(order)
            released = []
            for line in order.lines:
                if line.allocated <= ZERO:
                    continue
                item = work.item(line.sku, order.warehouse)
                assert item is not None  # it holds the line's reservation
                holds = item.release(reservation_reference(order_id, line.line), "cancelled")
                released.append(LineQuantity(line.line, _held(holds)))
                work.touch(item)
            order.cancelled(released)
            return work.result(OrderResult(0, order_id, order.status))

        request = {"order_id": order_id}
        return self.run("cancel_sales_order", request, meta, action, OrderResult.replay)

    def return_sales_order(
        self, order_id: UUID, returns: Sequence[ReturnLine], meta: EventMetadata
    ) -> OrderResult:
        """Takes shipped stock back per line, as the same lot, expiry and cost it left with.

        `restock` puts it into a bin, `quarantine` too and quarantines the lot, `scrap` records
        it without stock. Returned quantities are kept per line; the status does not change.
        """
        if not returns:
            raise ValidationFailed("lines", "a return needs at least one line")
        for back in returns:
            if back.disposition not in DISPOSITIONS:
                raise ValidationFailed("disposition", "must be restock, quarantine or scrap")
            if back.disposition != "scrap" and back.bin is None:
                raise ValidationFailed("bin", f"a {back.disposition} return names its bin")

        def action() -> tuple[Aggregates, OrderResult]:
            work = Work(self, meta)
            order = load_order(self, order_id, SalesOrder)
            work.touch(order)
            amounts: dict[int, Decimal] = {}
            for back in returns:
                decimals = work.product(order.line(back.line).sku).decimals
                amounts[back.line] = amounts.get(back.line, ZERO) + quantity(
                    back.quantity, decimals
                )
            order.check_returns(amounts)
            done: list[LineReturn] = []
            for back in returns:
                pieces = self._return_pieces(order, back, work)
                for piece in pieces:
                    self._take_back(order, piece, work)
                order.returned(pieces, work.conditions(pieces[0].sku, order.warehouse).effective_at)
                done += pieces
            return work.result(OrderResult(0, order_id, order.status, returns=tuple(done)))

        request = {"order_id": order_id, "lines": [request_of(back) for back in returns]}
        return self.run("return_sales_order", request, meta, action, OrderResult.replay)

    @staticmethod
    def _return_pieces(order: SalesOrder, back: ReturnLine, work: Work) -> list[LineReturn]:
        """The shipped lots a return takes back, latest shipment first."""
        line = order.line(back.line)
        wanted = quantity(back.quantity, work.product(line.sku).decimals)
        pieces = []
        for shipment, left in order.returnable(back.line, back.lot):
            if wanted <= ZERO:
                break
            taken = min(left, wanted)
            wanted -= taken
            pieces.append(
                LineReturn(
                    back.line,
                    line.sku,
                    taken,
                    shipment.lot,
                    shipment.unit_cost,
                    shipment.expires_on,
                    back.bin if back.disposition != "scrap" else None,
                    back.disposition,
                )
            )
        if wanted > ZERO:
            raise ValidationFailed(
                "quantity", f"line {back.line}: more returned than shipped of lot {back.lot!r}"
            )
        return pieces

    def _take_back(self, order: SalesOrder, piece: LineReturn, work: Work) -> None:
        """Restocks a returned piece into its bin (quarantining its lot if asked)."""
        if piece.disposition == "scrap":
            return
        assert piece.bin is not None
        registry = work.lot(piece.sku, piece.lot)
        product = work.product(piece.sku)
        arrival = Receipt(
            piece.bin,
            piece.quantity,
            piece.unit_cost,
            piece.lot,
            None,
            reservation_reference(order.id, piece.line),
            "return",
        )
        item, registry = self.stock_receipt(
            product,
            work.conditions(piece.sku, order.warehouse),
            order.warehouse,
            work.item(piece.sku, order.warehouse),
            registry,
            arrival,
        )
        work.items[(piece.sku, order.warehouse)] = item
        work.register_lot(registry)
        work.touch(item, product)
        if piece.disposition == "quarantine":
            registry.set_status(LotStatus.QUARANTINE)
            for code in registry.warehouses:
                holder = work.item(piece.sku, code)
                if holder is not None:
                    holder.set_lot_status(piece.lot, LotStatus.QUARANTINE)
                    work.touch(holder)

    def follow_reservations(self, aggregates: Aggregates) -> Aggregates:
        """Sales orders whose reservations a stock command released (a count that found less
        stock, a write-off of expired stock) record it in the same save."""
        saved = {aggregate.id for aggregate in aggregates}
        lost: dict[UUID, dict[int, Decimal]] = {}
        reasons: dict[UUID, str] = {}
        for item in aggregates:
            if not isinstance(item, StockItem):
                continue
            for event in item.pending_events:
                released = getattr(event, "released", {})
                held = getattr(event, "held", {})
                for reference, holds in released.items():
                    named = parse_reservation_reference(reference)
                    if named is None or named[0] in saved:
                        continue
                    net = _held(holds) - _held(held.get(reference, []))
                    if net:
                        per_line = lost.setdefault(named[0], {})
                        per_line[named[1]] = per_line.get(named[1], ZERO) + net
                        reasons[named[0]] = getattr(event, "reason", "released")
        followers = []
        for order_id, per_line in lost.items():
            order = load_order(self, order_id, SalesOrder)
            quantities = [LineQuantity(n, q) for n, q in sorted(per_line.items()) if q]
            order.reservation_lost(quantities, reasons[order_id])
            followers.append(order)
        return followers
