"""The store's id: what tells this store's positions from another store's.

Consumers deduplicate by (store id, tenant, position). A database restored from a backup reuses
positions its copy had already given to other events; giving it a new id
(`ledger db new-store-id`) makes consumers skip the old store's messages still in the topic and
treat the restored store's events as new.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Column, Engine, MetaData, Table, Uuid, delete, insert, select

from projections.schema import UtcDateTime

STORE = Table(
    "ledger_store",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)


def store_id(engine: Engine) -> UUID:
    """The id of the store in `engine`'s database (made by `ledger db upgrade`)."""
    with engine.connect() as conn:
        found = conn.scalar(select(STORE.c.id))
    if found is None:
        raise LookupError("the database has no store id; run `ledger db upgrade`")
    return UUID(str(found))


def new_store_id(engine: Engine) -> UUID:
    """Gives the store a new id (after restoring the database from a backup)."""
    fresh = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(delete(STORE))
        conn.execute(insert(STORE).values(id=fresh, created_at=datetime.now(UTC)))
    return fresh
