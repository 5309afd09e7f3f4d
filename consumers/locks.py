"""Which process works on a tenant: several relays (or consumers) share the tenants, and none
works on one that another holds.

PostgreSQL: a session advisory lock per (purpose, tenant), held on a connection of this process's
own; a process that dies loses its connection and with it its locks. SQLite (one embedded file):
an exclusive lock on a file beside the database for the whole purpose, so one process at a time.
"""

from __future__ import annotations

import fcntl
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow
from sqlalchemy import Engine

from ledger.following import listen_conninfo


def lock_key(purpose: str, tenant_id: UUID) -> int:
    """A signed 64-bit advisory lock key of (purpose, tenant)."""
    high = zlib.crc32(purpose.encode())
    low = zlib.crc32(tenant_id.bytes)
    return ((high << 32) | low) - 2**63


class TenantLocks:
    """Try-locks on tenants for one purpose (e.g. ``relay:ledger.events``)."""

    def __init__(self, engine: Engine, purpose: str) -> None:
        self.purpose = purpose
        self.postgres = engine.dialect.name == "postgresql"
        self._guard = threading.Lock()
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._conninfo = listen_conninfo(engine) if self.postgres else ""
        self._file: IO[bytes] | None = None
        self._held: set[int] = set()
        if not self.postgres:
            database = engine.url.database or "ledger.db"
            self._path = f"{database}.{purpose.replace('/', '_').replace(':', '-')}.lock"

    @contextmanager
    def hold(self, tenant_id: UUID) -> Iterator[bool]:
        """Yields whether this process holds the tenant; releases it on exit."""
        key = lock_key(self.purpose, tenant_id)
        with self._guard:
            # a session's advisory locks (and a file lock) are re-entrant: this process's own
            # holders are kept out
            held = key not in self._held and (
                self._try(key) if self.postgres else self._file_lock()
            )
            if held:
                self._held.add(key)
        try:
            yield held
        finally:
            if held:
                self._release(key)

    def _release(self, key: int) -> None:
        with self._guard:
            self._held.discard(key)
            if not self.postgres:
                return  # the file stays locked while this process runs
            try:
                self._connection().execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg.Error:
                self._drop()  # the connection is gone, and its locks with it

    def _try(self, key: int) -> bool:
        row = self._connection().execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        return bool(row and row[0])

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, application_name=f"ledger-{self.purpose}"[:63]
            )
        return self._conn

    def _drop(self) -> None:
        self._held.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _file_lock(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self._path, "ab")  # noqa: SIM115 - kept open while this process holds it
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def close(self) -> None:
        with self._guard:
            self._drop()
        if self._file is not None:
            self._file.close()  # the file stays: another process may be waiting on it
            self._file = None
