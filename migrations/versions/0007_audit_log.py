"""Read models: the audit log, every event with its metadata and hash.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.columns import instant

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rm_audit_log",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("stream_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("recorded_at", instant(), nullable=False),
        sa.Column("effective_at", instant(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "position"),
    )
    op.create_index("rm_audit_log_stream", "rm_audit_log", ["tenant_id", "stream_id", "version"])


def downgrade() -> None:
    op.drop_table("rm_audit_log")
