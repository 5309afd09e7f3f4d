"""Alembic migrations: every table, index, partition and function of the ledger's schema."""
