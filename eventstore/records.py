"""What the store returns when read: recorded events, tenant heads, verification results."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any
from uuid import UUID

from eventstore.envelope import decode_header, payload_state

#: One stored event as the hash chain sees it: (position, payload, hash), nothing decoded.
ChainRow = tuple[int, bytes, bytes]


@dataclass(frozen=True)
class RecordedEvent:
    """One stored event of a tenant, at its position, with its payload and chained hash."""

    tenant_id: UUID
    position: int
    stream_id: UUID
    version: int
    topic: str
    payload: bytes
    hash: bytes

    @property
    def state(self) -> bytes:
        """The library's serialised event (what a mapper decodes)."""
        return payload_state(self.payload)

    @cached_property
    def header(self) -> dict[str, Any]:
        """Tenant, stream, version, topic, times and metadata as recorded."""
        return decode_header(self.payload)


@dataclass(frozen=True)
class TenantHead:
    """A tenant's last position and the hash at it (0 and 32 zero bytes before any event)."""

    tenant_id: UUID
    position: int
    hash: bytes


@dataclass(frozen=True)
class TrackerLag:
    """How far one tracker (a projection, the relay) is behind a tenant's head."""

    tenant_id: UUID
    head: int
    tracked: int

    @property
    def lag(self) -> int:
        return self.head - self.tracked


@dataclass(frozen=True)
class Verification:
    """The outcome of recomputing a tenant's hash chain from its stored payloads."""

    ok: bool
    checked_to_position: int
    first_bad_position: int | None
    head_hash: bytes
    reason: str | None = None


@dataclass(frozen=True)
class ChainHash:
    """The hash a tenant's chain, recomputed from its stored payloads, reaches at a position.

    `hash` is None when the chain does not reach the position; `reason` then says why.
    """

    position: int
    hash: bytes | None
    reason: str | None = None
