"""Stored events as projections read them: header, position and plain decoded data."""

from __future__ import annotations

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


def _plain(value: Any) -> Any:
    """A transcoded JSON value as plain Python: decimals, dates, datetimes, UUIDs, dicts."""
    if isinstance(value, dict):
        kind = value.get("_type_")
        if kind is not None and "_data_" in value:
            inner = value["_data_"]
            decoder = _DECODERS.get(kind)
            return decoder(inner) if decoder is not None else _plain(inner)
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


_DECODERS: dict[str, Any] = {
    "decimal_str": Decimal,
    "date_iso": date.fromisoformat,
    "datetime_iso": datetime.fromisoformat,
    "uuid_hex": UUID,
}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def decode(event: RecordedEvent) -> LedgerEvent:
    """A recorded event with its payload decoded for a projection's handlers."""
    header = event.header
    recorded_at = _instant(header["recorded_at"])
    effective = header.get("effective_at")
    return LedgerEvent(
        tenant_id=event.tenant_id,
        position=event.position,
        stream_id=event.stream_id,
        version=event.version,
        kind=event.topic.rpartition(":")[2],
        recorded_at=recorded_at,
        effective_at=_instant(effective) if effective else recorded_at,
        header=header,
        data=_plain(orjson.loads(event.state)),
        hash=event.hash,
    )
