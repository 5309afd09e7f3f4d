"""Read models: one row per stock movement, and the stock items the movements projection knows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal, instant

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rm_movement_streams",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "stream_id"),
    )
    op.create_table(
        "rm_movements",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("bin", sa.String(64), nullable=False),
        sa.Column("quantity", exact_decimal(), nullable=False),
        sa.Column("unit_cost", exact_decimal(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("effective_at", instant(), nullable=False),
        sa.Column("recorded_at", instant(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "position", "seq"),
    )
    op.create_index(
        "rm_movements_item", "rm_movements", ["tenant_id", "sku", "warehouse", "position"]
    )
    op.create_index("rm_movements_lot", "rm_movements", ["tenant_id", "sku", "lot", "position"])


def downgrade() -> None:
    op.drop_table("rm_movements")
    op.drop_table("rm_movement_streams")
