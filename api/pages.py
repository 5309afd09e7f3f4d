"""Cursor pagination and read-your-writes for the query endpoints."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import Query, Request
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, text

from api.problems import Problem
from domain.quantities import decimal_text as decimal_text  # noqa: PLC0414  (the routes use it)
from projections.tenancy import tenant_scope
from projections.waiting import tracked, wait_for_position

LOG = logging.getLogger("ledger.http")
#: The highest position there can be (the ledger numbers events in a signed 64-bit column).
MAX_POSITION = 2**63 - 1
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (default 100).")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; absent for the first.")
]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_POSITION,
        description="Answer once the read model reflects at least this position.",
    ),
]


class Page(BaseModel):
    """A page of a list: its items, the cursor of the next page, the read model's position."""

    next_cursor: str | None
    position: int


def encode_cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> tuple[Any, ...]:
    """The key a cursor names (`size` parts); 422 `validation-error` if it is not one."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        key = None
    if not isinstance(key, list) or len(key) != size:
        raise Problem(
            "validation-error",
            "the cursor is not one this list gave",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
        )
    return tuple(key)


@contextmanager
def read_model(
    request: Request,
    tenant_id: UUID,
    projection: str | Sequence[str],
    min_position: int | None,
) -> Iterator[tuple[Connection, int]]:
    """A read transaction limited to the tenant (row-level security on PostgreSQL) and the
    position the projection(s) it reads reflect (the lowest of them), once every one of them
    has reached `min_position`."""
    names = [projection] if isinstance(projection, str) else list(projection)
    engine = request.app.state.engine
    if min_position:
        timeout = request.app.state.settings.min_position_timeout
        wait_for_position(engine, tenant_id, min_position, projections=names, timeout=timeout)
    with engine.begin() as conn:
        scope(request, conn, tenant_id)
        yield conn, min(tracked(conn, tenant_id, names).values())


def scope(request: Request, conn: Connection, tenant_id: UUID) -> None:
    """Limits the rest of `conn`'s transaction to the tenant, as the app's reader role."""
    tenant_scope(conn, tenant_id, role=request.app.state.read_role)


def reader_role(engine: Engine, wanted: str) -> str | None:
    """`wanted` if the engine's user can switch to it on PostgreSQL (else None: reads run as
    the user, and are logged as such once)."""
    if engine.dialect.name != "postgresql" or not wanted:
        return None
    with engine.connect() as conn:
        usable = conn.execute(
            text(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :role)"
                " THEN pg_has_role(current_user, :role, 'MEMBER') ELSE false END"
            ),
            {"role": wanted},
        ).scalar()
    if not usable:
        LOG.warning("reads run as the database user: it cannot switch to role %r", wanted)
        return None
    return wanted
