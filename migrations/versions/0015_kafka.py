"""The event backbone: the store's id, parked consumer messages, recorded alerts, and the
body of each pending webhook delivery.

`ledger_store` holds one row: the id that tells this store's positions from those of another
store (or of this database restored from a backup, after `ledger db new-store-id`); the relay
puts it in every message and consumers skip messages of another store. `consumer_parked` keeps
messages a consumer could not read (poison), so it can move on. `alert_records` is what the
alerts consumer raised and cleared. `webhook_subscriptions` is each tenant's webhooks as the
delivery side follows them from the tenant's events (from which position each one subscribes),
and `webhook_deliveries.payload` is the body a pending delivery sends. On PostgreSQL the
tenant tables carry the tenant_isolation policy and `ledger_reader` may read them (revisions
0010 and 0014).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from migrations.columns import instant

revision = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

POLICY = "tenant_isolation"
TENANT = "NULLIF(current_setting('ledger.tenant_id', true), '')::uuid"
ROLE = "ledger_reader"
#: Tenant tables of this revision under the tenant_isolation policy.
TABLES = ("alert_records", "webhook_subscriptions")


def upgrade() -> None:
    store = op.create_table(
        "ledger_store",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("created_at", instant(), nullable=False),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    now = datetime.now(UTC)
    op.bulk_insert(store, [{"id": uuid.uuid4(), "created_at": now.isoformat() if sqlite else now}])
    op.create_table(
        "consumer_parked",
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("parked_at", instant(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", "offset"),
    )
    op.create_table(
        "alert_records",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("warehouse", sa.String(100), nullable=True),
        sa.Column("lot", sa.String(100), nullable=True),
        sa.Column("bin", sa.String(100), nullable=True),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("raised_at", instant(), nullable=False),
        sa.Column("raised_position", sa.BigInteger, nullable=False),
        sa.Column("cleared_at", instant(), nullable=True),
        sa.Column("cleared_position", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "alert_id"),
        sa.CheckConstraint(
            "kind IN ('low_stock', 'expiring', 'expired', 'order_status')",
            name="alert_record_kind",
        ),
    )
    op.create_index("alert_records_subject", "alert_records", ["tenant_id", "kind", "subject"])
    op.create_index("alert_records_raised", "alert_records", ["tenant_id", "raised_position"])
    op.create_table(
        "webhook_subscriptions",
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("sealed_secret", sa.Text, nullable=False),
        sa.Column("registered_position", sa.BigInteger, nullable=False),
        sa.Column("disabled_position", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "webhook_id"),
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("payload", sa.Text, nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} USING (tenant_id = {TENANT})"
            f" WITH CHECK (tenant_id = {TENANT})"
        )
    if bind.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first():
        op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {ROLE}")


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("payload")
    op.drop_table("webhook_subscriptions")
    op.drop_table("alert_records")
    op.drop_table("consumer_parked")
    op.drop_table("ledger_store")
