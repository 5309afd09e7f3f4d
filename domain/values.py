"""Value objects recorded inside stock events, and their transcodings for the event store."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding


@dataclasses.dataclass(frozen=True)
class Bin:
    """A place in a warehouse; stock in a non-pickable bin is on hand but never picked."""

    code: str
    zone: str | None
    pickable: bool


@dataclasses.dataclass(frozen=True)
class Layer:
    """A cost layer: what one receipt (or arrival) put into one bin of one lot, and what remains."""

    id: int
    lot: str
    bin: str
    received_at: datetime
    unit_cost: Decimal
    quantity: Decimal


@dataclasses.dataclass(frozen=True)
class Pick:
    """Stock that left (or moved from) a place: lot, bin, quantity and the cost layer consumed."""

    layer: int
    lot: str
    bin: str
    quantity: Decimal
    unit_cost: Decimal
    expires_on: date | None

    @property
    def cost(self) -> Decimal:
        return self.quantity * self.unit_cost


@dataclasses.dataclass(frozen=True)
class Movement:
    """A change of one place's on-hand at its effective (business) time."""

    at: datetime
    delta: Decimal


@dataclasses.dataclass(frozen=True)
class Hold:
    """Reserved stock of one lot in one bin for a reference."""

    lot: str
    bin: str
    quantity: Decimal


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class DataclassAsDict(Transcoding):
    """A frozen dataclass as a dict of its fields (nested values are transcoded in turn)."""

    def __init__(self, cls: type[Any], name: str) -> None:
        self.type = cls
        self.name = name
        self.fields = tuple(f.name for f in dataclasses.fields(cls))

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self.fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


def register_value_transcodings(transcoder: JSONTranscoder) -> None:
    """Dates and the stock value objects, for events that carry them."""
    transcoder.register(DateAsISO())
    for cls, name in (
        (Layer, "layer"),
        (Pick, "pick"),
        (Hold, "hold"),
        (Bin, "bin"),
        (Movement, "movement"),
    ):
        transcoder.register(DataclassAsDict(cls, name))
