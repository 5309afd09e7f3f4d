"""Read models: incoming stock on stock levels; the catalog (products, warehouses, bins).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Existing rows start with nothing incoming; the default is dropped once they have it, so
    # every later row states its own value. A row may now exist for incoming stock alone.
    with op.batch_alter_table("rm_stock_levels") as batch:
        batch.add_column(sa.Column("incoming", exact_decimal(), nullable=False, server_default="0"))
        batch.alter_column("stream_id", existing_type=sa.Uuid, nullable=True)
    with op.batch_alter_table("rm_stock_levels") as batch:
        batch.alter_column("incoming", existing_type=exact_decimal(), server_default=None)
    op.create_table(
        "rm_stock_level_orders",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("ordered", exact_decimal(), nullable=False),
        sa.Column("received", exact_decimal(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id", "line"),
    )
    _catalog()


def _catalog() -> None:
    op.create_table(
        "rm_products",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("uom", sa.String(64), nullable=False),
        sa.Column("decimals", sa.Integer, nullable=False),
        sa.Column("lot_tracked", sa.Boolean, nullable=False),
        sa.Column("expiry_tracked", sa.Boolean, nullable=False),
        sa.Column("removal_policy", sa.String(16), nullable=False),
        sa.Column("shelf_life_days", sa.Integer, nullable=True),
        sa.Column("expiry_alert_days", sa.Integer, nullable=True),
        sa.Column("reorder_point", exact_decimal(), nullable=True),
        sa.Column("reorder_quantity", exact_decimal(), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("barcodes", sa.Text, nullable=True),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sku"),
        sa.UniqueConstraint("tenant_id", "stream_id", name="rm_products_stream_key"),
    )
    op.create_table(
        "rm_warehouses",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "code"),
        sa.UniqueConstraint("tenant_id", "stream_id", name="rm_warehouses_stream_key"),
    )
    op.create_table(
        "rm_bins",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("warehouse", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("pickable", sa.Boolean, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "warehouse", "code"),
    )


def downgrade() -> None:
    op.drop_table("rm_bins")
    op.drop_table("rm_warehouses")
    op.drop_table("rm_products")
    op.drop_table("rm_stock_level_orders")
    # Rows of incoming stock alone have no stock item; they leave with the column.
    op.execute(sa.text("DELETE FROM rm_stock_levels WHERE stream_id IS NULL"))
    with op.batch_alter_table("rm_stock_levels") as batch:
        batch.alter_column("stream_id", existing_type=sa.Uuid, nullable=False)
        batch.drop_column("incoming")
