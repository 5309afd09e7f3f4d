"""Builds the store and the per-tenant applications from settings; nothing at import time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from uuid import UUID

from eventsourcing.domain import MutableOrImmutableAggregate

from domain.application import SNAPSHOTTED
from domain.errors import DomainError
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
                self._apps[tenant_id] = app
                if len(self._apps) > self.max_cached_tenants:
                    self._apps.popitem(last=False)
            else:
                self._apps.move_to_end(tenant_id)
            return app

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
