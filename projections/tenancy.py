"""The tenant of a read-model transaction, for PostgreSQL row-level security.

Every query function filters by its tenant argument; on PostgreSQL the tables also carry a
row-level security policy (migration 0010) as a second wall. `tenant_scope` names the tenant for
the current transaction and, given a role, switches to it for that transaction only, so a
connection pool of the tables' owner can still serve reads that the policy restricts.
"""

from __future__ import annotations

import re
from uuid import UUID

from sqlalchemy import Connection, text

SETTING = "ledger.tenant_id"
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def tenant_scope(conn: Connection, tenant_id: UUID, *, role: str | None = None) -> None:
    """Restricts the rest of `conn`'s transaction to one tenant's rows (PostgreSQL; a no-op on
    SQLite, which has no row-level security). `role` must not own the tables nor bypass RLS."""
    if conn.dialect.name != "postgresql":
        return
    if role is not None:
        if not _ROLE.match(role):
            raise ValueError(f"not a role name: {role!r}")
        conn.execute(text(f'SET LOCAL ROLE "{role}"'))
    conn.execute(
        text("SELECT set_config(:name, :tenant, true)"), {"name": SETTING, "tenant": str(tenant_id)}
    )
