"""Tenant-partitioned event store on the `eventsourcing` library (PostgreSQL and SQLite).

Each tenant's events carry gap-free, commit-ordered positions and a sha256 hash chain.
"""
