"""Row-level security on every read-model table, keyed on the transaction's tenant setting.

A role that neither owns the tables nor bypasses row-level security sees and writes only the
rows of the tenant named by `SET LOCAL ledger.tenant_id` (see projections.tenancy); without it,
none. The owner (migrations, runners, rebuilds) is not restricted. PostgreSQL only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

POLICY = "tenant_isolation"
TENANT = "NULLIF(current_setting('ledger.tenant_id', true), '')::uuid"
TABLES = (
    "projection_tracking",
    "projection_failures",
    "rm_stock_levels",
    "rm_stock_level_orders",
    "rm_lot_streams",
    "rm_lots",
    "rm_movement_streams",
    "rm_movements",
    "rm_orders",
    "rm_order_lines",
    "rm_audit_log",
    "rm_products",
    "rm_warehouses",
    "rm_bins",
    "rm_kpi_tenants",
    "rm_kpi_stock_items",
    "rm_kpi_orders",
    "rm_kpi_days",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} USING (tenant_id = {TENANT})"
            f" WITH CHECK (tenant_id = {TENANT})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
