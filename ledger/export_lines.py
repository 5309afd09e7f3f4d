"""The lines of the audit export: one NDJSON line per stored event (see `ledger.audit`)."""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from eventstore.records import ChainRow


def page_lines(rows: Sequence[ChainRow], previous_position: int, previous_hash: bytes) -> bytes:
    """The lines of a page; `previous_*` is the row before its first (0: none)."""
    prev: str | None = previous_hash.hex()
    lines = []
    for position, payload, digest in rows:
        current = digest.hex()
        if position != previous_position + 1:
            prev = None  # that row is missing: its hash is not known
        lines.append(line(position, payload, prev, current))
        previous_position, prev = position, current
    return b"".join(lines)


FIELDS = (
    "stream_id",
    "version",
    "topic",
    "recorded_at",
    "effective_at",
    "actor",
    "request_id",
    "idempotency_key",
    "causation_id",
)
STORED_KEYS = ("v", "tenant_id", *FIELDS)


def line(position: int, payload: bytes, prev_hash: str | None, hash_hex: str) -> bytes:
    """One event's NDJSON line; this is the export's cost per event.

    The metadata is dumped by orjson; the payload's base64 and the hashes, all plain ASCII, are
    joined in as bytes (the same bytes orjson would write for the whole line, without building
    and scanning a string of the payload's size).
    """
    header = header_of(payload)
    if tuple(header) == STORED_KEYS:
        # The header as the store writes it: its fields after the tenant's, in the line's order.
        del header["v"], header["tenant_id"]
        metadata = b'{"position":%d,' % position + orjson.dumps(header)[1:]
    else:
        metadata = orjson.dumps({"position": position} | {k: header.get(k) for k in FIELDS})
    previous = b"null" if prev_hash is None else b'"' + prev_hash.encode() + b'"'
    return b"".join(
        (
            metadata[:-1],
            b',"payload":"',
            b2a_base64(payload, newline=False),
            b'","prev_hash":',
            previous,
            b',"hash":"',
            hash_hex.encode(),
            b'"}\n',
        )
    )


def recorded_by(page: list[ChainRow], until: datetime) -> list[ChainRow]:
    """The leading rows of the page recorded at or before `until` (unreadable times count)."""
    for index, (_, payload, _) in enumerate(page):
        recorded = header_of(payload).get("recorded_at")
        try:
            moment = datetime.fromisoformat(recorded) if isinstance(recorded, str) else None
        except ValueError:
            moment = None
        if moment is not None and moment.utcoffset() is not None and moment > until:
            return page[:index]
    return page


def header_of(payload: bytes) -> dict[str, Any]:
    """The payload's JSON header; empty when unreadable (a tampered row is exported as it is)."""
    try:
        header = orjson.loads(payload[: payload.index(b"\n")])
    except ValueError:  # no separator, or not JSON (orjson.JSONDecodeError is a ValueError)
        return {}
    return header if isinstance(header, dict) else {}
