"""Fixtures: a fresh PostgreSQL database per run, a SQLite file per test, a tenant per test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import Engine, create_engine, pool

from eventstore.postgres import PostgresLedgerStore
from eventstore.sqlite import SQLiteLedgerStore
from eventstore.store import LedgerStore
from ledger import migrate
from ledger.settings import Settings
from ledger.wiring import Ledger
from tests.pgserver import fresh_database, postgres_server
from tests.racing import THREADS


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_url(pg_server: str) -> Iterator[str]:
    """A migrated database created for this test run and dropped after it."""
    with fresh_database(pg_server, f"ledger_test_{uuid.uuid4().hex[:12]}") as url:
        migrate.upgrade(Settings(database_url=url).sqlalchemy_url, partitions=16)
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own."""
    path = tmp_path / "ledger.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


def open_store(url: str) -> LedgerStore:
    if url.startswith("sqlite:///"):
        return SQLiteLedgerStore(url.removeprefix("sqlite:///"), pool_size=8)
    return PostgresLedgerStore(url, pool_size=8, max_overflow=4)


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    with open_store(database_url) as opened:
        yield opened


@pytest.fixture
def ledger(store: LedgerStore) -> Ledger:
    return Ledger(store, snapshot_interval=0)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The read models' engine on this test's database, without a pool."""
    engine = create_engine(
        Settings(database_url=database_url).sqlalchemy_url, poolclass=pool.NullPool
    )
    yield engine
    engine.dispose()


@pytest.fixture
def tenant() -> UUID:
    """A tenant of this test alone."""
    return uuid.uuid4()


@pytest.fixture
def race_ledger(pg_url: str) -> Iterator[Ledger]:
    """A ledger whose pool holds a connection for every racing thread."""
    with PostgresLedgerStore(pg_url, pool_size=THREADS, max_overflow=4) as store:
        yield Ledger(store)
