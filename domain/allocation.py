"""Allocation rules as pure functions: which stock a policy takes, in which order, how much."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from domain.quantities import ZERO


class RemovalPolicy(StrEnum):
    """FIFO: first received, first out. FEFO: first expiring, first out."""

    FIFO = "fifo"
    FEFO = "fefo"


class LotStatus(StrEnum):
    """Only released lots are allocated or shipped."""

    RELEASED = "released"
    HOLD = "hold"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class Slice:
    """The stock of one lot in one bin that a policy may take, with what orders it."""

    lot: str
    bin: str
    expires_on: date | None
    received_at: datetime
    available: Decimal


@dataclass(frozen=True)
class Take:
    """A quantity taken from one slice."""

    lot: str
    bin: str
    quantity: Decimal


def fefo_key(item: Slice) -> tuple[bool, date, datetime, str, str]:
    """Earliest expiry first, undated last, then earliest receipt, lot id, bin code."""
    return (
        item.expires_on is None,
        item.expires_on or date.max,
        item.received_at,
        item.lot,
        item.bin,
    )


def fifo_key(item: Slice) -> tuple[datetime, str, str]:
    """Earliest receipt first, then lot id, then bin code."""
    return (item.received_at, item.lot, item.bin)


def policy_order(policy: RemovalPolicy, slices: Iterable[Slice]) -> list[Slice]:
    """The slices in the order the policy takes them."""
    if policy is RemovalPolicy.FEFO:
        return sorted(slices, key=fefo_key)
    return sorted(slices, key=fifo_key)


def allocate(ordered: Iterable[Slice], wanted: Decimal) -> tuple[list[Take], Decimal]:
    """Takes `wanted` from the slices in order: the takes, and the shortage (0 when filled)."""
    takes: list[Take] = []
    remaining = wanted
    for item in ordered:
        if remaining <= ZERO:
            break
        taken = min(item.available, remaining)
        if taken > ZERO:
            takes.append(Take(item.lot, item.bin, taken))
            remaining -= taken
    return takes, remaining
