"""SQLite: the embedded default, one file with the same tenant column, positions and hash chain.

SQLite has one writer at a time, so every save runs in a ``BEGIN IMMEDIATE`` transaction: it
reads the tenant's head, chains the hashes in Python, inserts the events and moves the head.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    IntegrityError,
    Notification,
    OperationalError,
    StoredEvent,
    Subscription,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteCursor,
    SQLiteDatastore,
)

from domain.idempotency import IdempotencyKeyTaken, IdempotencyRecord
from eventstore.envelope import ZERO_HASH, chain_all, encode_payloads, payload_state
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

MARK = "?"

LOCK_TIMEOUT_SECONDS = 30


@contextmanager
def immediate_transaction(datastore: SQLiteDatastore) -> Iterator[SQLiteCursor]:
    """A write transaction that takes SQLite's write lock at its start (no upgrade deadlocks)."""
    with datastore.get_connection(commit=True) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            conn.commit()
        except sqlite3.IntegrityError as error:
            conn.rollback()
            raise IntegrityError(str(error)) from error
        except sqlite3.OperationalError as error:
            _rollback(conn)
            raise OperationalError(str(error)) from error
        except sqlite3.Error as error:
            _rollback(conn)
            raise DatabaseError(str(error)) from error
        except BaseException:
            _rollback(conn)
            raise


def _rollback(conn: SQLiteConnection) -> None:
    try:
        conn.rollback()
    except sqlite3.Error:
        conn.close()


class TenantSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite application recorder, bound to one tenant; ids are its positions."""

    def __init__(self, datastore: SQLiteDatastore, tenant_id: UUID) -> None:
        super().__init__(datastore, EVENTS)
        self.tenant_id = tenant_id
        self.tenant_key = str(tenant_id)

    def construct_create_table_statements(self) -> list[str]:
        return []  # Alembic owns the schema.

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            record: IdempotencyRecord | None = kwargs.get("idempotency")
            if record is not None:
                # A keyed command that changed nothing still keeps its outcome under its key.
                with immediate_transaction(self.datastore) as cursor:
                    cursor.execute(head_query(MARK), (self.tenant_key,))
                    row = cursor.fetchone()
                    self._record_idempotency(cursor, record, row["position"] if row else 0)
            return []
        payloads = encode_payloads(self.tenant_id, stored_events, kwargs.get("meta"))
        with immediate_transaction(self.datastore) as cursor:
            cursor.execute(
                f"SELECT position, hash FROM {HEADS} WHERE tenant_id = ?",  # noqa: S608
                (self.tenant_key,),
            )
            row = cursor.fetchone()
            base, previous = (row["position"], row["hash"]) if row else (0, ZERO_HASH)
            hashes = chain_all(previous, payloads)
            positions = list(range(base + 1, base + 1 + len(payloads)))
            idempotency: IdempotencyRecord | None = kwargs.get("idempotency")
            if idempotency is not None:
                self._record_idempotency(cursor, idempotency, positions[-1])
            cursor.executemany(
                f"INSERT INTO {EVENTS} (tenant_id, originator_id, originator_version,"  # noqa: S608
                " position, topic, payload, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self.tenant_key,
                        str(s.originator_id),
                        s.originator_version,
                        p,
                        s.topic,
                        payload,
                        digest,
                    )
                    for s, p, payload, digest in zip(
                        stored_events, positions, payloads, hashes, strict=True
                    )
                ],
            )
            cursor.execute(
                f"INSERT INTO {HEADS} (tenant_id, position, hash, prev_hash)"  # noqa: S608
                " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
                " position = excluded.position, hash = excluded.hash,"
                " prev_hash = excluded.prev_hash",
                (self.tenant_key, positions[-1], hashes[-1], previous),
            )
        return positions

    def _record_idempotency(
        self, cursor: SQLiteCursor, record: IdempotencyRecord, position: int
    ) -> None:
        try:
            cursor.execute(
                f"INSERT INTO {IDEMPOTENCY} (tenant_id, key, fingerprint, outcome, position)"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?)",
                (self.tenant_key, record.key, record.fingerprint, record.outcome, position),
            )
        except sqlite3.IntegrityError:
            raise IdempotencyKeyTaken(record.key) from None

    def select_idempotency(self, key: str) -> IdempotencyRecord | None:
        """What an idempotency key recorded in this tenant, if anything."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(idempotency_query(MARK), (self.tenant_key, key))
            row = cursor.fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            key, _blob(row["fingerprint"]), _blob(row["outcome"]), row["position"]
        )

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
            self.datastore, EVENTS, "payload", self.tenant_key, originator_id, gt, lte, desc, limit
        )
        return [
            StoredEvent(originator_id, r["originator_version"], r["topic"], payload_state(r[2]))
            for r in rows
        ]

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
            MARK, self.tenant_key, start, limit, stop, topics, inclusive_of_start
        )
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            return [
                Notification(
                    id=r["position"],
                    originator_id=UUID(r["originator_id"]),
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=payload_state(r["payload"]),
                )
                for r in cursor.fetchall()
            ]

    def max_notification_id(self) -> int:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(head_query(MARK), (self.tenant_key,))
            row = cursor.fetchone()
            return int(row["position"]) if row else 0

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        raise NotImplementedError("follow a tenant's positions with LedgerStore.read()")


class TenantSQLiteSnapshotRecorder(SQLiteAggregateRecorder):
    """The library's SQLite aggregate recorder for snapshots, bound to one tenant."""

    def __init__(self, datastore: SQLiteDatastore, tenant_id: UUID) -> None:
        super().__init__(datastore, SNAPSHOTS)
        self.tenant_key = str(tenant_id)

    def construct_create_table_statements(self) -> list[str]:
        return []

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with immediate_transaction(self.datastore) as cursor:
            cursor.executemany(
                f"INSERT OR IGNORE INTO {SNAPSHOTS} (tenant_id, originator_id,"  # noqa: S608
                " originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
                [
                    (self.tenant_key, str(s.originator_id), s.originator_version, s.topic, s.state)
                    for s in stored_events
                ],
            )
        return None

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
            self.datastore,
            SNAPSHOTS,
            "state",
            self.tenant_key,
            originator_id,
            gt,
            lte,
            desc,
            limit,
        )
        return [StoredEvent(originator_id, r["originator_version"], r["topic"], r[2]) for r in rows]


def _blob(value: object) -> bytes:
    """A BLOB column's bytes; a value of another type (a tampered row) is read as its text."""
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    return str(value).encode()


def _select_stream(
    datastore: SQLiteDatastore,
    table: str,
    column: str,
    tenant_key: str,
    originator_id: UUID | str,
    gt: int | None,
    lte: int | None,
    desc: bool,
    limit: int | None,
) -> list[sqlite3.Row]:
    statement, params = stream_query(
        table, column, MARK, tenant_key, str(originator_id), gt, lte, desc, limit
    )
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, params)
        rows: list[sqlite3.Row] = cursor.fetchall()
        return rows


def _recorded(tenant_id: UUID, rows: list[sqlite3.Row]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            tenant_id=tenant_id,
            position=r["position"],
            stream_id=UUID(r["originator_id"]),
            version=r["originator_version"],
            topic=r["topic"],
            payload=_blob(r["payload"]),
            hash=_blob(r["hash"]),
        )
        for r in rows
    ]


class SQLiteLedgerStore(LedgerStore):
    """The event store in one SQLite file (WAL mode), shared by all tenants."""

    def __init__(self, path: str, *, pool_size: int = 5) -> None:
        self.path = path
        self.datastore = SQLiteDatastore(
            db_name=path,
            lock_timeout=LOCK_TIMEOUT_SECONDS,
            pool_size=pool_size,
            pool_timeout=LOCK_TIMEOUT_SECONDS,
        )

    def address(self) -> tuple[str, str]:
        return ("sqlite", self.path)

    def application_recorder(self, tenant_id: UUID) -> ApplicationRecorder:
        return TenantSQLiteRecorder(self.datastore, tenant_id)

    def snapshot_recorder(self, tenant_id: UUID) -> AggregateRecorder:
        return TenantSQLiteSnapshotRecorder(self.datastore, tenant_id)

    def read(
        self, tenant_id: UUID, after: int = 0, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[RecordedEvent]:
        return _recorded(tenant_id, self._fetch(read_query(MARK), (str(tenant_id), after, limit)))

    def read_range(
        self,
        tenant_id: UUID,
        after: int,
        last: int,
        kinds: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        params: list[Any] = [str(tenant_id), after, last]
        test = None
        if kinds is not None:
            wanted = sorted(kinds)
            params += wanted
            test = f"IN ({', '.join(MARK for _ in wanted)})" if wanted else "IS NULL"
        return _recorded(tenant_id, self._fetch(range_query(MARK, test, "instr"), params))

    def read_chain(
        self, tenant_id: UUID, after: int = 0, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[ChainRow]:
        rows = self._fetch(chain_query(MARK), (str(tenant_id), after, after + limit))
        return [(r[0], _blob(r[1]), _blob(r[2])) for r in rows]

    def head(self, tenant_id: UUID) -> TenantHead:
        rows = self._fetch(head_query(MARK), (str(tenant_id),))
        if not rows:
            return TenantHead(tenant_id, 0, ZERO_HASH)
        return TenantHead(tenant_id, rows[0]["position"], _blob(rows[0]["hash"]))

    def heads(self) -> list[TenantHead]:
        rows = self._fetch(HEADS_QUERY, ())
        return [TenantHead(UUID(r["tenant_id"]), r["position"], _blob(r["hash"])) for r in rows]

    def tenants_ahead_of(self, tracker: str) -> list[TrackerLag]:
        rows = self._fetch(ahead_query(MARK), (tracker,))
        return [TrackerLag(UUID(r["tenant_id"]), r["head"], r["tracked"]) for r in rows]

    def tracked_position(self, tracker: str, tenant_id: UUID) -> int:
        rows = self._fetch(tracked_query(MARK), (str(tenant_id), tracker))
        return int(rows[0]["position"]) if rows else 0

    def record_tracking(self, tracker: str, tenant_id: UUID, position: int) -> None:
        with immediate_transaction(self.datastore) as cursor:
            cursor.execute(record_tracking_query(MARK), (str(tenant_id), tracker, position))

    def close(self) -> None:
        self.datastore.close()

    def _fetch(self, statement: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            rows: list[sqlite3.Row] = cursor.fetchall()
            return rows
