"""Purchase order commands: draft, submit, cancel, close, and receipts into stock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

from domain.catalog import validate_code
from domain.errors import ValidationFailed
from domain.inventory import Aggregates, InventoryApplication, Receipt
from domain.metadata import EventMetadata
from domain.ordering import (
    OrderResult,
    Work,
    claim_external_id,
    load_order,
    ordered_quantity,
)
from domain.orders import LineReceipt, ReceiveLine, check_text, request_of
from domain.purchasing import PurchaseOrder
from domain.quantities import money, normalised, quantity

Number = Decimal | int | str


class PurchasingApplication(InventoryApplication):
    """Purchase orders on top of the catalog and stock commands."""

    def create_purchase_order(
        self,
        supplier: str,
        warehouse: str,
        lines: Sequence[tuple[str, Number, Number]],
        meta: EventMetadata,
        *,
        expected_on: date | None = None,
        external_id: str | None = None,
        reference: str | None = None,
    ) -> OrderResult:
        """Drafts an order of (sku, quantity, unit cost) lines for one warehouse."""
        order_id = uuid.uuid4()
        name = check_text("supplier", supplier)
        assert name is not None
        ref = check_text("reference", reference, required=False)
        external = check_text("external_id", external_id, required=False)

        def action() -> tuple[Aggregates, OrderResult]:
            self.warehouse(warehouse)  # it must exist
            checked = [
                (sku, ordered_quantity(self, sku, qty), money(cost)) for sku, qty, cost in lines
            ]
            order = PurchaseOrder.draft(
                order_id,
                name,
                warehouse,
                checked,
                expected_on=expected_on,
                external_id=external,
                reference=ref,
            )
            keys = claim_external_id(self, PurchaseOrder.kind, external, order_id)
            return [order, *keys], OrderResult(0, order_id, order.status)

        request = {
            "supplier": supplier,
            "warehouse": warehouse,
            "lines": [(sku, normalised(qty), normalised(cost)) for sku, qty, cost in lines],
            "expected_on": expected_on,
            "external_id": external_id,
            "reference": reference,
        }
        return self.run("create_purchase_order", request, meta, action, OrderResult.replay)

    def _transition(self, command: str, order_id: UUID, meta: EventMetadata) -> OrderResult:
        def action() -> tuple[Aggregates, OrderResult]:
            order = load_order(self, order_id, PurchaseOrder)
            getattr(order, command)()
            return [order], OrderResult(0, order_id, order.status)

        request = {"order_id": order_id}
        return self.run(f"{command}_purchase_order", request, meta, action, OrderResult.replay)

    def submit_purchase_order(self, order_id: UUID, meta: EventMetadata) -> OrderResult:
        """Sends a draft to the supplier: its open quantities become incoming stock."""
        return self._transition("submit", order_id, meta)

    def cancel_purchase_order(self, order_id: UUID, meta: EventMetadata) -> OrderResult:
        """Cancels a draft or submitted order before anything arrived."""
        return self._transition("cancel", order_id, meta)

    def close_purchase_order(self, order_id: UUID, meta: EventMetadata) -> OrderResult:
        """Short-closes a submitted or partially received order: the open rest is cancelled."""
        return self._transition("close", order_id, meta)

    def receive_purchase_order(
        self,
        order_id: UUID,
        receipts: Sequence[ReceiveLine],
        meta: EventMetadata,
    ) -> OrderResult:
        """Receives lines, partly or fully: order and stock change in one atomic save.

        A line may arrive in several lots at once; beyond ordered plus the tenant's tolerance
        is `over-receipt`.
        """
        generated = [f"L-{uuid.uuid4().hex[:12].upper()}" for _ in receipts]
        if not receipts:
            raise ValidationFailed("lines", "a receipt needs at least one line")

        def action() -> tuple[Aggregates, OrderResult]:
            work = Work(self, meta)
            order = load_order(self, order_id, PurchaseOrder)
            work.touch(order)
            order.require("receive", "submitted", "partially_received")
            received: dict[int, Decimal] = {}
            amounts = []
            for receipt in receipts:
                number = receipt.line
                decimals = work.product(order.line(number).sku).decimals
                amount = quantity(receipt.quantity, decimals)
                received[number] = received.get(number, Decimal(0)) + amount
                amounts.append(amount)
            order.check_receipts(received, work.tenant.over_receipt_tolerance_pct)
            done = []
            for receipt, amount, new_lot in zip(receipts, amounts, generated, strict=True):
                line = order.line(receipt.line)
                given = receipt.lot
                code = new_lot if given is None else validate_code("lot", given)
                arrival = Receipt(
                    receipt.bin,
                    amount,
                    line.unit_cost,
                    code,
                    receipt.expires_on,
                    f"purchase-order:{order_id}:{line.line}",
                )
                conditions = work.conditions(line.sku, order.warehouse)
                item, registry = self.stock_receipt(
                    work.product(line.sku),
                    conditions,
                    order.warehouse,
                    work.item(line.sku, order.warehouse),
                    work.lot(line.sku, code) if given is not None else None,
                    arrival,
                )
                work.items[(line.sku, order.warehouse)] = item
                work.register_lot(registry)
                work.touch(item, work.product(line.sku))
                done.append(
                    LineReceipt(
                        line.line,
                        line.sku,
                        amount,
                        line.unit_cost,
                        arrival.bin,
                        code,
                        item.expiry[code],
                    )
                )
            order.receive(done, work.conditions(done[0].sku, order.warehouse).effective_at)
            return work.result(OrderResult(0, order_id, order.status, receipts=tuple(done)))

        request = {"order_id": order_id, "lines": [request_of(r) for r in receipts]}
        return self.run("receive_purchase_order", request, meta, action, OrderResult.replay)
