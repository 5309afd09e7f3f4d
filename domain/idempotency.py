"""Idempotent commands: the first outcome under a key is kept with its events and replayed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson


@dataclass(frozen=True)
class IdempotencyRecord:
    """A command's key, the fingerprint of its request, its outcome and the position it reached."""

    key: str
    fingerprint: bytes
    outcome: bytes
    position: int = 0


class IdempotencyKeyTaken(Exception):
    """Another save recorded the same key first (raised by the recorder; nothing was written)."""


@runtime_checkable
class IdempotencyLookup(Protocol):
    """The recorder side of idempotency: find what a key recorded."""

    def select_idempotency(self, key: str) -> IdempotencyRecord | None: ...


def fingerprint(command: str, request: dict[str, Any]) -> bytes:
    """A stable digest of a command and its arguments (equal values, equal digests)."""
    canonical = orjson.dumps(
        {"command": command, "request": request}, option=orjson.OPT_SORT_KEYS, default=str
    )
    return hashlib.sha256(canonical).digest()
