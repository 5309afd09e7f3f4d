"""Read models: lots in bins, and the stock items the lots projection has seen.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal, instant

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rm_lot_streams",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "stream_id"),
    )
    op.create_table(
        "rm_lots",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("bin", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("on_hand", exact_decimal(), nullable=False),
        sa.Column("reserved", exact_decimal(), nullable=False),
        sa.Column("value", exact_decimal(), nullable=False),
        sa.Column("expires_on", sa.Date, nullable=True),
        sa.Column("received_at", instant(), nullable=False),
        sa.Column("layers", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sku", "warehouse", "lot", "bin"),
    )
    op.create_index("rm_lots_stream", "rm_lots", ["tenant_id", "stream_id"])
    op.create_index("rm_lots_expiry", "rm_lots", ["tenant_id", "expires_on"])


def downgrade() -> None:
    op.drop_table("rm_lots")
    op.drop_table("rm_lot_streams")
