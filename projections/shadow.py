"""Where new versions of read-model tables are built: beside the live ones, same shape.

PostgreSQL: the schema `ledger_rebuild` of the same database. SQLite: a database file beside
the live one (`<file>.rebuild`), attached under that name. An engine from `shadow_engine` maps
every unqualified table of the read models to the new version's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, TableClause, column, create_engine, event, table, text
from sqlalchemy.types import Uuid

SHADOW = "ledger_rebuild"
TRACKING_TABLES = ("projection_tracking", "projection_failures")


def live_schema(conn: Connection) -> str:
    """The schema of the live read-model tables."""
    if conn.dialect.name == "sqlite":
        return "main"
    return str(conn.scalar(text("SELECT current_schema()")))


def create_like(conn: Connection, name: str) -> None:
    """Creates the new version of a live table, with its columns, keys and indexes."""
    if conn.dialect.name != "sqlite":
        conn.execute(text(f"CREATE TABLE {SHADOW}.{name} (LIKE {name} INCLUDING ALL)"))
        return
    rows = conn.execute(
        text("SELECT type, sql FROM main.sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL"),
        {"t": name},
    ).all()
    for kind, sql in sorted(rows, key=lambda row: row[0] != "table"):
        conn.execute(text(_in_shadow(kind, sql)))


def table_in(name: str, schema: str, columns: list[str]) -> TableClause:
    """A table by name in a schema, with typed tenant ids (how SQLAlchemy stores a UUID)."""
    typed = [column(c, Uuid()) if c == "tenant_id" else column(c) for c in columns]
    if "tenant_id" not in columns:
        typed.append(column("tenant_id", Uuid()))
    return table(name, *typed, schema=schema)


_CREATE = re.compile(r"^CREATE\s+(UNIQUE\s+)?(TABLE|INDEX)\s+", re.IGNORECASE)


def _in_shadow(kind: str, sql: str) -> str:
    """A live table's or index's SQLite DDL, made to create it in the attached shadow."""
    match = _CREATE.match(sql)
    if match is None:
        raise ValueError(f"unexpected {kind} definition: {sql[:60]}")
    return f"{match.group(0)}IF NOT EXISTS {SHADOW}.{sql[match.end() :].lstrip()}"


def shadow_engine(live: Engine) -> Engine:
    """An engine whose read-model tables are the new version's."""
    if live.dialect.name != "sqlite":
        return live.execution_options(schema_translate_map={None: SHADOW})
    database = live.url.database
    if not database:
        raise ValueError("rebuilding needs a SQLite database file")
    shadow = f"{database}.rebuild"
    engine = create_engine(live.url)
    event.listen(engine, "connect", _attach(shadow))
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine.execution_options(schema_translate_map={None: SHADOW})


def _attach(path: str) -> Callable[[Any, Any], None]:
    def attach(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions begin where SQLAlchemy says
        cursor = dbapi_connection.cursor()
        cursor.execute(f"ATTACH DATABASE '{path}' AS {SHADOW}")
        cursor.close()

    return attach
