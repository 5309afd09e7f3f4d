"""The audit log: every event of a tenant with its metadata and chained hash."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import Connection, Table, insert, select

from projections.events import LedgerEvent
from projections.schema import AuditRow

AUDIT = cast("Table", AuditRow.__table__)


@dataclass(frozen=True)
class AuditEntry:
    """An event as auditors read it."""

    position: int
    stream_id: UUID
    version: int
    type: str
    recorded_at: datetime
    effective_at: datetime
    actor: str | None
    request_id: str | None
    idempotency_key: str | None
    hash: str


class AuditLog:
    """Appends every event once (a position already logged is skipped)."""

    name = "audit_log"
    tables = ("rm_audit_log",)
    kinds = None

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        if not events:
            return
        positions = [e.position for e in events]
        logged = set(
            conn.scalars(
                select(AUDIT.c.position).where(
                    AUDIT.c.tenant_id == tenant_id,
                    AUDIT.c.position.between(min(positions), max(positions)),
                )
            )
        )
        rows = [_row(tenant_id, e) for e in events if e.position not in logged]
        if rows:
            conn.execute(insert(AUDIT), rows)


def _row(tenant_id: UUID, event: LedgerEvent) -> dict[str, object]:
    actor = event.header.get("actor") or {}
    return {
        "tenant_id": tenant_id,
        "position": event.position,
        "stream_id": event.stream_id,
        "version": event.version,
        "type": event.kind,
        "recorded_at": event.recorded_at,
        "effective_at": event.effective_at,
        "actor": f"{actor.get('kind')}:{actor.get('id')}" if actor.get("id") else None,
        "request_id": event.header.get("request_id"),
        "idempotency_key": event.header.get("idempotency_key"),
        "hash": event.hash.hex(),
    }


def audit_log(
    conn: Connection, tenant_id: UUID, *, after: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """A page of one tenant's events in position order after a position."""
    rows = conn.execute(
        select(AUDIT)
        .where(AUDIT.c.tenant_id == tenant_id, AUDIT.c.position > after)
        .order_by(AUDIT.c.position)
        .limit(limit)
    )
    return [
        AuditEntry(
            r.position,
            r.stream_id,
            r.version,
            r.type,
            r.recorded_at,
            r.effective_at,
            r.actor,
            r.request_id,
            r.idempotency_key,
            r.hash,
        )
        for r in rows
    ]
