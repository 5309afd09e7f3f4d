"""Webhook subscriptions and their delivery log.

The subscriptions themselves are events of the tenant (`Tenant.WebhookRegistered`,
`Tenant.WebhookDisabled`); this revision adds the log the delivery worker writes: one row per
attempt to deliver one event to one webhook. On PostgreSQL the table carries the same tenant
row-level security policy as the read models (revision 0010).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import instant

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

TABLE = "webhook_deliveries"
POLICY = "tenant_isolation"
TENANT = "NULLIF(current_setting('ledger.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("event_position", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempted_at", instant(), nullable=True),
        sa.Column("next_attempt_at", instant(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "webhook_id", "delivery_id", "attempt"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'dead')", name="webhook_delivery_status"
        ),
    )
    op.create_index(
        "webhook_deliveries_log",
        TABLE,
        ["tenant_id", "webhook_id", "event_position", "delivery_id", "attempt"],
    )
    op.create_index("webhook_deliveries_due", TABLE, ["tenant_id", "status", "next_attempt_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {TABLE} USING (tenant_id = {TENANT})"
            f" WITH CHECK (tenant_id = {TENANT})"
        )


def downgrade() -> None:
    op.drop_table(TABLE)
