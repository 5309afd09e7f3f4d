"""Read models: lots in bins, and the stock items the lots projection has seen.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _decimal() -> sa.String | sa.Numeric[Decimal]:
    """Exact decimals: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC rounds via float)."""
    return sa.String(64) if _sqlite() else sa.Numeric(38, 12)


def _instant() -> sa.String | sa.DateTime:
    """Aware timestamps: timestamptz on PostgreSQL, ISO 8601 text on SQLite."""
    return sa.String(40) if _sqlite() else sa.DateTime(timezone=True)


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
        sa.Column("on_hand", _decimal(), nullable=False),
        sa.Column("reserved", _decimal(), nullable=False),
        sa.Column("value", _decimal(), nullable=False),
        sa.Column("expires_on", sa.Date, nullable=True),
        sa.Column("received_at", _instant(), nullable=False),
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
