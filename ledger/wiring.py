"""Builds the store and the per-tenant applications from settings; nothing at import time."""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from eventsourcing.domain import MutableOrImmutableAggregate
from sqlalchemy import Engine, text

from domain.application import SNAPSHOTTED
from domain.commands import CommandObserver, Unobserved
from domain.errors import DomainError
from domain.idempotency import KeyClaims, LocalKeyClaims, in_progress
from domain.sales_orders import LedgerApplication
from eventstore.postgres import PostgresLedgerStore
from eventstore.sqlite import SQLiteLedgerStore
from eventstore.store import LedgerStore
from ledger.migrate import current_revision, expected_revision
from ledger.settings import Settings


class SchemaOutOfDate(DomainError):
    """The database is not at the schema revision this code expects."""

    code = "schema-out-of-date"


def open_store(settings: Settings) -> LedgerStore:
    """The event store of the configured database (connections open lazily)."""
    if settings.is_sqlite:
        return SQLiteLedgerStore(settings.sqlite_path, pool_size=settings.db_pool_size)
    return PostgresLedgerStore(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def check_schema(settings: Settings) -> None:
    """Refuses to run against a database that has not been migrated to this code's revision."""
    found, expected = current_revision(settings.sqlalchemy_url), expected_revision()
    if found != expected:
        raise SchemaOutOfDate(
            f"database schema is at {found or 'nothing'}, expected {expected};"
            " run `ledger db upgrade`"
        )


class AdvisoryKeyClaims:
    """Claims shared by every process on one PostgreSQL database: a transaction-level advisory
    lock on (tenant, key), held on a connection of its own while the command runs. A process
    that dies mid-command loses its connection, and with it the claim."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def claim(self, tenant_id: UUID, key: str) -> Iterator[None]:
        with self.engine.connect() as conn:
            held = conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:tenant, :key)"),
                {"tenant": _int4(str(tenant_id)), "key": _int4(key)},
            )
            if not held:
                raise in_progress(key)
            try:
                yield
            finally:
                conn.rollback()  # ends the transaction, and so releases the lock


def _int4(value: str) -> int:
    """A signed 32-bit key for the two-key form of the advisory locks (its own key space)."""
    return zlib.crc32(value.encode()) - 2**31


def key_claims(engine: Engine) -> KeyClaims:
    """Claims of idempotency keys for the database of `engine`: advisory locks shared by every
    replica on PostgreSQL; in this process on SQLite (one process writes an embedded file)."""
    if engine.dialect.name == "postgresql":
        return AdvisoryKeyClaims(engine)
    return LocalKeyClaims()


class Ledger:
    """One process's store and its tenants' applications (created on first use, then reused)."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        snapshot_interval: int = 20,
        snapshotted: tuple[type[MutableOrImmutableAggregate[UUID]], ...] = SNAPSHOTTED,
        max_cached_tenants: int = 1024,
    ) -> None:
        self.store = store
        self.snapshot_interval = snapshot_interval
        self.snapshotted = snapshotted
        self.max_cached_tenants = max_cached_tenants
        self._apps: OrderedDict[UUID, LedgerApplication] = OrderedDict()
        self._lock = threading.Lock()
        self.observer: CommandObserver = Unobserved()
        self.key_claims: KeyClaims = LocalKeyClaims()

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        return cls(open_store(settings), snapshot_interval=settings.snapshot_interval)

    def app(self, tenant_id: UUID) -> LedgerApplication:
        """The command side of one tenant."""
        with self._lock:
            app = self._apps.get(tenant_id)
            if app is None:
                app = LedgerApplication(
                    tenant_id,
                    self.store.factory_for(tenant_id, snapshots=self.snapshot_interval > 0),
                    snapshot_interval=self.snapshot_interval,
                    snapshotted=self.snapshotted,
                )
                app.observer, app.key_claims = self.observer, self.key_claims
                self._apps[tenant_id] = app
                if len(self._apps) > self.max_cached_tenants:
                    self._apps.popitem(last=False)
            else:
                self._apps.move_to_end(tenant_id)
            return app

    def instrument(
        self, observer: CommandObserver | None = None, claims: KeyClaims | None = None
    ) -> None:
        """Tells `observer` what every tenant's commands do; claims their keys with `claims`."""
        with self._lock:
            self.observer = observer or self.observer
            self.key_claims = claims or self.key_claims
            for app in self._apps.values():
                app.observer, app.key_claims = self.observer, self.key_claims

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
