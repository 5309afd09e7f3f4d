"""Stored events as projections read them: header, position and plain decoded data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from eventstore.records import RecordedEvent


@dataclass(frozen=True)
class LedgerEvent:
    """One event of a tenant: where it stands, what it is, when it counts, and its data."""

    tenant_id: UUID
    position: int
    stream_id: UUID
    version: int
    kind: str  # the event class's qualified name, e.g. "StockItem.Received"
    recorded_at: datetime
    effective_at: datetime
    header: dict[str, Any]
    data: dict[str, Any]
    hash: bytes = b""


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "decimal_str": Decimal,
    "date_iso": date.fromisoformat,
    "datetime_iso": datetime.fromisoformat,
    "uuid_hex": UUID,
}


def _plain(value: Any) -> Any:
    """A transcoded JSON value as plain Python: decimals, dates, datetimes, UUIDs, dicts."""
    kind = type(value)
    if kind is dict:
        return _plain_dict(value)
    if kind is list:
        return _plain_list(value)
    return value


def _plain_dict(value: dict[str, Any]) -> Any:
    """A freshly parsed object, changed in place: only containers are walked into."""
    kind = value.get("_type_")
    if kind is not None and "_data_" in value:
        inner = value["_data_"]
        decoder = _DECODERS.get(kind)
        return decoder(inner) if decoder is not None else _plain(inner)
    for key, item in value.items():
        found = type(item)
        if found is dict:
            value[key] = _plain_dict(item)
        elif found is list:
            value[key] = _plain_list(item)
    return value


def _plain_list(value: list[Any]) -> list[Any]:
    for index, item in enumerate(value):
        found = type(item)
        if found is dict:
            value[index] = _plain_dict(item)
        elif found is list:
            value[index] = _plain_list(item)
    return value


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def decode(event: RecordedEvent) -> LedgerEvent:
    """A recorded event with its payload decoded for a projection's handlers."""
    payload = event.payload
    cut = payload.find(b"\n")
    if cut < 0:
        raise ValueError("payload has no header separator")
    view = memoryview(payload)
    header: dict[str, Any] = orjson.loads(view[:cut])
    recorded = header["recorded_at"]
    recorded_at = _instant(recorded)
    effective: str | None = header.get("effective_at")
    effective_at = recorded_at if not effective or effective == recorded else _instant(effective)
    return LedgerEvent(
        tenant_id=event.tenant_id,
        position=event.position,
        stream_id=event.stream_id,
        version=event.version,
        kind=event.topic.rpartition(":")[2],
        recorded_at=recorded_at,
        effective_at=effective_at,
        header=header,
        data=_plain(orjson.loads(view[cut + 1 :])),
        hash=event.hash,
    )
