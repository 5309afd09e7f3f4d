"""The writing side of bulk seeding: a writer thread, and one transaction per batch of saves.

`write_postgres` uses the store's own multi-event statement: the tenant's head row moves and the
hash chain is computed in SQL, as for any save. `write_sqlite` takes SQLite's write lock, chains
the hashes with `chain_all` and moves the head row, as its recorder does. Each also records the
saves' idempotency records in the same transaction, and fails (writing nothing) when the
database gives other positions than the ones the saves were handed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Queue
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.idempotency import IdempotencyRecord
from domain.metadata import EventMetadata
from eventstore.envelope import ZERO_HASH, chain_all, encode_payloads
from eventstore.postgres import CREATE_HEAD, INSERT_MANY, PostgresLedgerStore
from eventstore.queries import EVENTS, HEADS, IDEMPOTENCY
from eventstore.sqlite import SQLiteLedgerStore, immediate_transaction


class BackgroundWriter:
    """Runs write jobs in order on one thread: one may wait while another runs."""

    def __init__(self) -> None:
        self.jobs: Queue[Callable[[], None] | None] = Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="seed-writer", daemon=True)
            self.thread.start()
        self.jobs.put(job)

    def drain(self) -> None:
        """Waits until every job submitted is done; raises the first one's error."""
        if self.thread is not None:
            self.jobs.join()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
            self.thread = None

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job()
            except BaseException as error:  # kept: raised on the commands' thread
                self.error = error
            finally:
                self.jobs.task_done()


@dataclass(frozen=True)
class BufferedSave:
    """One command's save: its events, metadata, idempotency record and last position."""

    events: Sequence[StoredEvent]
    meta: EventMetadata
    idempotency: IdempotencyRecord | None
    position: int


def span(last: int, count: int) -> list[int]:
    return list(range(last - count + 1, last + 1))


def _payloads(tenant_id: UUID, saves: Sequence[BufferedSave]) -> list[bytes]:
    return [p for save in saves for p in encode_payloads(tenant_id, save.events, save.meta)]


def _keys(saves: Sequence[BufferedSave]) -> list[IdempotencyRecord]:
    return [save.idempotency for save in saves if save.idempotency is not None]


def write_postgres(
    store: PostgresLedgerStore, tenant_id: UUID, base: int, saves: Sequence[BufferedSave]
) -> None:
    events = [event for save in saves for event in save.events]
    keys = _keys(saves)
    params = {
        "tenant_id": tenant_id,
        "n": len(events),
        "payloads": _payloads(tenant_id, saves),
        "ids": [event.originator_id for event in events],
        "versions": [event.originator_version for event in events],
        "topics": [event.topic for event in events],
    }
    with store.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
        if events:
            curs.execute(INSERT_MANY, params, binary=True)
            positions = sorted(row["position"] for row in curs.fetchall())
            if not positions and base == 0:  # the tenant's first save: its head row first
                curs.execute(CREATE_HEAD, (tenant_id, ZERO_HASH, ZERO_HASH))
                curs.execute(INSERT_MANY, params, binary=True)
                positions = sorted(row["position"] for row in curs.fetchall())
            if positions != span(base + len(events), len(events)):
                raise IntegrityError(f"the tenant {tenant_id} was written meanwhile")
        if keys:
            curs.execute(
                f"INSERT INTO {IDEMPOTENCY} (tenant_id, key, fingerprint, outcome, position)"  # noqa: S608
                " SELECT %s, * FROM unnest(%s::text[], %s::bytea[], %s::bytea[], %s::bigint[])",
                (
                    tenant_id,
                    [k.key for k in keys],
                    [k.fingerprint for k in keys],
                    [k.outcome for k in keys],
                    [k.position for k in keys],
                ),
                binary=True,
            )


def write_sqlite(
    store: SQLiteLedgerStore, tenant_id: UUID, base: int, saves: Sequence[BufferedSave]
) -> None:
    tenant = str(tenant_id)
    events = [event for save in saves for event in save.events]
    payloads = _payloads(tenant_id, saves)
    with immediate_transaction(store.datastore) as cursor:
        cursor.execute(
            f"SELECT position, hash FROM {HEADS} WHERE tenant_id = ?",  # noqa: S608
            (tenant,),
        )
        row = cursor.fetchone()
        head, previous = (row["position"], row["hash"]) if row else (0, ZERO_HASH)
        if head != base:
            raise IntegrityError(f"the tenant {tenant_id} was written meanwhile")
        hashes = chain_all(previous, payloads)
        cursor.executemany(
            f"INSERT INTO {EVENTS} (tenant_id, originator_id, originator_version,"  # noqa: S608
            " position, topic, payload, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (tenant, str(e.originator_id), e.originator_version, base + n, e.topic, p, h)
                for n, (e, p, h) in enumerate(zip(events, payloads, hashes, strict=True), 1)
            ],
        )
        cursor.executemany(
            f"INSERT INTO {IDEMPOTENCY} (tenant_id, key, fingerprint, outcome, position)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?)",
            [(tenant, k.key, k.fingerprint, k.outcome, k.position) for k in _keys(saves)],
        )
        if events:
            cursor.execute(
                f"INSERT INTO {HEADS} (tenant_id, position, hash, prev_hash)"  # noqa: S608
                " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
                " position = excluded.position, hash = excluded.hash,"
                " prev_hash = excluded.prev_hash",
                (tenant, base + len(events), hashes[-1], previous),
            )
