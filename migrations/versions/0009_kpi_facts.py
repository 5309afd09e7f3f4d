"""Read models: KPI facts by business day and warehouse, and the state they are folded with.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

#: The facts of a day as (name, whole): whole counts are integers, the rest exact decimals.
FACTS = (
    ("value_change", False),
    ("sold_cost", False),
    ("returned_cost", False),
    ("expired_quantity", False),
    ("expired_value", False),
    ("stockouts", True),
    ("counts", True),
    ("accurate_counts", True),
    ("ordered_units", False),
    ("shipped_units", False),
    ("order_lines", True),
    ("filled_lines", True),
    ("received_units", False),
    ("on_time_units", False),
)


def upgrade() -> None:
    op.create_table(
        "rm_kpi_tenants",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "rm_kpi_stock_items",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("on_hand", exact_decimal(), nullable=False),
        sa.Column("reserved", exact_decimal(), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "stream_id"),
    )
    op.create_table(
        "rm_kpi_orders",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("lines", sa.Text, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id"),
    )
    op.create_table(
        "rm_kpi_days",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        *[
            sa.Column(name, sa.Integer if whole else exact_decimal(), nullable=False)
            for name, whole in FACTS
        ],
        sa.PrimaryKeyConstraint("tenant_id", "day", "warehouse"),
    )


def downgrade() -> None:
    op.drop_table("rm_kpi_days")
    op.drop_table("rm_kpi_orders")
    op.drop_table("rm_kpi_stock_items")
    op.drop_table("rm_kpi_tenants")
