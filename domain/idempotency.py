"""Idempotent commands: the first outcome under a key is kept with its events and replayed;
while the first request with a key runs, the key is claimed and a second one is refused."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import orjson

from domain.errors import DomainError, ValidationFailed

#: The integers a request may carry in free-form data (JSON encoders keep 64 bits).
MIN_INT, MAX_INT = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class IdempotencyRecord:
    """A command's key, the fingerprint of its request, its outcome and the position it reached."""

    key: str
    fingerprint: bytes
    outcome: bytes
    position: int = 0


class IdempotencyKeyTaken(Exception):
    """Another save recorded the same key first (raised by the recorder; nothing was written)."""


class IdempotencyKeyInProgress(DomainError):
    """The first request with this idempotency key is still running; a retry may succeed."""

    code = "idempotency-key-in-progress"
    retryable = True


@runtime_checkable
class IdempotencyLookup(Protocol):
    """The recorder side of idempotency: find what a key recorded."""

    def select_idempotency(self, key: str) -> IdempotencyRecord | None: ...


class KeyClaims(Protocol):
    """Who is running a command under a key right now (across every writer that shares it)."""

    def claim(self, tenant_id: UUID, key: str) -> AbstractContextManager[None]:
        """Holds the tenant's key while the block runs; `IdempotencyKeyInProgress` if held."""
        ...


class LocalKeyClaims:
    """Claims held in this process: enough where one process writes (the embedded SQLite)."""

    def __init__(self) -> None:
        self._held: set[tuple[UUID, str]] = set()
        self._lock = threading.Lock()

    @contextmanager
    def claim(self, tenant_id: UUID, key: str) -> Iterator[None]:
        with self._lock:
            if (tenant_id, key) in self._held:
                raise in_progress(key)
            self._held.add((tenant_id, key))
        try:
            yield
        finally:
            with self._lock:
                self._held.discard((tenant_id, key))


def in_progress(key: str) -> IdempotencyKeyInProgress:
    """The refusal of a request whose key another request is running under."""
    return IdempotencyKeyInProgress(
        f"a request with idempotency key {key!r} is still running; retry when it has finished"
    )


def encoding_problem(
    value: Any, path: str = "body", *, integers: bool = True
) -> tuple[str, str] | None:
    """Where `value` holds what the ledger cannot record as JSON, and why: a string that is not
    valid Unicode (a lone surrogate) or, unless `integers` is false, an integer beyond 64 bits;
    None when it has none."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "must be valid Unicode text (no lone surrogates)"
    elif integers and isinstance(value, int) and not isinstance(value, bool):
        if not MIN_INT <= value <= MAX_INT:
            return path, "integer out of the 64-bit range"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = encoding_problem(key, path, integers=integers) or encoding_problem(
                item, f"{path}.{key}", integers=integers
            )
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = encoding_problem(item, f"{path}.{index}", integers=integers)
            if found:
                return found
    return None


def fingerprint(command: str, request: dict[str, Any]) -> bytes:
    """A stable digest of a command and its arguments (equal values, equal digests);
    `ValidationFailed` when the arguments cannot be encoded."""
    try:
        canonical = orjson.dumps(
            {"command": command, "request": request}, option=orjson.OPT_SORT_KEYS, default=str
        )
    except orjson.JSONEncodeError as error:
        field, message = encoding_problem(request) or ("body", str(error))
        raise ValidationFailed(field, message) from None
    return hashlib.sha256(canonical).digest()
