"""The hash chain and the payload envelope, as pure functions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import UUID, uuid4

from hypothesis import given
from hypothesis import strategies as st

from domain.metadata import EventMetadata
from eventstore.envelope import ZERO_HASH, chain_all, decode_header, encode_payload, payload_state
from eventstore.records import RecordedEvent, TenantHead
from eventstore.verify import verify_chain

TENANT = UUID("00000000-0000-0000-0000-00000000000a")


def recorded(payload_states: list[bytes]) -> tuple[list[RecordedEvent], TenantHead]:
    stream = uuid4()
    payloads = [
        encode_payload(TENANT, stream, i + 1, "t:E", state, EventMetadata(), datetime.now(UTC))
        for i, state in enumerate(payload_states)
    ]
    hashes = chain_all(ZERO_HASH, payloads)
    events = [
        RecordedEvent(TENANT, i + 1, stream, i + 1, "t:E", payload, digest)
        for i, (payload, digest) in enumerate(zip(payloads, hashes, strict=True))
    ]
    head = TenantHead(TENANT, len(events), hashes[-1] if hashes else ZERO_HASH)
    return events, head


def test_the_first_hash_chains_from_32_zero_bytes() -> None:
    assert chain_all(ZERO_HASH, [b"x"]) == [hashlib.sha256(bytes(32) + b"x").digest()]


def test_a_payload_keeps_the_state_bytes_exactly_after_its_header() -> None:
    state = b'{"a":"line\\nbreak"}'
    payload = encode_payload(TENANT, uuid4(), 3, "t:E", state, EventMetadata(), datetime.now(UTC))
    assert payload_state(payload) == state
    assert decode_header(payload)["version"] == 3


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=12), st.data())
def test_changing_any_single_payload_is_found_at_its_position(
    states: list[bytes], data: st.DataObject
) -> None:
    events, head = recorded(states)
    assert verify_chain(TENANT, events, head).ok
    index = data.draw(st.integers(0, len(events) - 1))
    victim = events[index]
    events[index] = RecordedEvent(
        victim.tenant_id,
        victim.position,
        victim.stream_id,
        victim.version,
        victim.topic,
        victim.payload + b"!",
        victim.hash,
    )
    result = verify_chain(TENANT, events, head)
    assert (result.ok, result.first_bad_position) == (False, index + 1)


@given(st.lists(st.binary(max_size=40), min_size=2, max_size=12), st.data())
def test_removing_any_event_is_found_at_its_position(
    states: list[bytes], data: st.DataObject
) -> None:
    events, head = recorded(states)
    index = data.draw(st.integers(0, len(events) - 1))
    del events[index]
    assert verify_chain(TENANT, events, head).first_bad_position == index + 1
