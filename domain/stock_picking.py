"""A stock item's rules: which lots may be taken, what stock to pick, and backdating checks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from domain.allocation import LotStatus, Take, allocate, policy_order
from domain.errors import (
    InsufficientStock,
    LotConflict,
    LotExpired,
    LotUnavailable,
    UnknownReference,
)
from domain.quantities import ZERO
from domain.stock_state import Conditions, StockState
from domain.values import Hold, Movement, Pick


class StockPicking(StockState):
    """Rules and stock selection on top of a stock item's state; commands build on these."""

    # -- rules ------------------------------------------------------------------------------------

    def check_named_lot(
        self, lot: str, conditions: Conditions, *, allow_expired: bool, any_status: bool = False
    ) -> None:
        """A named lot must be here, unexpired (unless allowed) and released (unless allowed)."""
        if lot not in self.expiry:
            raise UnknownReference(f"lot {lot!r} of {self.sku} is not in {self.warehouse}")
        if self.is_expired(lot, conditions.today) and not allow_expired:
            raise LotExpired(f"lot {lot!r} of {self.sku} expired on {self.expiry[lot]}")
        status = self.status[lot]
        if status != LotStatus.RELEASED.value and not any_status:
            raise LotUnavailable(f"lot {lot!r} of {self.sku} is on {status}")

    def check_receipt_lot(self, lot: str, expires_on: date | None) -> None:
        if lot in self.expiry and expires_on != self.expiry[lot]:
            raise LotConflict(
                f"lot {lot!r} of {self.sku} expires on {self.expiry[lot]}, not {expires_on}"
            )

    def choose(
        self,
        wanted: Decimal,
        conditions: Conditions,
        *,
        lot: str | None,
        bin_code: str | None,
        allow_expired: bool = False,
        any_status: bool = False,
        any_lot_in_bin: bool = False,
    ) -> list[Take]:
        """The unreserved stock to take, all or nothing, in policy order.

        Without a lot or bin, only what a policy may pick. A named lot must be here, unexpired
        (unless `allow_expired`) and released (unless `any_status`). A named bin, without a lot,
        offers its usable lots (or all of them with `any_lot_in_bin`), pickable or not.
        """
        if bin_code is not None and bin_code not in conditions.bins:
            raise UnknownReference(f"bin {bin_code!r} is not in {self.warehouse}")
        if lot is not None:
            self.check_named_lot(
                lot, conditions, allow_expired=allow_expired, any_status=any_status
            )
            candidates = [
                s
                for s in self.slices(conditions, policy_only=False)
                if s.lot == lot and (bin_code is None or s.bin == bin_code)
            ]
        elif bin_code is not None:
            candidates = [
                s
                for s in self.slices(conditions, policy_only=False)
                if s.bin == bin_code and (any_lot_in_bin or self._usable(s.lot, conditions))
            ]
        else:
            candidates = self.slices(conditions, policy_only=True)
        takes, shortage = allocate(policy_order(conditions.product.policy, candidates), wanted)
        if shortage > ZERO:
            raise InsufficientStock(
                f"{wanted} of {self.sku} requested in {self.warehouse},"
                f" {wanted - shortage} available",
                requested=wanted,
                available=wanted - shortage,
            )
        return takes

    def picks_for(self, takes: Iterable[Take]) -> list[Pick]:
        """The cost layers consumed by takes: a lot's layers in a bin, earliest received first."""
        picks: list[Pick] = []
        for take in takes:
            remaining = take.quantity
            layers = sorted(
                (
                    layer
                    for layer in self.layers.values()
                    if layer.lot == take.lot and layer.bin == take.bin
                ),
                key=lambda item: (item.received_at, item.id),
            )
            for layer in layers:
                if remaining <= ZERO:
                    break
                used = min(layer.quantity, remaining)
                picks.append(
                    Pick(
                        layer.id,
                        layer.lot,
                        layer.bin,
                        used,
                        layer.unit_cost,
                        self.expiry[layer.lot],
                    )
                )
                remaining -= used
        return picks

    def _release_newest(self, lot: str, bin_code: str, amount: Decimal) -> dict[str, list[Hold]]:
        released: dict[str, list[Hold]] = {}
        for reference in reversed(list(self.holds)):
            for hold in self.holds[reference]:
                if amount <= ZERO:
                    return released
                if hold.lot == lot and hold.bin == bin_code:
                    taken = min(hold.quantity, amount)
                    released.setdefault(reference, []).append(Hold(lot, bin_code, taken))
                    amount -= taken
        return released

    def check_backdated(self, picks: Iterable[Pick], at: datetime) -> None:
        """A backdated outflow must keep its place non-negative from its effective time to now."""
        wanted: dict[str, Decimal] = {}
        for pick in picks:
            place = f"{pick.lot}\x1f{pick.bin}"
            wanted[place] = wanted.get(place, ZERO) + pick.quantity
        for place, amount in wanted.items():
            movements = self.history.get(place, [])
            if not movements or at >= movements[-1].at:
                continue  # not backdated here: today's on-hand was already checked
            lowest = lowest_balance_from(movements, at)
            if lowest < amount:
                lot, bin_code = place.split("\x1f")
                raise InsufficientStock(
                    f"{amount} of {self.sku} lot {lot!r} in {bin_code} at {at.isoformat()}:"
                    f" only {max(lowest, ZERO)} there from then until now",
                    requested=amount,
                    available=max(lowest, ZERO),
                )


def lowest_balance_from(movements: list[Movement], at: datetime) -> Decimal:
    """The lowest running on-hand of a place from `at` (inclusive) to its last movement."""
    balance = sum((m.delta for m in movements if m.at <= at), ZERO)
    lowest = balance
    for movement in movements:
        if movement.at > at:
            balance += movement.delta
            lowest = min(lowest, balance)
    return lowest
