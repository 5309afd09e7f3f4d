"""The read-only role API reads switch to, so row-level security is a wall and not a filter.

`ledger_reader` neither owns the read models nor bypasses row-level security; the service's
database user (the owner) becomes a member and switches to it with `SET LOCAL ROLE` in every
tenant-scoped read transaction (see projections.tenancy), where the tenant_isolation policies
of revisions 0010, 0011 and 0013 leave it only the transaction's tenant's rows. It may read
those tables only (never the event store, which has no such policy); a later read model grants
it in its own revision. Roles belong to the whole PostgreSQL server: an
existing `ledger_reader` is reused. A user that may not create roles skips this revision's
role (reads then run as the owner, filtered by tenant in every query). PostgreSQL only.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import importlib
import logging

from alembic import op
from sqlalchemy import text

revision = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None

ROLE = "ledger_reader"
#: Every table under the tenant_isolation policy (revisions 0010, 0011, 0013).
TABLES = (
    *importlib.import_module("migrations.versions.0010_row_level_security").TABLES,
    *importlib.import_module("migrations.versions.0011_barcodes").TABLES,
    "webhook_deliveries",
)
LOG = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    exists = bind.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first()
    may_create = bind.execute(
        text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if not exists and not may_create:
        LOG.warning("%s not created: this user may not create roles", ROLE)
        return
    if not exists:
        op.execute(f"CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT")
    op.execute(f"GRANT {ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA {_schema()} TO {ROLE}")
    op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {ROLE}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first():
        op.execute(f"REVOKE SELECT ON {', '.join(TABLES)} FROM {ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA {_schema()} FROM {ROLE}")


def _schema() -> str:
    name = str(op.get_bind().execute(text("SELECT current_schema()")).scalar())
    return '"' + name.replace('"', '""') + '"'
