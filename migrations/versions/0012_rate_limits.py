"""Per-tenant request counters shared by every API replica.

One row per tenant and one-second window; a request adds one to its window's count in a single
upsert. Old windows are deleted by the replicas now and then.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Counters of past seconds need not survive a crash: on PostgreSQL the table writes no WAL,
    # so the upsert every request makes commits without waiting for a disk flush.
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "api_rate_limits",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "window_start", name="api_rate_limits_pkey"),
        prefixes=unlogged,
    )


def downgrade() -> None:
    op.drop_table("api_rate_limits")
