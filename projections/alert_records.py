"""Recorded alerts: what the alerts consumer raised (and later cleared), one row per raise.

A condition (`low_stock` of a SKU in a warehouse, `expiring` or `expired` of a lot in a bin) is
open from the position that raised it until the one that cleared it. An `order_status` record
notes one change of an order's status: it is cleared where it was raised, so the open records
are the conditions in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast
from uuid import UUID

import orjson
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Connection,
    Index,
    String,
    Table,
    Text,
    select,
    tuple_,
)
from sqlalchemy.orm import Mapped, mapped_column

from projections.schema import Base, Position, TenantId, UtcDateTime

RecordKind = Literal["low_stock", "expiring", "expired", "order_status"]
RECORD_KINDS: tuple[RecordKind, ...] = ("low_stock", "expiring", "expired", "order_status")
State = Literal["open", "cleared", "all"]
LogKey = tuple[int, str]  # (raised position, alert id): the order of the log


class AlertRecordRow(Base):
    """One alert raised for a subject (a SKU in a warehouse, a lot in a bin, an order)."""

    __tablename__ = "alert_records"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('low_stock', 'expiring', 'expired', 'order_status')",
            name="alert_record_kind",
        ),
        Index("alert_records_subject", "tenant_id", "kind", "subject"),
        Index("alert_records_raised", "tenant_id", "raised_position"),
    )

    tenant_id: Mapped[TenantId]
    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(400), nullable=False)
    sku: Mapped[str | None] = mapped_column(String(100), nullable=True)
    warehouse: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lot: Mapped[str | None] = mapped_column(String(100), nullable=True)
    bin: Mapped[str | None] = mapped_column(String(100), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text, nullable=False)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    raised_position: Mapped[Position]
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cleared_position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


ALERT_RECORDS = cast("Table", AlertRecordRow.__table__)


@dataclass(frozen=True)
class AlertRecord:
    """A recorded alert as the query functions return it; `details` are texts (decimals,
    dates and statuses), None where unknown."""

    alert_id: str
    kind: RecordKind
    sku: str | None
    warehouse: str | None
    lot: str | None
    bin: str | None
    order_id: str | None
    details: dict[str, str | None]
    raised_at: datetime
    raised_position: int
    cleared_at: datetime | None
    cleared_position: int | None

    @property
    def key(self) -> LogKey:
        """Where the next page starts when this record ends a page."""
        return (self.raised_position, self.alert_id)


def records(
    conn: Connection,
    tenant_id: UUID,
    *,
    kinds: tuple[RecordKind, ...] | None = None,
    state: State = "all",
    after: LogKey | None = None,
    limit: int = 100,
) -> list[AlertRecord]:
    """A page of one tenant's recorded alerts in the order they were raised (by raised
    position, then alert id), after a page's last key; `state` keeps the open (not cleared)
    or the cleared ones only."""
    columns = ALERT_RECORDS.c
    query = select(ALERT_RECORDS).where(columns.tenant_id == tenant_id)
    if kinds is not None:
        query = query.where(columns.kind.in_(kinds))
    if state == "open":
        query = query.where(columns.cleared_position.is_(None))
    elif state == "cleared":
        query = query.where(columns.cleared_position.is_not(None))
    if after is not None:
        query = query.where(tuple_(columns.raised_position, columns.alert_id) > tuple_(*after))
    query = query.order_by(columns.raised_position, columns.alert_id).limit(limit)
    return [
        AlertRecord(
            row.alert_id,
            cast("RecordKind", row.kind),
            row.sku,
            row.warehouse,
            row.lot,
            row.bin,
            row.order_id,
            orjson.loads(row.details),
            row.raised_at,
            row.raised_position,
            row.cleared_at,
            row.cleared_position,
        )
        for row in conn.execute(query)
    ]
