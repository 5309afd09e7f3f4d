"""Deliberate tampering with stored rows, bypassing the append-only guards as an intruder would."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

import psycopg


def tamper(url: str, statement: str, tenant: UUID, position: int, *extra: Any) -> int:
    """Runs an UPDATE or DELETE on ledger_events (``%s`` placeholders: extra, tenant, position)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("DROP TRIGGER IF EXISTS ledger_events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS ledger_events_no_delete")
            cursor = conn.execute(statement.replace("%s", "?"), (*extra, str(tenant), position))
            return cursor.rowcount
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET session_replication_role = replica")  # superuser: skips triggers
        return pg.execute(statement, (*extra, tenant, position)).rowcount


def plain_update(url: str, tenant: UUID) -> None:
    """An UPDATE without bypassing the guards."""
    statement = "UPDATE ledger_events SET topic = 'x' WHERE tenant_id = %s"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement.replace("%s", "?"), (str(tenant),))
        return
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(statement, (tenant,))
