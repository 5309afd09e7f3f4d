"""Column types the read-model revisions share; a revision's tables never change once released."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from alembic import op


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def exact_decimal() -> sa.String | sa.Numeric[Decimal]:
    """Exact decimals: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC rounds via float)."""
    return sa.String(64) if _sqlite() else sa.Numeric(38, 12)


def instant() -> sa.String | sa.DateTime:
    """Aware timestamps: timestamptz on PostgreSQL, ISO 8601 text on SQLite."""
    return sa.String(40) if _sqlite() else sa.DateTime(timezone=True)
