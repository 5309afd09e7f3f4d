"""PostgreSQL: one events table hash-partitioned by tenant, a head row per tenant.

A save is one autocommit statement: it moves the tenant's head row (which serialises that
tenant's writers and no one else) and inserts the hash-chained events. Positions are therefore
gap-free and in commit order per tenant, and tenants never wait on each other.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
    Subscription,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresRecorder,
)
from eventsourcing.utils import retry
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, tuple_row

from domain.idempotency import IdempotencyKeyTaken, IdempotencyRecord
from eventstore.envelope import ZERO_HASH, encode_payloads, payload_state
from eventstore.queries import (
    EVENTS,
    HEADS,
    HEADS_QUERY,
    IDEMPOTENCY,
    SNAPSHOTS,
    ahead_query,
    chain_query,
    head_query,
    idempotency_query,
    notifications_query,
    range_query,
    read_query,
    record_tracking_query,
    stream_query,
    tracked_query,
)
from eventstore.records import ChainRow, RecordedEvent, TenantHead, TrackerLag
from eventstore.store import DEFAULT_PAGE_SIZE, LedgerStore

MARK = "%s"

# Every save notifies this channel with "<tenant id>:<new head position>". The notification is
# part of the saving statement's transaction: listeners hear of a save only once it committed.
CHANNEL = "ledger_events"

# One event: the head row yields the new position and hash; the insert reuses them. The
# notification is joined in so that it is sent exactly when a head row moved.
INSERT_ONE = f"""
WITH head AS (
    UPDATE {HEADS}
       SET position = position + 1,
           hash = sha256(hash || %(payload)s::bytea)
     WHERE tenant_id = %(tenant_id)s::uuid
 RETURNING position, hash
), notified AS MATERIALIZED (
    SELECT pg_notify('{CHANNEL}', %(tenant_id)s::text || ':' || head.position) FROM head
)
INSERT INTO {EVENTS} (tenant_id, originator_id, originator_version, position, topic, payload, hash)
SELECT %(tenant_id)s::uuid, %(originator_id)s::uuid, %(originator_version)s::bigint,
       head.position, %(topic)s::text, %(payload)s::bytea, head.hash
  FROM head CROSS JOIN notified
RETURNING position
"""  # noqa: S608

# Several events: the head remembers the hash it had; the chain from it is computed once
# (MATERIALIZED: otherwise the planner may evaluate it again for every inserted row).
INSERT_MANY = f"""
WITH head AS (
    UPDATE {HEADS}
       SET position = position + %(n)s::bigint,
           prev_hash = hash,
           hash = (ledger_hash_chain(hash, %(payloads)s::bytea[]))[%(n)s::int]
     WHERE tenant_id = %(tenant_id)s::uuid
 RETURNING position - %(n)s::bigint AS base, prev_hash
), chain AS MATERIALIZED (
    SELECT head.base, ledger_hash_chain(head.prev_hash, %(payloads)s::bytea[]) AS hashes
      FROM head
), notified AS MATERIALIZED (
    SELECT pg_notify('{CHANNEL}', %(tenant_id)s::text || ':' || (head.base + %(n)s::bigint))
      FROM head
)
INSERT INTO {EVENTS} (tenant_id, originator_id, originator_version, position, topic, payload, hash)
SELECT %(tenant_id)s::uuid, e.originator_id, e.originator_version, chain.base + e.ord,
       e.topic, e.payload, chain.hashes[e.ord]
  FROM chain
 CROSS JOIN notified
 CROSS JOIN LATERAL unnest(%(ids)s::uuid[], %(versions)s::bigint[], %(topics)s::text[],
                           %(payloads)s::bytea[])
       WITH ORDINALITY AS e(originator_id, originator_version, topic, payload, ord)
RETURNING position
"""  # noqa: S608


def with_idempotency(statement: str, position: str) -> str:
    """The same save, also recording the command's idempotency key (one statement, atomic)."""
    keyed = (
        "\n), idem AS (\n"  # noqa: S608
        f"    INSERT INTO {IDEMPOTENCY} (tenant_id, key, fingerprint, outcome, position)\n"
        "    SELECT %(tenant_id)s::uuid, %(key)s::text, %(fingerprint)s::bytea,"
        f" %(outcome)s::bytea, {position} FROM head\n"
        f")\nINSERT INTO {EVENTS} "
    )
    return statement.replace(f"\n)\nINSERT INTO {EVENTS} ", keyed, 1)


INSERT_ONE_KEYED = with_idempotency(INSERT_ONE, "head.position")
INSERT_MANY_KEYED = with_idempotency(INSERT_MANY, "head.base + %(n)s::bigint")

CREATE_HEAD = f"""
INSERT INTO {HEADS} (tenant_id, position, hash, prev_hash) VALUES (%s, 0, %s, %s)
ON CONFLICT (tenant_id) DO NOTHING
"""  # noqa: S608

RETRYABLE = (InterfaceError, OperationalError)


class TenantPostgresRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL application recorder, bound to one tenant.

    Notification ids are the tenant's positions. The parent's constructor is not called: it
    composes DDL, composite types and a table lock that this schema (made by Alembic) replaces.
    """

    def __init__(self, datastore: PostgresDatastore, tenant_id: UUID) -> None:
        PostgresRecorder.__init__(self, datastore)
        self.tenant_id = tenant_id
        self.events_table_name = EVENTS
        self.channel_name = CHANNEL

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            self._record_idempotency_alone(kwargs.get("idempotency"))
            return []
        payloads = encode_payloads(self.tenant_id, stored_events, kwargs.get("meta"))
        params: dict[str, Any]
        if len(stored_events) == 1:
            event = stored_events[0]
            statement, params = (
                INSERT_ONE,
                {
                    "tenant_id": self.tenant_id,
                    "originator_id": event.originator_id,
                    "originator_version": event.originator_version,
                    "topic": event.topic,
                    "payload": payloads[0],
                },
            )
        else:
            statement, params = (
                INSERT_MANY,
                {
                    "tenant_id": self.tenant_id,
                    "n": len(stored_events),
                    "payloads": payloads,
                    "ids": [s.originator_id for s in stored_events],
                    "versions": [s.originator_version for s in stored_events],
                    "topics": [s.topic for s in stored_events],
                },
            )
        idempotency: IdempotencyRecord | None = kwargs.get("idempotency")
        if idempotency is not None:
            statement = INSERT_ONE_KEYED if statement is INSERT_ONE else INSERT_MANY_KEYED
            params.update(
                key=idempotency.key,
                fingerprint=idempotency.fingerprint,
                outcome=idempotency.outcome,
            )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            try:
                positions = self._execute_save(curs, statement, params)
            except psycopg.errors.UniqueViolation as error:
                if error.diag.constraint_name == "ledger_idempotency_pkey":
                    raise IdempotencyKeyTaken(idempotency.key if idempotency else "") from None
                raise
        return positions

    def _record_idempotency_alone(self, record: IdempotencyRecord | None) -> None:
        """A keyed command that changed nothing still keeps its outcome under its key."""
        if record is None:
            return
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            try:
                curs.execute(
                    f"INSERT INTO {IDEMPOTENCY} (tenant_id, key, fingerprint, outcome, position)"  # noqa: S608
                    f" SELECT %s, %s, %s, %s, COALESCE((SELECT position FROM {HEADS}"
                    " WHERE tenant_id = %s), 0)",
                    (
                        self.tenant_id,
                        record.key,
                        record.fingerprint,
                        record.outcome,
                        self.tenant_id,
                    ),
                )
            except psycopg.errors.UniqueViolation:
                raise IdempotencyKeyTaken(record.key) from None

    def _execute_save(
        self, curs: psycopg.Cursor[DictRow], statement: str, params: dict[str, Any]
    ) -> list[int]:
        curs.execute(statement, params, prepare=True)
        positions = sorted(row["position"] for row in curs.fetchall())
        if not positions:
            # The tenant's first save: create its head row, then save again.
            curs.execute(CREATE_HEAD, (self.tenant_id, ZERO_HASH, ZERO_HASH))
            curs.execute(statement, params, prepare=True)
            positions = sorted(row["position"] for row in curs.fetchall())
        return positions

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def select_idempotency(self, key: str) -> IdempotencyRecord | None:
        """What an idempotency key recorded in this tenant, if anything."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(idempotency_query(MARK), (self.tenant_id, key), prepare=True)
            row = curs.fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            key, bytes(row["fingerprint"]), bytes(row["outcome"]), row["position"]
        )

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        rows = _select_stream(
            self.datastore, EVENTS, "payload", self.tenant_id, originator_id, gt, lte, desc, limit
        )
        return [
            StoredEvent(
                originator_id, r["originator_version"], r["topic"], payload_state(r["payload"])
            )
            for r in rows
        ]

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        statement, params = notifications_query(
            MARK, self.tenant_id, start, limit, stop, topics, inclusive_of_start
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                Notification(
                    id=row["position"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=payload_state(row["payload"]),
                )
                for row in curs.fetchall()
            ]

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def max_notification_id(self) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(head_query(MARK), (self.tenant_id,), prepare=True)
            row = curs.fetchone()
            return None if row is None or row["position"] == 0 else int(row["position"])

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        raise NotImplementedError("follow a tenant's positions with LedgerStore.read()")


class TenantPostgresSnapshotRecorder(PostgresAggregateRecorder):
    """The library's aggregate recorder for snapshots, bound to one tenant."""

    def __init__(self, datastore: PostgresDatastore, tenant_id: UUID) -> None:
        PostgresRecorder.__init__(self, datastore)
        self.tenant_id = tenant_id
        self.events_table_name = SNAPSHOTS

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Two processes may take the same snapshot; the first one stands.
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.executemany(
                f"INSERT INTO {SNAPSHOTS} (tenant_id, originator_id, originator_version,"  # noqa: S608
                " topic, state) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (self.tenant_id, s.originator_id, s.originator_version, s.topic, s.state)
                    for s in stored_events
                ],
            )
        return None

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        rows = _select_stream(
            self.datastore, SNAPSHOTS, "state", self.tenant_id, originator_id, gt, lte, desc, limit
        )
        return [
            StoredEvent(originator_id, r["originator_version"], r["topic"], r["state"])
            for r in rows
        ]


def _select_stream(
    datastore: PostgresDatastore,
    table: str,
    column: str,
    tenant_id: UUID,
    originator_id: UUID | str,
    gt: int | None,
    lte: int | None,
    desc: bool,
    limit: int | None,
) -> list[DictRow]:
    statement, params = stream_query(
        table, column, MARK, tenant_id, originator_id, gt, lte, desc, limit
    )
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, params, prepare=True)
        return curs.fetchall()


class PostgresLedgerStore(LedgerStore):
    """The event store on PostgreSQL, sharing one connection pool among all tenants."""

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10) -> None:
        self.url = url
        params = conninfo_to_dict(url)
        self.datastore = PostgresDatastore(
            dbname=str(params.get("dbname") or "postgres"),
            host=str(params.get("host") or "127.0.0.1"),
            port=str(params.get("port") or "5432"),
            user=str(params.get("user") or "postgres"),
            password=str(params.get("password") or ""),
            pool_size=pool_size,
            max_overflow=max_overflow,
            idle_in_transaction_session_timeout=60,
            # No health-check query per checkout (a round trip per save): a broken connection
            # fails its statement, is discarded by the pool, and the recorders' retry reconnects.
            pre_ping=False,
        )

    def address(self) -> tuple[str, str]:
        return ("postgresql", self.url)

    def application_recorder(self, tenant_id: UUID) -> ApplicationRecorder:
        return TenantPostgresRecorder(self.datastore, tenant_id)

    def snapshot_recorder(self, tenant_id: UUID) -> AggregateRecorder:
        return TenantPostgresSnapshotRecorder(self.datastore, tenant_id)

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def read(
        self, tenant_id: UUID, after: int = 0, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[RecordedEvent]:
        return self._events(tenant_id, read_query(MARK), (tenant_id, after, limit))

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def read_range(
        self,
        tenant_id: UUID,
        after: int,
        last: int,
        kinds: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        params: tuple[Any, ...] = (tenant_id, after, last)
        if kinds is not None:
            params = (*params, sorted(kinds))
        statement = range_query(MARK, None if kinds is None else f"= ANY({MARK})")
        return self._events(tenant_id, statement, params)

    def _events(
        self, tenant_id: UUID, statement: str, params: Sequence[Any]
    ) -> list[RecordedEvent]:
        """Events by a statement selecting (position, stream, version, topic, payload, hash):
        binary results (bytea as raw bytes, as in `read_chain`) in plain tuples."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            rows: list[tuple[int, UUID, int, str, bytes, bytes]] = curs.fetchall()
        return [
            RecordedEvent(tenant_id, position, stream_id, version, topic, payload, digest)
            for position, stream_id, version, topic, payload, digest in rows
        ]

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def read_chain(
        self, tenant_id: UUID, after: int = 0, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[ChainRow]:
        # Binary results: bytea arrives as raw bytes (text sends hex, twice the size to encode,
        # send and decode); plain tuples: no row objects. About 3-5x the rows/s of `read`.
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            curs.execute(chain_query(MARK), (tenant_id, after, after + limit), prepare=True)
            rows: list[ChainRow] = curs.fetchall()
            return rows

    def head(self, tenant_id: UUID) -> TenantHead:
        rows = self._fetch(head_query(MARK), (tenant_id,))
        if not rows:
            return TenantHead(tenant_id, 0, ZERO_HASH)
        return TenantHead(tenant_id, rows[0]["position"], bytes(rows[0]["hash"]))

    def heads(self) -> list[TenantHead]:
        rows = self._fetch(HEADS_QUERY, ())
        return [TenantHead(r["tenant_id"], r["position"], bytes(r["hash"])) for r in rows]

    def tenants_ahead_of(self, tracker: str) -> list[TrackerLag]:
        rows = self._fetch(ahead_query(MARK), (tracker,))
        return [TrackerLag(r["tenant_id"], r["head"], r["tracked"]) for r in rows]

    def tracked_position(self, tracker: str, tenant_id: UUID) -> int:
        rows = self._fetch(tracked_query(MARK), (tenant_id, tracker))
        return int(rows[0]["position"]) if rows else 0

    def record_tracking(self, tracker: str, tenant_id: UUID, position: int) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute(record_tracking_query(MARK), (tenant_id, tracker, position))

    def close(self) -> None:
        self.datastore.close()

    @retry(RETRYABLE, max_attempts=10, wait=0.2)
    def _fetch(self, statement: str, params: Sequence[Any]) -> list[DictRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()
