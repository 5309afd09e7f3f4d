"""Read-your-own-writes: waiting until read models have applied a tenant's events up to a position.

A command answers with the highest position it appended; a reader that passes it back (the API's
``min_position``) is answered once every read model it reads has tracked that far. The tracked
positions are polled (one indexed read of the tenant's tracking rows), quickly at first and then
backing off, whoever runs the projections: this process, another one, or none yet.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import cast
from uuid import UUID

from sqlalchemy import Connection, Engine, Table, select

from domain.errors import ProjectionFailed, ProjectionLagging
from projections.schema import ProjectionFailure, ProjectionTracking

TRACKING = cast("Table", ProjectionTracking.__table__)
FAILURES = cast("Table", ProjectionFailure.__table__)

FIRST_PAUSE = 0.005
LONGEST_PAUSE = 0.1


def wait_for_position(
    engine: Engine,
    tenant_id: UUID,
    position: int,
    *,
    projections: Collection[str],
    timeout: float = 5.0,
) -> int:
    """Waits until every named projection has applied the tenant's events up to `position`;
    returns the lowest position they have reached (at least `position`).

    Raises `ProjectionFailed` at once when a projection that is behind stopped at an event it
    could not apply, and `ProjectionLagging` when they are still behind after `timeout` seconds.
    """
    names = tuple(sorted(set(projections)))
    if not names:
        raise ValueError("name at least one projection to wait for")
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        with engine.connect() as conn:
            reached = tracked(conn, tenant_id, names)
            lowest = min(reached.values())
            if lowest >= position:
                return lowest
            behind = tuple(name for name in names if reached[name] < position)
            _refuse_failed(conn, tenant_id, position, behind, reached)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProjectionLagging(
                f"read model(s) {', '.join(behind)} reached position {lowest}, not {position},"
                f" within {timeout:g} s",
                wanted=position,
                reached=lowest,
                lagging=behind,
            )
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, LONGEST_PAUSE)


def tracked(conn: Connection, tenant_id: UUID, names: Collection[str]) -> dict[str, int]:
    """The position each named projection has applied for the tenant (0 before its first)."""
    found = {
        row.projection: int(row.position)
        for row in conn.execute(
            select(TRACKING.c.projection, TRACKING.c.position).where(
                TRACKING.c.tenant_id == tenant_id, TRACKING.c.projection.in_(names)
            )
        )
    }
    return {name: found.get(name, 0) for name in names}


def _refuse_failed(
    conn: Connection,
    tenant_id: UUID,
    wanted: int,
    behind: tuple[str, ...],
    reached: dict[str, int],
) -> None:
    failure = conn.execute(
        select(FAILURES.c.projection, FAILURES.c.position, FAILURES.c.error)
        .where(FAILURES.c.tenant_id == tenant_id, FAILURES.c.projection.in_(behind))
        .order_by(FAILURES.c.position, FAILURES.c.projection)
        .limit(1)
    ).first()
    if failure is None:
        return
    raise ProjectionFailed(
        f"read model {failure.projection} stopped at position {failure.position} of this"
        f" tenant (an event it could not apply) and stays at {reached[failure.projection]}"
        f" until an operator clears the failure; position {wanted} cannot be reached",
        wanted=wanted,
        reached=min(reached.values()),
        projection=failure.projection,
        failed_at=int(failure.position),
        error=failure.error,
    )
