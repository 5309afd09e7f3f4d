"""Read models: purchase and sales orders with their lines.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal, instant

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rm_orders",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("partner", sa.String(200), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("expected_on", sa.Date, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id"),
    )
    op.create_index("rm_orders_status", "rm_orders", ["tenant_id", "kind", "status"])
    op.create_index("rm_orders_external", "rm_orders", ["tenant_id", "kind", "external_id"])
    op.create_table(
        "rm_order_lines",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("ordered", exact_decimal(), nullable=False),
        sa.Column("unit_cost", exact_decimal(), nullable=True),
        *[
            sa.Column(name, exact_decimal(), nullable=False)
            for name in ("received", "allocated", "shipped", "returned", "cancelled")
        ],
        sa.PrimaryKeyConstraint("tenant_id", "order_id", "line"),
    )


def downgrade() -> None:
    op.drop_table("rm_order_lines")
    op.drop_table("rm_orders")
