"""Read models: projection tracking and failures, stock levels.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "projection_tracking",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "projection"),
    )
    op.create_table(
        "projection_failures",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "projection"),
    )
    op.create_table(
        "rm_stock_levels",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("on_hand", exact_decimal(), nullable=False),
        sa.Column("reserved", exact_decimal(), nullable=False),
        sa.Column("value", exact_decimal(), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sku", "warehouse"),
        sa.UniqueConstraint("tenant_id", "stream_id", name="rm_stock_levels_stream_key"),
    )
    op.create_index("rm_stock_levels_changes", "rm_stock_levels", ["tenant_id", "last_position"])


def downgrade() -> None:
    op.drop_table("rm_stock_levels")
    op.drop_table("projection_failures")
    op.drop_table("projection_tracking")
