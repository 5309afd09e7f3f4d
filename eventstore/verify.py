"""Recomputes a tenant's hash chain and reports the first position that does not match."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import orjson

from eventstore.envelope import ZERO_HASH, chain
from eventstore.records import ChainHash, ChainRow, RecordedEvent, TenantHead, Verification


def verify_chain(
    tenant_id: UUID, events: Iterable[RecordedEvent], head: TenantHead
) -> Verification:
    """Checks positions 1..head in order: no gap, hashes chained, headers matching their rows."""
    previous = ZERO_HASH
    expected = 1
    for event in events:
        problem = _problem(tenant_id, event, expected, previous)
        if problem is not None:
            return _bad(expected, previous, problem)
        previous = event.hash
        expected += 1
    if head.position != expected - 1:
        return _bad(expected, previous, f"head is at {head.position}, last event at {expected - 1}")
    if head.hash != previous:
        return _bad(expected - 1, previous, "head hash differs from the last event's hash")
    return Verification(
        ok=True, checked_to_position=expected - 1, first_bad_position=None, head_hash=previous
    )


def chain_hash_at(rows: Iterable[ChainRow], position: int) -> ChainHash:
    """Recomputes the chain over rows from position 1 (in order) and stops at `position`.

    Only the payloads count, not the stored hashes: a history rewritten with consistent new
    hashes still leads elsewhere than a checkpoint taken before.
    """
    previous, expected = ZERO_HASH, 1
    if position >= 1:
        for row_position, payload, _ in rows:
            if row_position != expected:
                return ChainHash(position, None, f"position {expected} is missing")
            previous = chain(previous, payload)
            if expected == position:
                return ChainHash(position, previous)
            expected += 1
    return ChainHash(position, None, f"no event at position {position} (last: {expected - 1})")


def _problem(tenant_id: UUID, event: RecordedEvent, expected: int, previous: bytes) -> str | None:
    if event.position != expected:
        return f"position {expected} is missing"
    if chain(previous, event.payload) != event.hash:
        return "hash does not match the payload and the previous hash"
    try:
        header = event.header
    except (ValueError, orjson.JSONDecodeError):
        return "payload header is unreadable"
    recorded = (
        header.get("tenant_id"),
        header.get("stream_id"),
        header.get("version"),
        header.get("topic"),
    )
    if recorded != (str(tenant_id), str(event.stream_id), event.version, event.topic):
        return "row columns differ from the payload header"
    return None


def _bad(position: int, head_hash: bytes, reason: str) -> Verification:
    return Verification(
        ok=False,
        checked_to_position=position - 1,
        first_bad_position=position,
        head_hash=head_hash,
        reason=reason,
    )
