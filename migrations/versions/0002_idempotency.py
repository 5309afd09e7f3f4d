"""Idempotency keys, recorded in the same statement as the events they caused.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE TABLE ledger_idempotency (
                tenant_id uuid NOT NULL,
                key text NOT NULL,
                fingerprint bytea NOT NULL,
                outcome bytea NOT NULL,
                position bigint NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT ledger_idempotency_pkey PRIMARY KEY (tenant_id, key)
            )
            """
        )
    else:
        op.execute(
            """
            CREATE TABLE ledger_idempotency (
                tenant_id TEXT NOT NULL,
                key TEXT NOT NULL,
                fingerprint BLOB NOT NULL,
                outcome BLOB NOT NULL,
                position INTEGER NOT NULL,
                recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                PRIMARY KEY (tenant_id, key)
            ) WITHOUT ROWID
            """
        )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ledger_idempotency")
