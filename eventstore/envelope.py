"""The stored payload of an event and the hash chain over payloads.

A payload is ``header + b"\\n" + state``: the header is compact JSON (never a raw newline) with the
tenant, stream, version, topic and the event's metadata; the state is the library's serialised
event. hash(n) = sha256(hash(n-1) || payload(n)), hash(0) = 32 zero bytes. Anyone holding the
payloads of a tenant in position order can recompute every hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

from domain.metadata import EventMetadata

ZERO_HASH = bytes(32)
ENVELOPE_VERSION = 1
_SEPARATOR = b"\n"


def encode_payload(
    tenant_id: UUID,
    stream_id: UUID | str,
    version: int,
    topic: str,
    state: bytes,
    meta: EventMetadata,
    recorded_at: datetime | str,
) -> bytes:
    """The exact bytes stored, hashed and returned by the audit feed for one event."""
    recorded = recorded_at if isinstance(recorded_at, str) else _iso(recorded_at)
    effective = recorded if meta.effective_at is None else _iso(meta.effective_at)
    header = {
        "v": ENVELOPE_VERSION,
        "tenant_id": str(tenant_id),
        "stream_id": str(stream_id),
        "version": version,
        "topic": topic,
        "recorded_at": recorded,
        "effective_at": effective,
        "actor": meta.actor.as_dict(),
        "request_id": meta.request_id,
        "idempotency_key": meta.idempotency_key,
        "causation_id": None if meta.causation_id is None else str(meta.causation_id),
    }
    return orjson.dumps(header) + _SEPARATOR + state


def encode_payloads(
    tenant_id: UUID, stored_events: Sequence[StoredEvent], meta: EventMetadata | None
) -> list[bytes]:
    """The payloads of one save: the same metadata and recorded time for each of its events."""
    recorded_at = _iso(utc_now())
    return [
        encode_payload(
            tenant_id,
            s.originator_id,
            s.originator_version,
            s.topic,
            s.state,
            meta or EventMetadata(),
            recorded_at,
        )
        for s in stored_events
    ]


def split_payload(payload: bytes) -> tuple[bytes, bytes]:
    """(header bytes, state bytes) of a stored payload."""
    cut = payload.find(_SEPARATOR)
    if cut < 0:
        raise ValueError("payload has no header separator")
    return payload[:cut], payload[cut + 1 :]


def payload_state(payload: bytes) -> bytes:
    """The library's serialised event inside a payload."""
    return payload[payload.index(_SEPARATOR) + 1 :]


def decode_header(payload: bytes) -> dict[str, Any]:
    """The metadata header of a stored payload."""
    header: dict[str, Any] = orjson.loads(split_payload(payload)[0])
    return header


def chain(previous: bytes, payload: bytes) -> bytes:
    """The hash of a payload following `previous` in its tenant's chain."""
    return hashlib.sha256(previous + payload).digest()


def chain_all(previous: bytes, payloads: Iterable[bytes]) -> list[bytes]:
    """The hashes of consecutive payloads following `previous`."""
    hashes = []
    for payload in payloads:
        previous = chain(previous, payload)
        hashes.append(previous)
    return hashes


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
