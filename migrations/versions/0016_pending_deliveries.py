"""Each webhook's pending deliveries by event position: the dispatcher's due query looks up a
webhook's earliest pending delivery, and a log of many delivered rows would otherwise be
scanned for it (a partial index: only pending rows are in it).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "webhook_deliveries_pending",
        "webhook_deliveries",
        ["tenant_id", "webhook_id", "event_position"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("webhook_deliveries_pending", "webhook_deliveries")
