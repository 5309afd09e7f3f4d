"""Product barcodes in the catalog read model: what a scanned code names, by tenant and code.

Products recorded before barcodes existed have none, so the new table starts empty; on
PostgreSQL it carries the same row-level security policy as every read-model table (0010).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import exact_decimal

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

POLICY = "tenant_isolation"
TENANT = "NULLIF(current_setting('ledger.tenant_id', true), '')::uuid"
#: The read-model tables this revision adds (each under row-level security on PostgreSQL).
TABLES = ("rm_product_barcodes",)


def upgrade() -> None:
    op.create_table(
        "rm_product_barcodes",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("pack_quantity", exact_decimal(), nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "code"),
    )
    op.create_index("rm_product_barcodes_sku", "rm_product_barcodes", ["tenant_id", "sku"])
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} USING (tenant_id = {TENANT})"
            f" WITH CHECK (tenant_id = {TENANT})"
        )


def downgrade() -> None:
    op.drop_index("rm_product_barcodes_sku", table_name="rm_product_barcodes")
    op.drop_table("rm_product_barcodes")  # its policy goes with it
