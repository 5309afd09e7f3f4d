"""The message the relay publishes for each stored event, and how consumers read it back.

One message per event, keyed by tenant id, value a JSON object (``ENVELOPE`` is its layout's
version)::

    {"envelope": 1, "store_id": "…", "event_id": "…", "tenant_id": "…", "position": 42,
     "stream_id": "…", "stream_version": 3, "type": "stock.received", "type_version": 1,
     "recorded_at": "…Z", "effective_at": "…Z", "actor": {"kind": "api_key", "id": "…",
     "roles": ["integrator"]}, "request_id": "…", "data": {…}, "hash": "<hex>",
     "payload": "<base64>"}

`type`, `type_version` and `data` are the public event (``GET /v1/event-types``); they are null
for an internal event, which is published too, so that every position of a tenant arrives and a
consumer can tell a gap from an event it does not care about. `payload` is the exact stored bytes
(as in the audit feed): with `hash` anyone can recompute the tenant's hash chain, and the ledger's
own consumers decode it to feed the same projections as the in-process runner.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

import orjson

from eventstore.records import RecordedEvent
from ledger.public_events import Origins, public_event
from projections.events import LedgerEvent, decode

ENVELOPE = 1
#: Message headers beside the value, for routing without parsing it.
HEADER_TYPE = "ledger-type"
HEADER_POSITION = "ledger-position"


class BadEnvelope(ValueError):
    """A message that is not an envelope of this ledger (a poison message)."""


@dataclass(frozen=True)
class Envelope:
    """One published event, as consumers read it."""

    store_id: UUID
    event_id: str
    tenant_id: UUID
    position: int
    stream_id: UUID
    stream_version: int
    type: str | None
    type_version: int | None
    recorded_at: str
    effective_at: str
    actor: dict[str, Any] | None
    request_id: str | None
    data: dict[str, Any] | None
    hash: bytes
    payload: bytes

    @property
    def recorded(self) -> RecordedEvent:
        """The stored event it carries, as the store would return it."""
        header = orjson.loads(self.payload[: self.payload.index(b"\n")])
        return RecordedEvent(
            tenant_id=self.tenant_id,
            position=self.position,
            stream_id=self.stream_id,
            version=self.stream_version,
            topic=str(header["topic"]),
            payload=self.payload,
            hash=self.hash,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "envelope": ENVELOPE,
            "store_id": _text(self.store_id),
            "event_id": self.event_id,
            "tenant_id": _text(self.tenant_id),
            "position": self.position,
            "stream_id": _text(self.stream_id),
            "stream_version": self.stream_version,
            "type": self.type,
            "type_version": self.type_version,
            "recorded_at": self.recorded_at,
            "effective_at": self.effective_at,
            "actor": self.actor,
            "request_id": self.request_id,
            "data": self.data,
            "hash": self.hash.hex(),
            "payload": base64.b64encode(self.payload).decode(),
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.as_dict())

    @property
    def key(self) -> bytes:
        """The message key: the tenant id, so a tenant's events stay in order in one partition."""
        return _text(self.tenant_id).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_TYPE, (self.type or "").encode()),
            (HEADER_POSITION, str(self.position).encode()),
        ]


@lru_cache(maxsize=4096)
def _text(value: UUID) -> str:
    """A UUID's text (the store's, a tenant's and a stream's ids recur message after message)."""
    return str(value)


def envelope_of(store_id: UUID, event: LedgerEvent, payload: bytes, origins: Origins) -> Envelope:
    """The envelope of a decoded stored event (`payload`: its stored bytes)."""
    origins.learn(event)
    public = public_event(event, origins)
    header = event.header
    recorded = str(header.get("recorded_at"))
    return Envelope(
        store_id=store_id,
        event_id=public.event_id if public is not None else event_id(event),
        tenant_id=event.tenant_id,
        position=event.position,
        stream_id=event.stream_id,
        stream_version=event.version,
        type=public.type if public is not None else None,
        type_version=public.version if public is not None else None,
        recorded_at=recorded,
        effective_at=str(header.get("effective_at") or recorded),
        actor=header.get("actor"),
        request_id=header.get("request_id"),
        data=public.data if public is not None else None,
        hash=event.hash,
        payload=payload,
    )


def envelope_of_recorded(store_id: UUID, recorded: RecordedEvent, origins: Origins) -> Envelope:
    return envelope_of(store_id, decode(recorded), recorded.payload, origins)


def event_id(event: LedgerEvent) -> str:
    """The event's stable id (the same as its public event's)."""
    return str(uuid5(event.stream_id, str(event.version)))


def parse(value: bytes | None) -> Envelope:
    """The envelope in a message's value, or BadEnvelope saying what is wrong with it."""
    if value is None:
        raise BadEnvelope("the message has no value")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise BadEnvelope(f"not JSON: {error}") from None
    if not isinstance(doc, dict):
        raise BadEnvelope("not a JSON object")
    if doc.get("envelope") != ENVELOPE:
        raise BadEnvelope(f"unknown envelope version {doc.get('envelope')!r}")
    try:
        envelope = Envelope(
            store_id=UUID(doc["store_id"]),
            event_id=str(doc["event_id"]),
            tenant_id=UUID(doc["tenant_id"]),
            position=_int(doc["position"]),
            stream_id=UUID(doc["stream_id"]),
            stream_version=_int(doc["stream_version"]),
            type=_optional_str(doc.get("type")),
            type_version=None if doc.get("type_version") is None else _int(doc["type_version"]),
            recorded_at=str(doc["recorded_at"]),
            effective_at=str(doc["effective_at"]),
            actor=doc.get("actor"),
            request_id=_optional_str(doc.get("request_id")),
            data=doc.get("data"),
            hash=bytes.fromhex(doc["hash"]),
            payload=base64.b64decode(doc["payload"], validate=True),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadEnvelope(f"{type(error).__name__}: {error}") from None
    if envelope.position < 1 or b"\n" not in envelope.payload:
        raise BadEnvelope("not a stored event")
    return envelope


def _int(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"not an integer: {value!r}")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
