"""A stock item's state: its cost layers, lots and holds, how events change them, and queries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from domain.allocation import LotStatus, Slice
from domain.catalog import Bin, ProductRules
from domain.quantities import ZERO
from domain.values import Hold, Layer, Movement, Pick

#: Movements kept apart per place for checking backdated entries.
HISTORY_DEPTH = 64


@dataclass(frozen=True)
class Conditions:
    """What a stock command needs from outside its stream: product, bins, date, tenant rules."""

    product: ProductRules
    bins: Mapping[str, Bin]
    today: date
    effective_at: datetime
    block_expired_issue: bool = True
    timezone: str = "UTC"  # the warehouse's

    @property
    def business_date(self) -> date:
        """The entry's business date: its effective time's date in the warehouse's time zone."""
        return self.effective_at.astimezone(ZoneInfo(self.timezone)).date()


class StockState:
    """The state of one SKU's stock in one warehouse, its changes by events, and its queries."""

    sku: str
    warehouse: str
    layers: dict[str, Layer]
    next_layer: int
    expiry: dict[str, date | None]
    status: dict[str, str]
    holds: dict[str, list[Hold]]
    # Per place ("lot\x1fbin"): its latest on-hand changes by effective time since it was
    # last empty; what backdated entries are checked against.
    history: dict[str, list[Movement]]

    # -- state changes (called only when applying events) --------------------------------------

    def add_layer(self, layer: Layer, expires_on: date | None, at: datetime) -> None:
        self.layers[str(layer.id)] = layer
        self.note(layer.lot, layer.bin, at, layer.quantity)
        self.next_layer = max(self.next_layer, layer.id + 1)
        self.expiry.setdefault(layer.lot, expires_on)
        self.status.setdefault(layer.lot, LotStatus.RELEASED.value)

    def take_layers(self, picks: Iterable[Pick], at: datetime) -> None:
        for pick in picks:
            self.note(pick.lot, pick.bin, at, -pick.quantity)
            key = str(pick.layer)
            left = self.layers[key].quantity - pick.quantity
            if left:
                self.layers[key] = replace(self.layers[key], quantity=left)
            else:
                del self.layers[key]

    def note(self, lot: str, bin_code: str, at: datetime, delta: Decimal) -> None:
        """Records a movement; a place's history restarts whenever it becomes empty.

        Only the latest HISTORY_DEPTH movements are kept apart; older ones are summed into one
        at the time of the last of them, so a backdated entry before that time sees no stock
        (refused: the safe side) and the state stays small.
        """
        place = f"{lot}\x1f{bin_code}"
        movements = [*self.history.get(place, []), Movement(at, delta)]
        movements.sort(key=lambda m: m.at)
        if sum((m.delta for m in movements), ZERO) == ZERO:
            self.history.pop(place, None)
            return
        if len(movements) > HISTORY_DEPTH:
            old, movements = movements[: -HISTORY_DEPTH + 1], movements[-HISTORY_DEPTH + 1 :]
            movements.insert(0, Movement(old[-1].at, sum((m.delta for m in old), ZERO)))
        self.history[place] = movements

    def forget_empty_lots(self) -> None:
        """Lots without stock or reservations here leave the state (their registry keeps them)."""
        live = {layer.lot for layer in self.layers.values()}
        live.update(hold.lot for holds in self.holds.values() for hold in holds)
        for lot in [lot for lot in self.expiry if lot not in live]:
            del self.expiry[lot]
            self.status.pop(lot, None)

    def add_holds(self, holds: Mapping[str, Iterable[Hold]]) -> None:
        for reference, added in holds.items():
            merged = _merge(self.holds.get(reference, []), added, +1)
            if merged:
                self.holds[reference] = merged

    def drop_holds(self, holds: Mapping[str, Iterable[Hold]]) -> None:
        for reference, dropped in holds.items():
            left = _merge(self.holds.get(reference, []), dropped, -1)
            if left:
                self.holds[reference] = left
            else:
                self.holds.pop(reference, None)

    # -- queries ----------------------------------------------------------------------------------

    def on_hand(self, lot: str | None = None, bin_code: str | None = None) -> Decimal:
        return sum(
            (
                layer.quantity
                for layer in self.layers.values()
                if (lot is None or layer.lot == lot) and (bin_code is None or layer.bin == bin_code)
            ),
            ZERO,
        )

    def reserved(self, lot: str | None = None, bin_code: str | None = None) -> Decimal:
        return sum(
            (
                hold.quantity
                for holds in self.holds.values()
                for hold in holds
                if (lot is None or hold.lot == lot) and (bin_code is None or hold.bin == bin_code)
            ),
            ZERO,
        )

    def is_expired(self, lot: str, today: date) -> bool:
        expires_on = self.expiry.get(lot)
        return expires_on is not None and expires_on < today

    def places(self) -> list[tuple[str, str]]:
        """Every (lot, bin) with stock, in receipt order of their first layer."""
        seen: dict[tuple[str, str], None] = {}
        for layer in sorted(self.layers.values(), key=lambda item: item.id):
            seen.setdefault((layer.lot, layer.bin), None)
        return list(seen)

    def slices(self, conditions: Conditions, *, policy_only: bool) -> list[Slice]:
        """Unreserved stock per (lot, bin); with `policy_only`, only what a policy may pick."""
        result = []
        for lot, bin_code in self.places():
            if policy_only and not self._eligible(lot, bin_code, conditions):
                continue
            free = self.on_hand(lot, bin_code) - self.reserved(lot, bin_code)
            if free > ZERO:
                received_at = min(
                    layer.received_at
                    for layer in self.layers.values()
                    if layer.lot == lot and layer.bin == bin_code
                )
                result.append(Slice(lot, bin_code, self.expiry[lot], received_at, free))
        return result

    def available(self, conditions: Conditions) -> Decimal:
        """What a policy may still reserve or issue: eligible, unreserved stock."""
        return sum((s.available for s in self.slices(conditions, policy_only=True)), ZERO)

    def _eligible(self, lot: str, bin_code: str, conditions: Conditions) -> bool:
        place = conditions.bins.get(bin_code)
        return place is not None and place.pickable and self._usable(lot, conditions)

    def _usable(self, lot: str, conditions: Conditions) -> bool:
        return self.status.get(lot) == LotStatus.RELEASED.value and not self.is_expired(
            lot, conditions.today
        )

    def last_cost(self, lot: str) -> Decimal | None:
        layers = [layer for layer in self.layers.values() if layer.lot == lot]
        return max(layers, key=lambda item: item.id).unit_cost if layers else None

    def _layer(self, layer_id: int) -> Layer:
        return self.layers[str(layer_id)]


def _merge(current: Iterable[Hold], change: Iterable[Hold], sign: int) -> list[Hold]:
    """Holds per (lot, bin) after adding (sign +1) or removing (sign -1) some."""
    totals: dict[tuple[str, str], Decimal] = {}
    for hold in current:
        totals[(hold.lot, hold.bin)] = totals.get((hold.lot, hold.bin), ZERO) + hold.quantity
    for hold in change:
        key = (hold.lot, hold.bin)
        totals[key] = totals.get(key, ZERO) + sign * hold.quantity
    return [Hold(lot, bin_code, q) for (lot, bin_code), q in totals.items() if q > ZERO]
