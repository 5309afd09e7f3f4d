"""Movements: one row per change of on-hand in a lot and bin, with time, actor, reason and cost."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, Table, insert, select

from projections.bulk import insert_rows
from projections.events import LedgerEvent
from projections.schema import MovementRow, MovementStreamRow

MOVEMENTS = cast("Table", MovementRow.__table__)
STREAMS = cast("Table", MovementStreamRow.__table__)
COLUMNS = (
    "tenant_id",
    "position",
    "seq",
    "sku",
    "warehouse",
    "lot",
    "bin",
    "quantity",
    "unit_cost",
    "reason",
    "reference",
    "effective_at",
    "recorded_at",
    "actor",
    "request_id",
)


@dataclass(frozen=True)
class Movement:
    """A movement as the query functions return it (quantity negative when stock left)."""

    position: int
    seq: int
    sku: str
    warehouse: str
    lot: str
    bin: str
    quantity: Decimal
    unit_cost: Decimal
    reason: str
    reference: str | None
    effective_at: datetime
    recorded_at: datetime
    actor: str | None
    request_id: str | None


def _changes(event: LedgerEvent) -> Iterator[tuple[dict[str, Any], Decimal, str, str | None]]:
    """(layer or pick, signed quantity, reason, reference) for each place the event changed."""
    data = event.data
    if event.kind == "StockItem.Received":
        yield data["layer"], data["layer"]["quantity"], data["reason"], data["reference"]
    elif event.kind == "StockItem.Removed":
        for pick in data["picks"]:
            yield pick, -pick["quantity"], data["reason"], data["reference"]
    elif event.kind == "StockItem.Moved":
        for pick in data["picks"]:
            yield pick, -pick["quantity"], "move", None
        for layer in data["arrivals"]:
            yield layer, layer["quantity"], "move", None


class Movements:
    """Appends the movements of stock item events; a position already recorded is skipped."""

    name = "movements"
    tables = ("rm_movement_streams", "rm_movements")
    kinds = frozenset(
        {"StockItem.Opened", "StockItem.Received", "StockItem.Removed", "StockItem.Moved"}
    )

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        if not events:
            return
        low, high = min(e.position for e in events), max(e.position for e in events)
        done = set(
            conn.scalars(
                select(MOVEMENTS.c.position).where(
                    MOVEMENTS.c.tenant_id == tenant_id, MOVEMENTS.c.position.between(low, high)
                )
            )
        )
        names = self._names(conn, tenant_id, events)
        opened: list[UUID] = []
        rows: list[tuple[Any, ...]] = []
        for event in events:
            if event.kind not in self.kinds:
                continue
            if event.kind == "StockItem.Opened":
                if event.stream_id not in names:
                    names[event.stream_id] = (event.data["sku"], event.data["warehouse"])
                    opened.append(event.stream_id)
                continue
            if event.position in done:
                continue
            rows += self._rows(tenant_id, event, names[event.stream_id])
        if opened:
            conn.execute(
                insert(STREAMS),
                [
                    {
                        "tenant_id": tenant_id,
                        "stream_id": s,
                        "sku": names[s][0],
                        "warehouse": names[s][1],
                    }
                    for s in opened
                ],
            )
        insert_rows(conn, MOVEMENTS, COLUMNS, rows)

    @staticmethod
    def _names(
        conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]
    ) -> dict[UUID, tuple[str, str]]:
        streams = {e.stream_id for e in events}
        found = conn.execute(
            select(STREAMS).where(
                STREAMS.c.tenant_id == tenant_id, STREAMS.c.stream_id.in_(streams)
            )
        )
        return {row.stream_id: (row.sku, row.warehouse) for row in found}

    @staticmethod
    def _rows(tenant_id: UUID, event: LedgerEvent, name: tuple[str, str]) -> list[tuple[Any, ...]]:
        """The event's movements, valued in the order of `COLUMNS`."""
        header = event.header
        actor = header.get("actor") or {}
        who = f"{actor.get('kind')}:{actor.get('id')}" if actor.get("id") else None
        request_id = header.get("request_id")
        sku, warehouse = name
        return [
            (
                tenant_id,
                event.position,
                seq,
                sku,
                warehouse,
                place["lot"],
                place["bin"],
                quantity,
                place["unit_cost"],
                reason,
                reference,
                event.effective_at,
                event.recorded_at,
                who,
                request_id,
            )
            for seq, (place, quantity, reason, reference) in enumerate(_changes(event))
        ]


def movements(
    conn: Connection,
    tenant_id: UUID,
    *,
    sku: str | None = None,
    warehouse: str | None = None,
    lot: str | None = None,
    after: tuple[int, int] | None = None,
    limit: int = 100,
) -> list[Movement]:
    """A page of one tenant's movements in position order, after a (position, seq) cursor."""
    query = select(MOVEMENTS).where(MOVEMENTS.c.tenant_id == tenant_id)
    for column, wanted in (
        (MOVEMENTS.c.sku, sku),
        (MOVEMENTS.c.warehouse, warehouse),
        (MOVEMENTS.c.lot, lot),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    if after is not None:
        query = query.where(
            (MOVEMENTS.c.position > after[0])
            | ((MOVEMENTS.c.position == after[0]) & (MOVEMENTS.c.seq > after[1]))
        )
    rows = conn.execute(query.order_by(MOVEMENTS.c.position, MOVEMENTS.c.seq).limit(limit))
    return [
        Movement(
            r.position,
            r.seq,
            r.sku,
            r.warehouse,
            r.lot,
            r.bin,
            r.quantity,
            r.unit_cost,
            r.reason,
            r.reference,
            r.effective_at,
            r.recorded_at,
            r.actor,
            r.request_id,
        )
        for r in rows
    ]
