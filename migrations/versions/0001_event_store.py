"""Event store: tenant heads, hash-partitioned events and snapshots, tracking, the hash chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import context, op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 1024


def partition_count() -> int:
    """From ``ledger db upgrade --partitions N`` or ``alembic -x partitions=N``; default 16."""
    value = context.config.attributes.get("partitions") or context.get_x_argument(
        as_dictionary=True
    ).get("partitions", DEFAULT_PARTITIONS)
    count = int(str(value))
    if not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be between 1 and {MAX_PARTITIONS}, not {count}")
    return count


POSTGRES_TABLES = """
CREATE TABLE ledger_tenant_heads (
    tenant_id uuid PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0),
    hash bytea NOT NULL,
    prev_hash bytea NOT NULL
);
COMMENT ON TABLE ledger_tenant_heads IS
    'Per tenant: last position and hash. Updated in the statement that appends, '
    'so one tenant''s writers are serialised and other tenants are not.';

CREATE TABLE ledger_events (
    tenant_id uuid NOT NULL,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    position bigint NOT NULL,
    topic text NOT NULL,
    payload bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (tenant_id, originator_id, originator_version)
) PARTITION BY HASH (tenant_id);
COMMENT ON COLUMN ledger_events.payload IS
    'Header JSON, a newline, then the serialised event: the exact bytes hashed and audited.';
COMMENT ON COLUMN ledger_events.hash IS 'sha256(previous hash || payload); 32 zero bytes before 1.';
CREATE UNIQUE INDEX ledger_events_position_key ON ledger_events (tenant_id, position);

CREATE TABLE ledger_snapshots (
    tenant_id uuid NOT NULL,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text NOT NULL,
    state bytea NOT NULL,
    PRIMARY KEY (tenant_id, originator_id, originator_version)
) PARTITION BY HASH (tenant_id);

CREATE TABLE ledger_tracking (
    tenant_id uuid NOT NULL,
    tracker text NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    PRIMARY KEY (tenant_id, tracker)
);

CREATE FUNCTION ledger_hash_chain(previous bytea, payloads bytea[]) RETURNS bytea[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    hashes bytea[] := '{}';
    payload bytea;
BEGIN
    FOREACH payload IN ARRAY payloads LOOP
        previous := sha256(previous || payload);
        hashes := hashes || previous;
    END LOOP;
    RETURN hashes;
END
$$;

CREATE FUNCTION ledger_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_events_append_only();
CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON ledger_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_events_append_only();
"""

SQLITE_TABLES = [
    """CREATE TABLE ledger_tenant_heads (
        tenant_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL CHECK (position >= 0),
        hash BLOB NOT NULL,
        prev_hash BLOB NOT NULL
    )""",
    """CREATE TABLE ledger_events (
        tenant_id TEXT NOT NULL,
        originator_id TEXT NOT NULL,
        originator_version INTEGER NOT NULL,
        position INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (tenant_id, originator_id, originator_version)
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX ledger_events_position_key ON ledger_events (tenant_id, position)",
    """CREATE TABLE ledger_snapshots (
        tenant_id TEXT NOT NULL,
        originator_id TEXT NOT NULL,
        originator_version INTEGER NOT NULL,
        topic TEXT NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (tenant_id, originator_id, originator_version)
    ) WITHOUT ROWID""",
    """CREATE TABLE ledger_tracking (
        tenant_id TEXT NOT NULL,
        tracker TEXT NOT NULL,
        position INTEGER NOT NULL CHECK (position >= 0),
        PRIMARY KEY (tenant_id, tracker)
    ) WITHOUT ROWID""",
    """CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
        BEGIN SELECT RAISE(ABORT, 'ledger_events is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
        BEGIN SELECT RAISE(ABORT, 'ledger_events is append-only (DELETE refused)'); END""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_TABLES)
        count = partition_count()
        for table in ("ledger_events", "ledger_snapshots"):
            for remainder in range(count):
                op.execute(
                    f"CREATE TABLE {table}_p{remainder:03d} PARTITION OF {table}"
                    f" FOR VALUES WITH (MODULUS {count}, REMAINDER {remainder})"
                )
    else:
        for statement in SQLITE_TABLES:
            op.execute(statement)


def downgrade() -> None:
    for table in ("ledger_tracking", "ledger_snapshots", "ledger_events", "ledger_tenant_heads"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_hash_chain(bytea, bytea[])")
        op.execute("DROP FUNCTION IF EXISTS ledger_events_append_only()")
