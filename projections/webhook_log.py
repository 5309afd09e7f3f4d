"""The webhook delivery log: one row per attempt to deliver one event to one webhook.

The outbox (`consumers.webhooks`) writes each delivery's first attempt, pending; the dispatcher
(`consumers.delivery`) claims a pending attempt, sends it and records its outcome: `delivered`,
`failed` (with the next attempt added, pending) or `dead` (out of attempts, or its webhook was
disabled before it was sent). Administrators read it a page at a time. It is not rebuilt from
events: it records what happened outside the ledger. The body to send (`payload`) is kept on
pending and dead attempts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Mapped, mapped_column

from projections.schema import Base, Position, TenantId, UtcDateTime

DeliveryStatus = Literal["pending", "delivered", "failed", "dead"]
STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "failed", "dead")


class WebhookDeliveryRow(Base):
    """An attempt to deliver an event to a webhook: its outcome and when to try again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'dead')", name="webhook_delivery_status"
        ),
        Index(
            "webhook_deliveries_log",
            "tenant_id",
            "webhook_id",
            "event_position",
            "delivery_id",
            "attempt",
        ),
        Index("webhook_deliveries_due", "tenant_id", "status", "next_attempt_at"),
        Index(
            "webhook_deliveries_pending",
            "tenant_id",
            "webhook_id",
            "event_position",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    tenant_id: Mapped[TenantId]
    webhook_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_position: Mapped[Position]
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)


DELIVERIES = cast("Table", WebhookDeliveryRow.__table__)


class WebhookSubscriptionRow(Base):
    """A tenant's webhook as deliveries see it: what it gets from which position on (events
    after the one that registered it), its sealed signing secret, and when it was disabled."""

    __tablename__ = "webhook_subscriptions"

    tenant_id: Mapped[TenantId]
    webhook_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    events: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of public types or "*"
    sealed_secret: Mapped[str] = mapped_column(Text, nullable=False)
    registered_position: Mapped[Position]
    disabled_position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


SUBSCRIPTIONS = cast("Table", WebhookSubscriptionRow.__table__)
#: Where a page of the log ends: (event position, delivery id, attempt) of its last row.
LogKey = tuple[int, str, int]


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an event to a webhook, as administrators read it."""

    delivery_id: str
    attempt: int
    event_position: int
    event_type: str
    status: str
    response_status: int | None
    error: str | None
    attempted_at: datetime | None
    next_attempt_at: datetime | None

    @property
    def key(self) -> LogKey:
        return (self.event_position, self.delivery_id, self.attempt)


def deliveries(
    conn: Connection,
    tenant_id: UUID,
    webhook_id: str,
    *,
    after: LogKey | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """A page of a webhook's delivery attempts in event order, after a page's last key."""
    columns = DELIVERIES.c
    query = select(
        columns.delivery_id,
        columns.attempt,
        columns.event_position,
        columns.event_type,
        columns.status,
        columns.response_status,
        columns.error,
        columns.attempted_at,
        columns.next_attempt_at,
    ).where(columns.tenant_id == tenant_id, columns.webhook_id == webhook_id)
    if after is not None:
        query = query.where(
            tuple_(columns.event_position, columns.delivery_id, columns.attempt) > tuple_(*after)
        )
    query = query.order_by(columns.event_position, columns.delivery_id, columns.attempt)
    return [Delivery(*row) for row in conn.execute(query.limit(limit))]


def record_attempt(conn: Connection, tenant_id: UUID, webhook_id: str, delivery: Delivery) -> None:
    """Adds an attempt to the log (the delivery worker's write)."""
    if delivery.status not in STATUSES:
        raise ValueError(f"not a delivery status: {delivery.status!r}")
    conn.execute(
        DELIVERIES.insert(),
        {
            "tenant_id": tenant_id,
            "webhook_id": webhook_id,
            "delivery_id": delivery.delivery_id,
            "attempt": delivery.attempt,
            "event_position": delivery.event_position,
            "event_type": delivery.event_type,
            "status": delivery.status,
            "response_status": delivery.response_status,
            "error": delivery.error,
            "attempted_at": delivery.attempted_at,
            "next_attempt_at": delivery.next_attempt_at,
        },
    )
