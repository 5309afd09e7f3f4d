"""Cursor pagination and read-your-writes for the query endpoints."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import Query, Request
from pydantic import BaseModel
from sqlalchemy import Connection

from api.problems import Problem
from projections.tenancy import tenant_scope
from projections.waiting import tracked, wait_for_position

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (default 100).")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; absent for the first.")
]
MinPosition = Annotated[
    int | None,
    Query(ge=0, description="Answer once the read model reflects at least this position."),
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


def decimal_text(value: Decimal) -> str:
    """A decimal as the contract writes it: plain digits, no exponent, no trailing zeros (a
    PostgreSQL NUMERIC arrives padded to its column's scale)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


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
        tenant_scope(conn, tenant_id)
        yield conn, min(tracked(conn, tenant_id, names).values())
