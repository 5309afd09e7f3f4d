"""Applies and inspects the Alembic migrations in ``migrations/``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(sqlalchemy_url: str, partitions: int | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    if partitions is not None:
        config.attributes["partitions"] = partitions
    return config


def upgrade(sqlalchemy_url: str, partitions: int | None = None) -> None:
    """Brings the database to the newest revision (creating every table on first use)."""
    command.upgrade(alembic_config(sqlalchemy_url, partitions), "head")


def expected_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(sqlalchemy_url: str) -> str | None:
    """The revision the database is at, or None before the first upgrade."""
    engine = create_engine(sqlalchemy_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
