"""What the benchmarks share: the throwaway PostgreSQL database, its migration, the admin URL.

Nothing here connects at import time.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ledger.migrate import upgrade

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PARTITIONS = 16

#: The environment variable naming the admin connection (a postgresql:// URL).
ADMIN_URL_VARIABLE = "LEDGER_BENCH_DATABASE_URL"


def admin_url() -> str:
    """The admin connection: $LEDGER_BENCH_DATABASE_URL, else the local server as postgres."""
    return os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL)


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"{ADMIN_URL_VARIABLE} must be a postgresql:// URL, not {url!r}")
    return urlunsplit(parts._replace(scheme="postgresql", path="/" + dbname))


def dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the admin URL's server (its URL); dropped afterwards."""
    name = f"ledger_bench_{secrets.token_hex(6)}"
    url = with_dbname(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        print(f"dropped database {name}")


def migrate_postgres(url: str, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Brings the (postgresql://) database to the newest schema with `partitions` partitions."""
    upgrade("postgresql+psycopg://" + url.split("://", 1)[1], partitions)
