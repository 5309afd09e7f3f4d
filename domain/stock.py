"""A stock item: the stock of one SKU in one warehouse, by lot, bin and cost layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.allocation import LotStatus, Take, allocate, policy_order
from domain.errors import (
    CountMismatch,
    InsufficientStock,
    LotRequired,
    UnknownReference,
)
from domain.ids import stream_id
from domain.quantities import ZERO
from domain.stock_picking import StockPicking
from domain.stock_state import HISTORY_DEPTH, Conditions
from domain.values import Hold, Layer, Pick

__all__ = ["HISTORY_DEPTH", "Allocation", "Conditions", "StockItem", "stock_item_id"]


def stock_item_id(tenant_id: UUID, sku: str, warehouse: str) -> UUID:
    return stream_id(tenant_id, "stock-item", sku, warehouse)


@dataclass(frozen=True)
class Allocation:
    """A reservation's outcome: what was held, and the shortage when partial."""

    holds: tuple[Hold, ...]
    shortage: Decimal


class StockItem(StockPicking, Aggregate):
    """Stock of one SKU in one warehouse; no lot-and-bin on-hand ever goes negative."""

    class Opened(Aggregate.Created):
        """The warehouse started keeping the SKU."""

        sku: str
        warehouse: str

    class Received(Aggregate.Event):
        """Stock arrived in a bin as a new cost layer of a lot (a receipt or a transfer in)."""

        layer: Layer
        expires_on: date | None
        reason: str
        reference: str | None
        effective_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)
            aggregate.add_layer(self.layer, self.expires_on, self.effective_at)

    class Removed(Aggregate.Event):
        """Stock left bins: an issue, shipment, transfer out, negative adjustment or write-off."""

        picks: list[Pick]
        released: dict[str, list[Hold]]
        reason: str
        reference: str | None
        effective_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)
            aggregate.take_layers(self.picks, self.effective_at)
            aggregate.drop_holds(self.released)
            aggregate.forget_empty_lots()

    class Moved(Aggregate.Event):
        """Stock moved between bins of the warehouse; reserved stock moves with its holds."""

        picks: list[Pick]
        arrivals: list[Layer]
        released: dict[str, list[Hold]]
        held: dict[str, list[Hold]]
        effective_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)
            aggregate.take_layers(self.picks, self.effective_at)
            for layer in self.arrivals:
                aggregate.add_layer(layer, aggregate.expiry[layer.lot], self.effective_at)
            aggregate.drop_holds(self.released)
            aggregate.add_holds(self.held)
            aggregate.forget_empty_lots()

    class Reserved(Aggregate.Event):
        """Stock was reserved for a reference (an order, a pick list)."""

        reference: str
        holds: list[Hold]
        shortage: Decimal

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)
            aggregate.add_holds({self.reference: self.holds})

    class ReservationReleased(Aggregate.Event):
        """Reserved stock became available again."""

        released: dict[str, list[Hold]]
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)
            aggregate.drop_holds(self.released)

    class Counted(Aggregate.Event):
        """A lot in a bin was counted: what was found, what the ledger held, the difference
        (recorded for every count, so a count that matched is on record too)."""

        lot: str
        bin: str
        counted: Decimal
        ledger: Decimal
        effective_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)

    class LotStatusSet(Aggregate.Event):
        """A lot here was released, put on hold or quarantined."""

        lot: str
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, StockItem)
            aggregate.status[self.lot] = self.status

    def __init__(self, sku: str, warehouse: str) -> None:
        self.sku = sku
        self.warehouse = warehouse
        self.layers = {}
        self.next_layer = 1
        self.expiry = {}
        self.status = {}
        self.holds = {}
        self.history = {}

    @classmethod
    def open(cls, tenant_id: UUID, sku: str, warehouse: str) -> StockItem:
        item: StockItem = cls._create(
            cls.Opened, id=stock_item_id(tenant_id, sku, warehouse), sku=sku, warehouse=warehouse
        )
        return item

    # -- commands ---------------------------------------------------------------------------------

    def receive(
        self,
        quantity: Decimal,
        bin_code: str,
        unit_cost: Decimal,
        lot: str,
        expires_on: date | None,
        conditions: Conditions,
        *,
        reason: str = "receipt",
        reference: str | None = None,
        received_at: datetime | None = None,
    ) -> Layer:
        """Adds a cost layer of a lot to a bin."""
        if bin_code not in conditions.bins:
            raise UnknownReference(f"bin {bin_code!r} is not in {self.warehouse}")
        self.check_receipt_lot(lot, expires_on)
        layer = Layer(
            id=self.next_layer,
            lot=lot,
            bin=bin_code,
            received_at=received_at or conditions.effective_at,
            unit_cost=unit_cost,
            quantity=quantity,
        )
        self.trigger_event(
            self.Received,
            layer=layer,
            expires_on=expires_on,
            reason=reason,
            reference=reference,
            effective_at=conditions.effective_at,
        )
        return layer

    def issue(
        self,
        quantity: Decimal,
        reason: str,
        conditions: Conditions,
        *,
        lot: str | None = None,
        bin_code: str | None = None,
        reference: str | None = None,
    ) -> list[Pick]:
        """Takes unreserved stock by policy, or from the named lot and/or bin."""
        takes = self.choose(
            quantity,
            conditions,
            lot=lot,
            bin_code=bin_code,
            allow_expired=not conditions.block_expired_issue,
        )
        picks = self.picks_for(takes)
        self._remove(picks, {}, reason, reference, conditions)
        return picks

    def reserve(
        self,
        quantity: Decimal,
        reference: str,
        conditions: Conditions,
        *,
        lot: str | None = None,
        allow_partial: bool = False,
    ) -> Allocation:
        """Holds available stock for a reference: all or nothing, or what exists."""
        if lot is not None:
            self.check_named_lot(lot, conditions, allow_expired=False)
        candidates = [
            s for s in self.slices(conditions, policy_only=True) if lot is None or s.lot == lot
        ]
        takes, shortage = allocate(policy_order(conditions.product.policy, candidates), quantity)
        if shortage > ZERO and (not allow_partial or not takes):
            raise InsufficientStock(
                f"{quantity} of {self.sku} requested in {self.warehouse},"
                f" {quantity - shortage} available",
                requested=quantity,
                available=quantity - shortage,
            )
        holds = [Hold(t.lot, t.bin, t.quantity) for t in takes]
        self.trigger_event(self.Reserved, reference=reference, holds=holds, shortage=shortage)
        return Allocation(tuple(holds), shortage)

    def release(self, reference: str, reason: str = "released") -> list[Hold]:
        """Makes a reference's reserved stock available again."""
        holds = self.holds.get(reference)
        if not holds:
            raise UnknownReference(f"no reservation {reference!r} of {self.sku} here")
        self.trigger_event(
            self.ReservationReleased, released={reference: list(holds)}, reason=reason
        )
        return list(holds)

    def release_blocked(self, reference: str, conditions: Conditions) -> list[Hold]:
        """Releases a reference's holds on lots no longer usable: expired, held, quarantined."""
        blocked = [
            hold for hold in self.holds.get(reference, []) if not self._usable(hold.lot, conditions)
        ]
        if blocked:
            self.trigger_event(
                self.ReservationReleased, released={reference: blocked}, reason="reallocated"
            )
        return blocked

    def issue_reserved(
        self,
        reference: str,
        conditions: Conditions,
        *,
        quantity: Decimal | None = None,
        reason: str = "sale",
    ) -> list[Pick]:
        """Issues what a reference reserved (all, or the first `quantity` of it)."""
        holds = self.holds.get(reference)
        if not holds:
            raise UnknownReference(f"no reservation {reference!r} of {self.sku} here")
        chosen = _first(holds, quantity) if quantity is not None else list(holds)
        if quantity is not None and sum((h.quantity for h in chosen), ZERO) < quantity:
            raise InsufficientStock(
                f"{quantity} of {self.sku} requested from reservation {reference!r}",
                requested=quantity,
                available=sum((h.quantity for h in holds), ZERO),
            )
        for hold in chosen:
            self.check_named_lot(hold.lot, conditions, allow_expired=False)
        picks = self.picks_for(Take(h.lot, h.bin, h.quantity) for h in chosen)
        self._remove(picks, {reference: chosen}, reason, reference, conditions)
        return picks

    def move(
        self,
        quantity: Decimal,
        from_bin: str,
        to_bin: str,
        conditions: Conditions,
        *,
        lot: str | None = None,
        reference: str | None = None,
    ) -> list[Pick]:
        """Moves stock between bins; reserved stock only through its reservation's reference."""
        if to_bin not in conditions.bins:
            raise UnknownReference(f"bin {to_bin!r} is not in {self.warehouse}")
        if from_bin == to_bin:
            raise UnknownReference("from_bin and to_bin are the same bin")
        if reference is not None:
            holds = [
                h
                for h in self.holds.get(reference, [])
                if h.bin == from_bin and (lot is None or h.lot == lot)
            ]
            moved = _first(holds, quantity)
            if sum((h.quantity for h in moved), ZERO) < quantity:
                raise InsufficientStock(
                    f"{quantity} of {self.sku} requested from reservation {reference!r}",
                    requested=quantity,
                    available=sum((h.quantity for h in holds), ZERO),
                )
            takes = [Take(h.lot, h.bin, h.quantity) for h in moved]
            released = {reference: moved}
            held = {reference: [Hold(h.lot, to_bin, h.quantity) for h in moved]}
        else:
            takes = self.choose(
                quantity, conditions, lot=lot, bin_code=from_bin, allow_expired=lot is None
            )
            released, held = {}, {}
        picks = self.picks_for(takes)
        arrivals = [
            Layer(
                self.next_layer + i,
                p.lot,
                to_bin,
                self._layer(p.layer).received_at,
                p.unit_cost,
                p.quantity,
            )
            for i, p in enumerate(picks)
        ]
        self.check_backdated(picks, conditions.effective_at)
        self.trigger_event(
            self.Moved,
            picks=picks,
            arrivals=arrivals,
            released=released,
            held=held,
            effective_at=conditions.effective_at,
        )
        return picks

    def transfer_out(
        self,
        quantity: Decimal,
        to_warehouse: str,
        conditions: Conditions,
        *,
        lot: str | None = None,
        from_bin: str | None = None,
        reference: str | None = None,
    ) -> list[Pick]:
        """Sends unreserved stock to another warehouse (or a reservation's stock, by reference)."""
        if reference is not None:
            holds = [
                h
                for h in self.holds.get(reference, [])
                if (lot is None or h.lot == lot) and (from_bin is None or h.bin == from_bin)
            ]
            chosen = _first(holds, quantity)
            if sum((h.quantity for h in chosen), ZERO) < quantity:
                raise InsufficientStock(
                    f"{quantity} of {self.sku} requested from reservation {reference!r}",
                    requested=quantity,
                    available=sum((h.quantity for h in holds), ZERO),
                )
            picks = self.picks_for(Take(h.lot, h.bin, h.quantity) for h in chosen)
            released = {reference: chosen}
        else:
            picks = self.picks_for(self.choose(quantity, conditions, lot=lot, bin_code=from_bin))
            released = {}
        self._remove(picks, released, "transfer", reference or to_warehouse, conditions)
        return picks

    def transfer_in(
        self,
        picks: Iterable[Pick],
        received: Mapping[int, datetime],
        to_bin: str,
        conditions: Conditions,
        from_warehouse: str,
    ) -> list[Layer]:
        """Receives transferred stock: lot, expiry, receipt time and cost travel with it."""
        layers = []
        for pick in picks:
            layers.append(
                self.receive(
                    pick.quantity,
                    to_bin,
                    pick.unit_cost,
                    pick.lot,
                    pick.expires_on,
                    conditions,
                    reason="transfer",
                    reference=from_warehouse,
                    received_at=received[pick.layer],
                )
            )
        return layers

    def adjust(
        self,
        delta: Decimal,
        reason: str,
        conditions: Conditions,
        *,
        bin_code: str,
        lot: str | None,
        unit_cost: Decimal | None,
        expires_on: date | None = None,
    ) -> list[Pick] | Layer:
        """Corrects stock by a delta: a new layer when positive, picks when negative."""
        if delta > ZERO:
            if lot is None:
                raise LotRequired("a positive adjustment names its lot")
            cost = unit_cost if unit_cost is not None else self.last_cost(lot)
            if cost is None:
                raise UnknownReference(f"lot {lot!r} is new here: a unit_cost is needed")
            return self.receive(
                delta,
                bin_code,
                cost,
                lot,
                self.expiry.get(lot, expires_on),
                conditions,
                reason=reason,
            )
        takes = self.choose(
            -delta,
            conditions,
            lot=lot,
            bin_code=bin_code,
            allow_expired=True,
            any_status=True,
            any_lot_in_bin=True,
        )
        picks = self.picks_for(takes)
        self._remove(picks, {}, reason, None, conditions)
        return picks

    def count(
        self,
        counted: Decimal,
        bin_code: str,
        lot: str,
        conditions: Conditions,
        *,
        expected: Decimal | None = None,
    ) -> Decimal:
        """Records a physical count as the difference; a shortfall below reserved releases holds."""
        if bin_code not in conditions.bins:
            raise UnknownReference(f"bin {bin_code!r} is not in {self.warehouse}")
        ledger = self.on_hand(lot, bin_code)
        if expected is not None and expected != ledger:
            raise CountMismatch(
                f"{self.sku} lot {lot!r} in {bin_code}: ledger holds {ledger}, scan expected"
                f" {expected}"
            )
        difference = counted - ledger
        self.trigger_event(
            self.Counted,
            lot=lot,
            bin=bin_code,
            counted=counted,
            ledger=ledger,
            effective_at=conditions.effective_at,
        )
        if difference > ZERO:
            cost = self.last_cost(lot)
            if cost is None:
                raise UnknownReference(f"lot {lot!r} is unknown here: adjust with a unit_cost")
            self.receive(
                difference, bin_code, cost, lot, self.expiry[lot], conditions, reason="count"
            )
        elif difference < ZERO:
            shortfall = self.reserved(lot, bin_code) - counted
            released = self._release_newest(lot, bin_code, shortfall) if shortfall > ZERO else {}
            picks = self.picks_for([Take(lot, bin_code, -difference)])
            self._remove(picks, released, "count", None, conditions)
        return difference

    def set_lot_status(self, lot: str, status: LotStatus | str) -> None:
        """Mirrors a lot's status (kept by the lot itself) into this warehouse's stock."""
        value = LotStatus(status).value
        if lot in self.status and self.status[lot] != value:
            self.trigger_event(self.LotStatusSet, lot=lot, status=value)

    def write_off_expired(self, conditions: Conditions, *, lot: str | None = None) -> list[Pick]:
        """Removes all expired stock (or one expired lot), releasing its reservations."""
        if lot is not None and lot not in self.expiry:
            raise UnknownReference(f"lot {lot!r} of {self.sku} is not in {self.warehouse}")
        lots = {
            layer.lot
            for layer in self.layers.values()
            if self.is_expired(layer.lot, conditions.today) and (lot is None or layer.lot == lot)
        }
        if lot is not None and lot not in lots:
            raise UnknownReference(f"lot {lot!r} of {self.sku} here is not expired")
        takes = [Take(lt, b, self.on_hand(lt, b)) for lt, b in self.places() if lt in lots]
        released = {
            ref: [h for h in holds if h.lot in lots]
            for ref, holds in self.holds.items()
            if any(h.lot in lots for h in holds)
        }
        picks = self.picks_for(takes)
        if picks:
            self._remove(picks, released, "expiry", None, conditions)
        return picks

    # -- helpers ----------------------------------------------------------------------------------

    def _remove(
        self,
        picks: list[Pick],
        released: dict[str, list[Hold]],
        reason: str,
        reference: str | None,
        conditions: Conditions,
    ) -> None:
        self.check_backdated(picks, conditions.effective_at)
        self.trigger_event(
            self.Removed,
            picks=picks,
            released=released,
            reason=reason,
            reference=reference,
            effective_at=conditions.effective_at,
        )


def _first(holds: Iterable[Hold], quantity: Decimal) -> list[Hold]:
    """The first holds making up `quantity` (the last one cut to fit)."""
    chosen = []
    remaining = quantity
    for hold in holds:
        if remaining <= ZERO:
            break
        taken = min(hold.quantity, remaining)
        chosen.append(Hold(hold.lot, hold.bin, taken))
        remaining -= taken
    return chosen
