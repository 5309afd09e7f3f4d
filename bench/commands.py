"""Command benchmark: receive-then-issue commands per second through the application service.

Against a throwaway PostgreSQL database (migrated with ``ledger.migrate.upgrade``), a tenant with
one product (FIFO, not lot tracked) and one warehouse with one bin, two ways of running the same
commands, alternately ``receive`` 1 unit and ``issue`` 1 unit, each with an idempotency key:

* ``app`` - ``InventoryApplication.receive`` / ``.issue`` from ``Ledger(PostgresLedgerStore)``
            (the default snapshot interval): idempotency lookup; loads of the product, warehouse,
            tenant and stock item (a receipt's generated lot is new, so its registry is not
            read); the rules; one keyed save (events and idempotency record in one statement);
            snapshots when due.
* ``raw`` - the leanest psycopg doing the SAME reads and writes on one reused autocommit
            connection with prepared statements: the same idempotency SELECT, the same two SELECTs
            per stream (the latest snapshot, then the events after it), the same keyed insert
            (``INSERT_ONE_KEYED`` / ``INSERT_MANY_KEYED``) with payloads from ``encode_payloads``,
            and the same snapshot reads and insert when the stock item reaches a multiple of the
            snapshot interval.
            The serialised events, outcomes and snapshots are the app's own stored bytes, so the
            rows have the same sizes. No JSON is decoded, no rule is checked: that is the overhead
            the app/raw ratio measures.

Both paths' statements are traced once (by wrapping ``psycopg.Cursor.execute``/``executemany``)
and printed per command, so a reader can check they match. Then the load time of a stock item of
1,000 and of 100,000 events (snapshots at the default interval), and their ratio; and of stock
items written as the app writes this product (a new lot per receipt).
With ``--profile``: unprofiled per-read costs of both paths, then a cProfile of the app path.

Run from the project root: ``python -m bench.commands [--seconds 5]``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import os
import pstats
import statistics
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg.rows import TupleRow

from bench.append import (
    DISTURBED_FOREIGN_CORES,
    DISTURBED_STEAL_CORES,
    machine_cpu,
    nproc,
    processes_cpu,
    sample_busy,
    split_cpu,
)
from bench.common import (
    DEFAULT_PARTITIONS,
    admin_url,
    dbname,
    migrate_postgres,
    throwaway_database,
)
from domain.catalog import product_id, warehouse_id
from domain.idempotency import IdempotencyLookup, fingerprint
from domain.ids import tenant_id_for
from domain.inventory import InventoryApplication
from domain.lots import Lot, lot_id
from domain.metadata import EventMetadata
from domain.stock import StockItem, stock_item_id
from eventstore.envelope import encode_payloads, payload_state
from eventstore.postgres import INSERT_MANY_KEYED, INSERT_ONE_KEYED, MARK, PostgresLedgerStore
from eventstore.queries import EVENTS, IDEMPOTENCY, SNAPSHOTS, idempotency_query, stream_query
from ledger.settings import Settings
from ledger.wiring import Ledger

DEFAULT_SECONDS = 5.0
DEFAULT_ROUNDS = 2
DEFAULT_WARMUP = 1.0
DEFAULT_LOADS = 20
DEFAULT_BATCH = 50

GOAL_APP_VS_RAW = 0.5
GOAL_LONG_HISTORY = 2.0

#: The project's default snapshot interval, used by the app (and mirrored by the raw path).
SNAPSHOT_INTERVAL: int = Settings.model_fields["snapshot_interval"].default
SKU = "BENCH-1"
WAREHOUSE = "WH-1"
BIN = "A-01"
QUANTITY = 1
UNIT_COST = "2.50"
REASON = "sale"
#: Receive/issue pairs run through the app on every tenant before anything is measured: the
#: first receipt opens the stock item (and notes the warehouse on the product), later ones do not.
SETUP_PAIRS = 2
#: Pairs traced per path: 100 stock item events, so exactly one snapshot is taken meanwhile.
TRACE_PAIRS = SNAPSHOT_INTERVAL // 2

#: Stock item streams timed for the long-history goal (one lot: the state stays bounded).
HISTORY_SIZES = (1_000, 100_000)
#: The same, written as the app writes a product that is not lot tracked: a new lot per receipt.
GROWTH_SIZES = (1_000, 10_000)
FIXED_LOT = "LOT-1"

#: The snapshot recorder's statement (eventstore.postgres.TenantPostgresSnapshotRecorder).
SNAPSHOT_INSERT = (
    f"INSERT INTO {SNAPSHOTS} (tenant_id, originator_id, originator_version,"
    " topic, state) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
IDEMPOTENCY_SELECT = idempotency_query(MARK)

RECEIVED_TOPIC = get_topic(StockItem.Received)
REMOVED_TOPIC = get_topic(StockItem.Removed)
LOT_REGISTERED_TOPIC = get_topic(Lot.Registered)

#: What the application fingerprints for these commands (``domain.inventory``'s requests, with
#: numbers normalised as ``domain.quantities.normalised`` does).
RECEIVE_REQUEST: dict[str, Any] = {
    "sku": SKU,
    "warehouse": WAREHOUSE,
    "bin": BIN,
    "quantity": Decimal(QUANTITY).normalize(),
    "unit_cost": Decimal(UNIT_COST).normalize(),
    "lot": None,
    "expires_on": None,
    "reference": None,
}
ISSUE_REQUEST: dict[str, Any] = {
    "sku": SKU,
    "warehouse": WAREHOUSE,
    "quantity": Decimal(QUANTITY).normalize(),
    "reason": REASON,
    "lot": None,
    "bin": None,
    "reference": None,
}


def command_key(number: int) -> str:
    """Idempotency keys: the same shape (and size) on both paths."""
    return f"bench-command-{number:09d}"


def new_lot_code() -> str:
    """A generated lot id, as ``InventoryApplication.receive`` makes one."""
    return f"L-{uuid.uuid4().hex[:12].upper()}"


# --------------------------------------------------------------------------------------------
# The two paths
# --------------------------------------------------------------------------------------------


class Commands(Protocol):
    """One writer: ``receive()``, ``issue()``, and ``()`` which alternates them."""

    def receive(self) -> None: ...

    def issue(self) -> None: ...

    def __call__(self) -> None: ...


class AppCommands:
    """The application service, as an API request handler calls it."""

    def __init__(self, app: InventoryApplication) -> None:
        self.app = app
        self.number = 0  # of the last idempotency key used
        self.receiving = True

    def next_key(self) -> str:
        self.number += 1
        return command_key(self.number)

    def __call__(self) -> None:
        if self.receiving:
            self.receive()
        else:
            self.issue()
        self.receiving = not self.receiving

    def receive(self) -> None:
        meta = EventMetadata(idempotency_key=self.next_key())
        result = self.app.receive(SKU, WAREHOUSE, BIN, QUANTITY, UNIT_COST, meta)
        if result.replayed:
            raise RuntimeError(f"receive {meta.idempotency_key} was replayed")

    def issue(self) -> None:
        meta = EventMetadata(idempotency_key=self.next_key())
        result = self.app.issue(SKU, WAREHOUSE, QUANTITY, REASON, meta)
        if result.replayed:
            raise RuntimeError(f"issue {meta.idempotency_key} was replayed")


class Samples:
    """The app's own stored bytes, so that the raw path's rows have the same sizes.

    Serialised events (the state after the payload header), command outcomes, and the stock
    item's snapshots by version (they grow: each receipt of a product that is not lot tracked
    adds a generated lot to the stock item's state).
    """

    def __init__(self) -> None:
        self.received = b""
        self.removed = b""
        self.lot_registered = b""
        self.receive_outcome = b""
        self.issue_outcome = b""
        self.snapshot_topic = ""
        self.snapshot_versions: list[int] = []
        self.snapshot_states: list[bytes] = []

    def read_events(
        self, conn: psycopg.Connection[TupleRow], tenant_id: UUID, receive_key: str, issue_key: str
    ) -> None:
        """The latest event of each kind, and two commands' outcomes, of an app tenant."""
        topics = (RECEIVED_TOPIC, REMOVED_TOPIC, LOT_REGISTERED_TOPIC)
        rows = conn.execute(
            f"SELECT DISTINCT ON (topic) topic, payload FROM {EVENTS}"
            " WHERE tenant_id = %s AND topic = ANY(%s) ORDER BY topic, position DESC",
            (tenant_id, list(topics)),
        ).fetchall()
        states = {str(topic): payload_state(bytes(payload)) for topic, payload in rows}
        missing = [topic for topic in topics if topic not in states]
        if missing:
            raise RuntimeError(f"the app stored no {', '.join(missing)} event")
        self.received = states[RECEIVED_TOPIC]
        self.removed = states[REMOVED_TOPIC]
        self.lot_registered = states[LOT_REGISTERED_TOPIC]
        recorded = {
            str(key): (bytes(digest), bytes(outcome))
            for key, digest, outcome in conn.execute(
                f"SELECT key, fingerprint, outcome FROM {IDEMPOTENCY}"
                " WHERE tenant_id = %s AND key = ANY(%s)",
                (tenant_id, [receive_key, issue_key]),
            ).fetchall()
        }
        expected = {
            receive_key: fingerprint("receive", RECEIVE_REQUEST),
            issue_key: fingerprint("issue", ISSUE_REQUEST),
        }
        for key, digest in expected.items():
            if recorded[key][0] != digest:
                raise RuntimeError(f"the raw path's request for {key} is not the app's")
        self.receive_outcome = recorded[receive_key][1]
        self.issue_outcome = recorded[issue_key][1]

    def read_snapshots(
        self, conn: psycopg.Connection[TupleRow], tenant_ids: Sequence[UUID]
    ) -> None:
        """The app tenants' stock item snapshots (any tenant's, one per version)."""
        items = [stock_item_id(t, SKU, WAREHOUSE) for t in tenant_ids]
        rows = conn.execute(
            f"SELECT DISTINCT ON (originator_version) originator_version, topic, state"
            f" FROM {SNAPSHOTS} WHERE tenant_id = ANY(%s) AND originator_id = ANY(%s)"
            " ORDER BY originator_version",
            (list(tenant_ids), items),
        ).fetchall()
        if not rows:
            raise RuntimeError("the app took no stock item snapshot")
        self.snapshot_topic = str(rows[-1][1])
        self.snapshot_versions = [int(row[0]) for row in rows]
        self.snapshot_states = [bytes(row[2]) for row in rows]

    def snapshot_state(self, version: int) -> bytes:
        """The app's snapshot at this version (or the one before it).

        Beyond the app's last snapshot, that one padded with trailing blanks (still valid JSON)
        to the size the app's snapshots grow to by then, at their rate so far.
        """
        index = bisect.bisect_right(self.snapshot_versions, version) - 1
        state = self.snapshot_states[max(index, 0)]
        last = self.snapshot_versions[-1]
        if version <= last or len(self.snapshot_versions) < 2:
            return state
        first, first_size = self.snapshot_versions[0], len(self.snapshot_states[0])
        growth = (len(state) - first_size) / (last - first)
        return state + b" " * max(0, round(growth * (version - last)))


class RawCommands:
    """The same reads and writes as the app path with psycopg alone, on one reused connection
    and cursor, every statement prepared (as the recorders' are).

    Per command, like the app: new metadata with the idempotency key, the request's fingerprint,
    the idempotency SELECT, per stream the latest-snapshot SELECT and the events-after-it SELECT
    (every row fetched), ``encode_payloads`` and the keyed insert; when a stock item's version is
    a multiple of SNAPSHOT_INTERVAL, the snapshot SELECTs and insert of ``take_snapshot``.
    Versions come from the rows read. Not done: decoding, aggregates, rules, the pool, the
    retry wrappers.
    """

    def __init__(
        self,
        conn: psycopg.Connection[TupleRow],
        tenant_id: UUID,
        samples: Samples,
        keys_used: int,
    ) -> None:
        self.cursor = conn.cursor()
        self.tenant_id = tenant_id
        self.samples = samples
        self.product = product_id(tenant_id, SKU)
        self.warehouse = warehouse_id(tenant_id, WAREHOUSE)
        self.item = stock_item_id(tenant_id, SKU, WAREHOUSE)
        self.first_key = keys_used + 1  # the setup ran commands through the app in this tenant
        self.number = keys_used
        self.receiving = True
        self.snapshots_taken = 0

    def next_key(self) -> str:
        self.number += 1
        return command_key(self.number)

    @property
    def commands(self) -> int:
        return self.number - self.first_key + 1

    def __call__(self) -> None:
        if self.receiving:
            self.receive()
        else:
            self.issue()
        self.receiving = not self.receiving

    def lookup(self, key: str) -> None:
        self.cursor.execute(IDEMPOTENCY_SELECT, (self.tenant_id, key), prepare=True)
        if self.cursor.fetchone() is not None:
            raise RuntimeError(f"idempotency key {key} already recorded")

    def load(self, stream: UUID, lte: int | None = None) -> int:
        """The stream's latest snapshot row (up to `lte`), then its event rows after it (up to
        `lte`): its version. As the library's ``Repository.get(id, version=lte)`` reads."""
        statement, params = stream_query(
            SNAPSHOTS, "state", MARK, self.tenant_id, stream, None, lte, True, 1
        )
        self.cursor.execute(statement, params, prepare=True)
        snapshot = self.cursor.fetchall()
        after = int(snapshot[0][0]) if snapshot else None
        statement, params = stream_query(
            EVENTS, "payload", MARK, self.tenant_id, stream, after, lte, False, None
        )
        self.cursor.execute(statement, params, prepare=True)
        events = self.cursor.fetchall()
        return int(events[-1][0]) if events else (after or 0)

    def _context(self) -> int:
        """What every stock command loads, in the app's order: the stock item's version."""
        self.load(self.product)
        self.load(self.warehouse)
        self.load(self.tenant_id)
        return self.load(self.item)

    def receive(self) -> None:
        meta = EventMetadata(idempotency_key=self.next_key())
        assert meta.idempotency_key is not None
        digest = fingerprint("receive", RECEIVE_REQUEST)
        self.lookup(meta.idempotency_key)
        version = self._context() + 1
        registry = lot_id(self.tenant_id, SKU, new_lot_code())  # new: nothing to read
        events = [
            StoredEvent(self.item, version, RECEIVED_TOPIC, self.samples.received),
            StoredEvent(registry, 1, LOT_REGISTERED_TOPIC, self.samples.lot_registered),
        ]
        self.cursor.execute(
            INSERT_MANY_KEYED,
            {
                "tenant_id": self.tenant_id,
                "n": len(events),
                "payloads": encode_payloads(self.tenant_id, events, meta),
                "ids": [e.originator_id for e in events],
                "versions": [e.originator_version for e in events],
                "topics": [e.topic for e in events],
                "key": meta.idempotency_key,
                "fingerprint": digest,
                "outcome": self.samples.receive_outcome,
            },
            prepare=True,
        )
        if len(self.cursor.fetchall()) != len(events):
            raise RuntimeError(f"tenant {self.tenant_id} has no head row")
        self._snapshot(version)

    def issue(self) -> None:
        meta = EventMetadata(idempotency_key=self.next_key())
        assert meta.idempotency_key is not None
        digest = fingerprint("issue", ISSUE_REQUEST)
        self.lookup(meta.idempotency_key)
        version = self._context() + 1
        event = StoredEvent(self.item, version, REMOVED_TOPIC, self.samples.removed)
        (payload,) = encode_payloads(self.tenant_id, [event], meta)
        self.cursor.execute(
            INSERT_ONE_KEYED,
            {
                "tenant_id": self.tenant_id,
                "originator_id": event.originator_id,
                "originator_version": event.originator_version,
                "topic": event.topic,
                "payload": payload,
                "key": meta.idempotency_key,
                "fingerprint": digest,
                "outcome": self.samples.issue_outcome,
            },
            prepare=True,
        )
        if self.cursor.fetchone() is None:
            raise RuntimeError(f"tenant {self.tenant_id} has no head row")
        self._snapshot(version)

    def _snapshot(self, version: int) -> None:
        """``Application.take_snapshot`` at a multiple of the interval: the stock item as of
        that version (latest snapshot up to it, the events after it), then the insert."""
        if version % SNAPSHOT_INTERVAL:
            return
        self.load(self.item, lte=version)
        state = self.samples.snapshot_state(version)
        self.cursor.executemany(
            SNAPSHOT_INSERT,
            [(self.tenant_id, self.item, version, self.samples.snapshot_topic, state)],
        )
        self.snapshots_taken += 1


# --------------------------------------------------------------------------------------------
# Statement trace
# --------------------------------------------------------------------------------------------


def statement_labels() -> dict[str, str]:
    """Every statement text the two paths may send, by a readable name."""

    def select(table: str, column: str, gt: int | None, lte: int | None, desc: bool) -> str:
        return stream_query(table, column, MARK, 0, 0, gt, lte, desc, 1 if desc else None)[0]

    return {
        IDEMPOTENCY_SELECT: "idempotency key lookup",
        select(SNAPSHOTS, "state", None, None, True): "latest snapshot of a stream",
        select(EVENTS, "payload", None, None, False): "events of a stream (no snapshot)",
        select(EVENTS, "payload", 1, None, False): "events after its snapshot",
        INSERT_ONE_KEYED: "insert 1 event + idempotency record",
        INSERT_MANY_KEYED: "insert n events + idempotency record",
        select(SNAPSHOTS, "state", None, 1, True): "snapshotting: snapshot <= version",
        select(EVENTS, "payload", None, 1, False): "snapshotting: events <= version",
        select(EVENTS, "payload", 1, 1, False): "snapshotting: events in (snap, version]",
        SNAPSHOT_INSERT: "snapshotting: insert snapshot (executemany)",
    }


class StatementTrace:
    """Counts what psycopg sends, by statement text and by the command being run."""

    def __init__(self) -> None:
        self.command = "other"
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (path, command, text)
        self.commands: Counter[tuple[str, str]] = Counter()  # (path, command)
        self.path = ""

    def note(self, query: object) -> None:
        text = query if isinstance(query, str) else repr(query)
        self.counts[(self.path, self.command, text)] += 1

    @contextmanager
    def installed(self, path: str) -> Iterator[None]:
        """Wraps psycopg.Cursor.execute and .executemany meanwhile (every cursor, any thread)."""
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

        def traced_execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            self.note(query)
            return execute(cursor, query, *args, **kwargs)

        def traced_executemany(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            self.note(query)
            return executemany(cursor, query, *args, **kwargs)

        self.path = path
        psycopg.Cursor.execute = traced_execute  # type: ignore[method-assign,assignment]
        psycopg.Cursor.executemany = traced_executemany  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            psycopg.Cursor.execute = execute  # type: ignore[method-assign]
            psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]

    def run(self, path: str, writer: Commands, pairs: int) -> None:
        """`pairs` receive + issue pairs of one writer, traced."""
        with self.installed(path):
            for _ in range(pairs):
                self.command = "receive"
                writer.receive()
                self.commands[(path, "receive")] += 1
                self.command = "issue"
                writer.issue()
                self.commands[(path, "issue")] += 1
        self.command = "other"

    def per_command(self, path: str, command: str | None) -> dict[str, float]:
        """Statements per command by text (`command` None: over both commands)."""
        runs = sum(n for (p, c), n in self.commands.items() if p == path and command in (None, c))
        found: dict[str, float] = defaultdict(float)
        for (p, c, text), n in self.counts.items():
            if p == path and command in (None, c) and runs:
                found[text] += n / runs
        return dict(found)

    def total(self, path: str) -> float:
        return sum(self.per_command(path, None).values())

    def matches(self) -> bool:
        return self.per_command("app", None) == self.per_command("raw", None)


def print_trace(trace: StatementTrace) -> None:
    labels = statement_labels()
    columns = [(p, c) for p in ("app", "raw") for c in ("receive", "issue", None)]
    tables = {col: trace.per_command(*col) for col in columns}
    texts = sorted(
        {text for table in tables.values() for text in table},
        key=lambda t: list(labels).index(t) if t in labels else len(labels),
    )
    pairs = trace.commands[("app", "receive")]
    print()
    print(
        f"Statements per command, traced over {pairs} receive + {pairs} issue per path (one"
        f" snapshot cycle: {2 * pairs} stock item events), by wrapping psycopg.Cursor.execute"
        " and .executemany"
    )
    names = [f"{p} {c or 'all'}" for p, c in columns]
    head = "".join(f" {name:>12}" for name in names)
    print(f"  {'statement':<46}{head}")
    for text in texts:
        label = labels.get(text, "OTHER: " + " ".join(text.split())[:38])
        cells = "".join(f" {tables[col].get(text, 0.0):>12.2f}" for col in columns)
        print(f"  {label:<46}{cells}")
    totals = "".join(f" {sum(tables[col].values()):>12.2f}" for col in columns)
    print(f"  {'total':<46}{totals}")
    same = "the same statement texts and counts" if trace.matches() else "DIFFERENT statements"
    print(f"  app and raw send {same} (texts compared byte for byte).")


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One measured window of one path: commands run, and who spent CPU on them (seconds)."""

    commands: int
    seconds: float
    client_cpu: float
    server_cpu: float | None
    foreign_cpu: float | None
    steal_cpu: float | None
    per_thread: tuple[int, ...]

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PathResult:
    """A path's windows in one shape."""

    path: str
    shape: str
    windows: list[Window] = field(default_factory=list)

    @property
    def commands(self) -> int:
        return sum(w.commands for w in self.windows)

    @property
    def seconds(self) -> float:
        return sum(w.seconds for w in self.windows)

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    def per_command_ms(self, values: Sequence[float | None]) -> float | None:
        if any(v is None for v in values) or not self.commands:
            return None
        return 1000 * sum(v or 0.0 for v in values) / self.commands

    @property
    def client_ms(self) -> float | None:
        return self.per_command_ms([w.client_cpu for w in self.windows])

    @property
    def server_ms(self) -> float | None:
        return self.per_command_ms([w.server_cpu for w in self.windows])

    @property
    def wall_ms(self) -> float:
        threads = len(self.windows[0].per_thread) if self.windows else 1
        return 1000 * self.seconds * threads / self.commands if self.commands else 0.0

    def cores(self, values: Sequence[float | None]) -> float | None:
        if any(v is None for v in values) or self.seconds <= 0:
            return None
        return sum(v or 0.0 for v in values) / self.seconds

    @property
    def foreign_cores(self) -> float | None:
        return self.cores([w.foreign_cpu for w in self.windows])

    @property
    def steal_cores(self) -> float | None:
        return self.cores([w.steal_cpu for w in self.windows])

    @property
    def disturbed(self) -> bool:
        return (self.foreign_cores or 0.0) > DISTURBED_FOREIGN_CORES or (
            self.steal_cores or 0.0
        ) > DISTURBED_STEAL_CORES


def backends(monitor: psycopg.Connection[TupleRow]) -> tuple[set[int], set[int]]:
    """The server's client backends: (the benchmark database's but the monitor, the others)."""
    rows = monitor.execute(
        "SELECT pid, datname = current_database() FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ).fetchall()
    return {int(p) for p, ours in rows if ours}, {int(p) for p, ours in rows if not ours}


def run_window(
    writers: Sequence[Callable[[], None]],
    monitor: psycopg.Connection[TupleRow],
    warmup: float,
    seconds: float,
) -> Window:
    """Each writer on its own thread; counts the commands of `seconds` after `warmup`."""
    counts = [0] * len(writers)
    stop = threading.Event()
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers) + 1)

    def loop(index: int, writer: Callable[[], None]) -> None:
        start.wait()
        try:
            while not stop.is_set():
                writer()
                counts[index] += 1
        except BaseException as error:
            errors.append(error)
            stop.set()

    threads = [
        threading.Thread(target=loop, args=(i, w), name=f"commands-{i}", daemon=True)
        for i, w in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    try:
        start.wait()
        stop.wait(warmup)
        ours, others = backends(monitor)
        procs0, machine0 = processes_cpu(), machine_cpu()
        first, t0, cpu0 = list(counts), time.perf_counter(), time.process_time()
        stop.wait(seconds)
        last, t1, cpu1 = list(counts), time.perf_counter(), time.process_time()
        machine1, procs1 = machine_cpu(), processes_cpu()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    if errors:
        raise errors[0]
    per_thread = tuple(b - a for a, b in zip(first, last, strict=True))
    split = split_cpu(procs0, procs1, ours, others)
    return Window(
        commands=sum(per_thread),
        seconds=t1 - t0,
        client_cpu=cpu1 - cpu0,
        server_cpu=split.server,
        foreign_cpu=split.foreign,
        steal_cpu=None if machine0 is None or machine1 is None else machine1.steal - machine0.steal,
        per_thread=per_thread,
    )


@dataclass
class Shape:
    """Tenants (one writer thread each) of both paths, set up alike through the app."""

    label: str
    ledger: Ledger
    app_tenants: list[UUID]
    raw_tenants: list[UUID]
    app_writers: list[AppCommands]
    raw_writers: list[RawCommands] = field(default_factory=list)


def open_tenant(ledger: Ledger, slug: str) -> AppCommands:
    """A tenant with the product, the warehouse and its bin, and SETUP_PAIRS pairs run."""
    app = ledger.app(tenant_id_for(slug))
    if app.repository.cache is not None:
        raise SystemExit(
            "AGGREGATE_CACHE_MAXSIZE is set in the environment: the aggregate cache would serve"
            " the loads. Unset it."
        )
    app.create_tenant(slug, f"Benchmark {slug}", "UTC", EventMetadata())
    app.register_product(SKU, "Benchmark widget", EventMetadata(), removal_policy="fifo")
    app.register_warehouse(WAREHOUSE, "Benchmark warehouse", "UTC", EventMetadata())
    app.add_bin(WAREHOUSE, BIN, EventMetadata())
    writer = AppCommands(app)
    for _ in range(SETUP_PAIRS):
        writer.receive()
        writer.issue()
    return writer


def build_shape(url: str, label: str, tenants: int, prefix: str) -> Shape:
    ledger = Ledger(PostgresLedgerStore(url, pool_size=tenants))
    app_writers = [open_tenant(ledger, f"{prefix}-app-{i}") for i in range(tenants)]
    raw_writers = [open_tenant(ledger, f"{prefix}-raw-{i}") for i in range(tenants)]
    return Shape(
        label=label,
        ledger=ledger,
        app_tenants=[w.app.tenant_id for w in app_writers],
        raw_tenants=[w.app.tenant_id for w in raw_writers],
        app_writers=app_writers,
    )


def attach_raw(shape: Shape, url: str, samples: Samples, stack: ExitStack) -> None:
    for tenant_id in shape.raw_tenants:
        conn = psycopg.connect(url, autocommit=True)
        stack.callback(conn.close)
        shape.raw_writers.append(RawCommands(conn, tenant_id, samples, 2 * SETUP_PAIRS))


def measure_shape(
    shape: Shape,
    samples: Samples,
    conn: psycopg.Connection[TupleRow],
    args: argparse.Namespace,
) -> tuple[PathResult, PathResult]:
    """The app's and the raw windows in turn, round by round (a passing disturbance hits both)."""
    app, raw = PathResult("app", shape.label), PathResult("raw", shape.label)
    window = args.seconds / args.rounds
    for _ in range(args.rounds):
        app.windows.append(run_window(shape.app_writers, conn, args.warmup, window))
        samples.read_snapshots(conn, shape.app_tenants)
        raw.windows.append(run_window(shape.raw_writers, conn, args.warmup, window))
    for result in (app, raw):
        rates = ", ".join(f"{w.rate:,.0f}" for w in result.windows)
        print(
            f"  {result.path:<4} {shape.label:<26} {result.rate:>7,.0f} commands/s"
            f"  (rounds: {rates})",
            flush=True,
        )
    return app, raw


def check_streams(conn: psycopg.Connection[TupleRow], shape: Shape) -> list[str]:
    """What went wrong, if anything: every command appended its events and its key."""
    problems: list[str] = []
    for writer in shape.app_writers:
        item: StockItem = writer.app.repository.get(
            stock_item_id(writer.app.tenant_id, SKU, WAREHOUSE)
        )
        if item.on_hand() not in (Decimal(0), Decimal(1)):
            problems.append(f"app tenant {writer.app.tenant_id}: on hand {item.on_hand()}")
    for raw in shape.raw_writers:
        done = raw.commands
        keys, events = conn.execute(
            f"SELECT (SELECT count(*) FROM {IDEMPOTENCY} WHERE tenant_id = %s"
            " AND key LIKE 'bench-command-%%'),"
            f" (SELECT count(*) FROM {EVENTS} WHERE tenant_id = %s AND originator_id = %s)",
            (raw.tenant_id, raw.tenant_id, raw.item),
        ).fetchone() or (0, 0)
        if keys != done + 2 * SETUP_PAIRS:
            problems.append(f"raw tenant {raw.tenant_id}: {keys} keys for {done} commands")
        if events != 1 + done + 2 * SETUP_PAIRS:
            problems.append(f"raw tenant {raw.tenant_id}: {events} stock item events")
    return problems


def payload_sizes(conn: psycopg.Connection[TupleRow], shape: Shape) -> dict[str, dict[str, float]]:
    """Average stored payload bytes per topic of the stock commands, app tenants vs raw."""
    sizes: dict[str, dict[str, float]] = {}
    for path, tenants in (("app", shape.app_tenants), ("raw", shape.raw_tenants)):
        rows = conn.execute(
            f"SELECT topic, avg(length(payload))::float FROM {EVENTS}"
            " WHERE tenant_id = ANY(%s) AND topic = ANY(%s) GROUP BY topic",
            (tenants, [RECEIVED_TOPIC, REMOVED_TOPIC, LOT_REGISTERED_TOPIC]),
        ).fetchall()
        sizes[path] = {str(topic): float(size) for topic, size in rows}
    return sizes


def last_snapshot_bytes(conn: psycopg.Connection[TupleRow], tenant_id: UUID) -> tuple[int, int]:
    """(version, bytes) of the stock item's latest snapshot in a tenant."""
    row = conn.execute(
        f"SELECT originator_version, length(state) FROM {SNAPSHOTS}"
        " WHERE tenant_id = %s AND originator_id = %s ORDER BY originator_version DESC LIMIT 1",
        (tenant_id, stock_item_id(tenant_id, SKU, WAREHOUSE)),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


# --------------------------------------------------------------------------------------------
# Long history: loading a stock item of 1,000 and of 100,000 events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """A stock item stream written for the load timings, and the loads' seconds."""

    label: str
    events: int
    generated_lots: bool
    saves: int
    fill_seconds: float
    snapshots: int
    snapshot_problems: str
    latest_snapshot: int
    snapshot_bytes: int
    stream_id: UUID
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]


def fill_stream(
    app: InventoryApplication,
    conn: psycopg.Connection[TupleRow],
    code: str,
    events: int,
    batch: int,
    *,
    generated_lots: bool,
) -> History:
    """A stock item of `events` events in its own warehouse: receive 1, issue 1, ...

    Triggered on the aggregate directly with the app's Conditions, `batch` events per
    ``app.save`` (which takes the snapshots of versions that are multiples of the interval).
    One lot throughout, or (``generated_lots``) a new lot per receipt as the app generates for
    a product that is not lot tracked.
    """
    app.register_warehouse(code, f"History {code}", "UTC", EventMetadata())
    app.add_bin(code, BIN, EventMetadata())
    product, site = app.product(SKU), app.warehouse(code)
    conditions = app.conditions(product, site, app.tenant(), EventMetadata())
    item = StockItem.open(app.tenant_id, SKU, code)
    product.stock_in(code)
    pending: list[Any] = [item, product]
    one, cost = Decimal(QUANTITY), Decimal(UNIT_COST)
    saves = 0
    start = time.perf_counter()
    while item.version < events:
        target = min(events, item.version + batch)
        while item.version < target:
            if item.version % 2:  # versions 2, 4, ... are receipts
                lot = new_lot_code() if generated_lots else FIXED_LOT
                item.receive(one, BIN, cost, lot, None, conditions)
            else:
                item.issue(one, REASON, conditions)
        app.save(*pending, meta=EventMetadata())
        pending = [item]
        saves += 1
    seconds = time.perf_counter() - start
    versions = [
        int(row[0])
        for row in conn.execute(
            f"SELECT originator_version FROM {SNAPSHOTS}"
            " WHERE tenant_id = %s AND originator_id = %s ORDER BY originator_version",
            (app.tenant_id, item.id),
        ).fetchall()
    ]
    expected = list(range(SNAPSHOT_INTERVAL, events + 1, SNAPSHOT_INTERVAL))
    problems = "" if versions == expected else f"{len(versions)} of {len(expected)} expected"
    if not versions or versions[-1] != events:
        app.take_snapshot(item.id)  # the fallback: the load must find a snapshot at the end
        problems += "; the last one taken afterwards with app.take_snapshot"
    latest = conn.execute(
        f"SELECT originator_version, length(state) FROM {SNAPSHOTS}"
        " WHERE tenant_id = %s AND originator_id = %s ORDER BY originator_version DESC LIMIT 1",
        (app.tenant_id, item.id),
    ).fetchone()
    assert latest is not None
    history = History(
        label=f"{'a new lot per receipt' if generated_lots else 'one lot'}",
        events=events,
        generated_lots=generated_lots,
        saves=saves,
        fill_seconds=seconds,
        snapshots=len(versions),
        snapshot_problems=problems,
        latest_snapshot=int(latest[0]),
        snapshot_bytes=int(latest[1]),
        stream_id=item.id,
    )
    print(
        f"  {history.label:<22} {events:>8,} events {saves:>5,} saves {seconds:>6.1f} s"
        f"  {events / seconds:>7,.0f} events/s  {len(versions):,} snapshots"
        f" ({problems.strip('; ') or f'one at every multiple of {SNAPSHOT_INTERVAL}'}),"
        f" latest {history.snapshot_bytes:,} bytes",
        flush=True,
    )
    return history


def time_loads(app: InventoryApplication, histories: Sequence[History], loads: int) -> None:
    """Warm-up load and check, then `loads` rounds of every stream in turn (order rotating)."""
    for history in histories:
        item: StockItem = app.repository.get(history.stream_id)
        if item.version != history.events:
            raise RuntimeError(f"loaded version {item.version}, expected {history.events}")
    for index in range(loads):
        shift = index % len(histories)
        for history in [*histories[shift:], *histories[:shift]]:
            start = time.perf_counter()
            app.repository.get(history.stream_id)
            history.samples.append(time.perf_counter() - start)


def long_history(url: str, conn: psycopg.Connection[TupleRow], args: argparse.Namespace) -> None:
    print()
    print(
        f"Long history: stock item streams written {args.batch} events per save (receive 1,"
        f" issue 1, ...), snapshot interval {SNAPSHOT_INTERVAL}",
        flush=True,
    )
    with Ledger(PostgresLedgerStore(url, pool_size=1)) as ledger:
        writer = open_tenant(ledger, "bench-history")
        app = writer.app
        histories = [
            fill_stream(app, conn, f"H-{n}", n, args.batch, generated_lots=False)
            for n in HISTORY_SIZES
        ]
        growth = (
            []
            if args.no_growth
            else [
                fill_stream(app, conn, f"G-{n}", n, args.batch, generated_lots=True)
                for n in GROWTH_SIZES
            ]
        )
        time_loads(app, [*histories, *growth], args.loads)
    print()
    print(
        f"Load of a stock item: app.repository.get(id), aggregate cache off, median and p95 of"
        f" {args.loads} loads (ms); each reads 1 snapshot (at the last version) + 0 events"
    )
    print(f"  {'stream':<22} {'events':>8} {'snapshot':>11} {'median':>8} {'p95':>8}")
    for h in [*histories, *growth]:
        print(
            f"  {h.label:<22} {h.events:>8,} {h.snapshot_bytes:>9,} B"
            f" {1000 * h.median:>8.2f} {1000 * h.p95:>8.2f}"
        )
    small, large = histories[0], histories[-1]
    ratio = large.median / small.median
    verdict = "MET" if ratio < GOAL_LONG_HISTORY else "NOT MET"
    print(
        f"  load({large.events:,}) / load({small.events:,}), one lot = {ratio:.2f}"
        f"   goal < {GOAL_LONG_HISTORY:.0f}: {verdict}"
    )
    if len(growth) == 2:
        a, b = growth
        per_event = (b.snapshot_bytes - a.snapshot_bytes) / (b.events - a.events)
        big = HISTORY_SIZES[-1]
        size = b.snapshot_bytes + per_event * (big - b.events)
        estimate = b.median * size / b.snapshot_bytes
        print(
            f"  a new lot per receipt (what the app does for this product): the snapshot grows"
            f" {per_event:.0f} bytes per event;"
        )
        print(
            f"    at {big:,} events it would be ~{size / 1e6:.1f} MB and a load ~"
            f"{1000 * estimate:.0f} ms (estimated from {b.events:,} events, not run: every"
        )
        print(
            "    snapshot taken while writing decodes the previous one, so the fill is quadratic)."
            f" Ratio at {b.events:,} / {a.events:,}: {b.median / a.median:.2f}"
        )


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------

PACKAGE_MARKERS = (
    ("psycopg_pool", "/psycopg_pool/"),
    ("psycopg", "/psycopg/"),
    ("eventsourcing", "/eventsourcing/"),
    ("eventstore", "/eventstore/"),
    ("domain", "/domain/"),
    ("bench", "/bench/"),
    ("json (stdlib)", "/json/"),
    ("copy (stdlib)", "/copy.py"),
    ("uuid (stdlib)", "/uuid.py"),
    ("zoneinfo (stdlib)", "zoneinfo"),
    ("typing (stdlib)", "/typing.py"),
    ("dataclasses", "/dataclasses.py"),
)

#: Phases of a command, by (file suffix, function): cumulative CPU, so they nest.
PHASES = (
    ("a command (InventoryApplication.execute)", "domain/inventory.py", "execute"),
    ("  idempotency lookup (_recorded)", "domain/inventory.py", "_recorded"),
    ("  loads (TenantRepository.get)*", "domain/application.py", "get"),
    ("    SELECTs + fetch (_select_stream)", "eventstore/postgres.py", "_select_stream"),
    (
        "    decode snapshots + events (to_domain_event)",
        "eventsourcing/persistence.py",
        "to_domain_event",
    ),
    ("    replay: decode events + apply (replay)", "domain/application.py", "replay"),
    ("  save (TenantApplication.save)", "domain/application.py", "save"),
    (
        "    encode events (Mapper.to_stored_event)",
        "eventsourcing/persistence.py",
        "to_stored_event",
    ),
    ("    inserts (recorders' insert_events)", "eventstore/postgres.py", "insert_events"),
    ("    snapshots (_take_snapshots)*", "eventsourcing/application.py", "_take_snapshots"),
    ("  fingerprint (sha256 of the request)", "domain/idempotency.py", "fingerprint"),
)


def package_of(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    for name, marker in PACKAGE_MARKERS:
        if marker in filename:
            return name
    return "other stdlib"


def profile_app(writer: AppCommands, seconds: float) -> None:
    """cProfile (by the thread's CPU clock) of one app writer on this thread."""
    profiler = cProfile.Profile(time.thread_time)
    commands = 0
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    deadline = wall0 + seconds
    profiler.enable()
    while time.perf_counter() < deadline:
        writer()
        commands += 1
    profiler.disable()
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    stats = pstats.Stats(profiler)
    raw_stats: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(float(v[2]) for v in raw_stats.values())
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, _), values in raw_stats.items():
        by_package[package_of(filename)] += float(values[2])
    print()
    print(
        f"CPU profile of the app path, 1 writer, {commands} commands in {seconds:g} s"
        f" (profiled: {1000 * wall / commands:.2f} ms wall, {1000 * cpu / commands:.2f} ms CPU"
        " per command; cProfile inflates Python time: compare shares)"
    )
    print("  own CPU by package:")
    for name, spent in sorted(by_package.items(), key=lambda item: -item[1]):
        print(f"    {name:<18} {100 * spent / total:5.1f}%  {1000 * spent / commands:6.3f} ms/cmd")
    print("  cumulative CPU by phase (nested; * loads include the snapshot-taking reloads):")
    for label, suffix, name in PHASES:
        spent = sum(
            float(v[3])
            for (filename, _, function), v in raw_stats.items()
            if function == name and filename.endswith(suffix)
        )
        print(f"    {label:<48} {100 * spent / total:5.1f}%  {1000 * spent / commands:6.3f} ms/cmd")
    print("  top functions by own CPU:")
    ranked = sorted(raw_stats.items(), key=lambda item: -float(item[1][2]))[:15]
    for (filename, line, function), values in ranked:
        where = "/".join(filename.split("/")[-2:]) if filename != "~" else ""
        print(
            f"    {100 * float(values[2]) / total:5.1f}%  {int(values[1]):>8,} calls"
            f"  {function} {where}:{line}"
        )


def interleaved_medians(actions: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Median milliseconds of each action, the actions taking turns (after one run each)."""
    for action in actions:
        action()  # prepares the statements
    samples: list[list[float]] = [[] for _ in actions]
    for _ in range(repeats):
        for index, action in enumerate(actions):
            start = time.perf_counter()
            action()
            samples[index].append(time.perf_counter() - start)
    return [1000 * statistics.median(values) for values in samples]


def explain(writer: AppCommands, raw: RawCommands, repeats: int = 40) -> None:
    """Unprofiled: each read of a command on both paths, and whole commands, in turns."""
    app = writer.app
    recorder = app.recorder
    assert isinstance(recorder, IdempotencyLookup)
    item = stock_item_id(app.tenant_id, SKU, WAREHOUSE)
    tail = SNAPSHOT_INTERVAL - 1
    # In each path's own stream: a snapshot with `tail` events after it.
    app_snap = (app.repository.get(item).version - tail) // SNAPSHOT_INTERVAL * SNAPSHOT_INTERVAL
    raw_snap = (raw.load(raw.item) - tail) // SNAPSHOT_INTERVAL * SNAPSHOT_INTERVAL
    print()
    if min(app_snap, raw_snap) < SNAPSHOT_INTERVAL:
        print("Per-read costs: skipped (the stock item streams are too short)")
        return
    missing_lot = "L-NOT-RECEIVED"
    reads: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "idempotency lookup (no record)",
            lambda: recorder.select_idempotency("bench-missing"),
            lambda: raw.lookup("bench-missing"),
        ),
        ("tenant", lambda: app.repository.get(app.tenant_id), lambda: raw.load(raw.tenant_id)),
        (
            "product",
            lambda: app.repository.get(product_id(app.tenant_id, SKU)),
            lambda: raw.load(raw.product),
        ),
        (
            "warehouse",
            lambda: app.repository.get(warehouse_id(app.tenant_id, WAREHOUSE)),
            lambda: raw.load(raw.warehouse),
        ),
        (
            "lot registry (a new lot: no rows)",
            lambda: app.lot(SKU, missing_lot),
            lambda: raw.load(lot_id(raw.tenant_id, SKU, missing_lot)),
        ),
        (
            "stock item: snapshot + 0 events",
            lambda: app.repository.get(item, version=app_snap),
            lambda: raw.load(raw.item, lte=raw_snap),
        ),
        (
            f"stock item: snapshot + {tail} events",
            lambda: app.repository.get(item, version=app_snap + tail),
            lambda: raw.load(raw.item, lte=raw_snap + tail),
        ),
    ]
    medians = interleaved_medians([f for _, a, r in reads for f in (a, r)], repeats)
    costs = {label: (medians[2 * i], medians[2 * i + 1]) for i, (label, _, _) in enumerate(reads)}
    commands = interleaved_medians([writer.receive, writer.issue, raw.receive, raw.issue], repeats)
    print(
        f"Where a command's time goes, unprofiled: medians of {repeats} (ms), app and raw taking"
        " turns; the stock item read at a given version (as Application.take_snapshot reads it)"
    )
    print(f"  {'read':<40} {'app':>7} {'raw':>7}")
    for label, (a, r) in costs.items():
        print(f"  {label:<40} {a:>7.3f} {r:>7.3f}")
    zero = costs["stock item: snapshot + 0 events"]
    full = costs[f"stock item: snapshot + {tail} events"]
    average_tail = tail / 2
    per_event = [(full[i] - zero[i]) / tail for i in (0, 1)]
    item_cost = [zero[i] + per_event[i] * average_tail for i in (0, 1)]
    print(
        f"  per event replayed after the snapshot: app {per_event[0]:.3f}, raw {per_event[1]:.3f};"
        f" so at the average tail ({average_tail:.1f} events) a stock item read costs"
        f" app {item_cost[0]:.2f}, raw {item_cost[1]:.2f}"
    )
    common = ("idempotency lookup (no record)", "tenant", "product", "warehouse")
    issue_reads = [sum(costs[k][i] for k in common) + item_cost[i] for i in (0, 1)]
    receive_reads = list(issue_reads)  # a generated lot is new: its registry is not read
    print(f"  {'':<20} {'app receive':>12} {'app issue':>10} {'raw receive':>12} {'raw issue':>10}")
    whole = [commands[0], commands[1], commands[2], commands[3]]
    read = [receive_reads[0], issue_reads[0], receive_reads[1], issue_reads[1]]
    rows = (
        ("whole command", whole),
        ("its reads (sum)", read),
        ("the rest", [w - r for w, r in zip(whole, read, strict=True)]),
    )
    for label, values in rows:
        print(
            f"  {label:<20} {values[0]:>12.2f} {values[1]:>10.2f} {values[2]:>12.2f}"
            f" {values[3]:>10.2f}"
        )
    print("  the rest: fingerprint, rules and results, encoding, the keyed insert and its commit,")
    print(f"  and (every {SNAPSHOT_INTERVAL}th stock item event) the snapshot")


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_results(results: Sequence[PathResult], busy_before: float | None) -> None:
    print()
    print(
        "Receive-then-issue commands per second (each command counted), 1 unit each, with an"
        " idempotency key; nproc ="
        f" {nproc()}, machine busy before the run: {fmt(busy_before and 100 * busy_before, '.0f')}%"
    )
    print(
        f"  {'path':<5} {'shape':<26} {'cmds/s':>7} {'wall':>7} {'client':>7} {'server':>7}"
        f" {'foreign':>8} {'steal':>6}  rounds (cmds/s)"
    )
    print(
        f"  {'':<5} {'':<26} {'':>7} {'ms/cmd':>7} {'ms/cmd':>7} {'ms/cmd':>7}"
        f" {'cores':>8} {'cores':>6}"
    )
    for r in results:
        mark = "*" if r.disturbed else " "
        print(
            f"  {r.path:<5} {r.shape:<26} {r.rate:>7,.0f} {r.wall_ms:>7.2f}"
            f" {fmt(r.client_ms, '.2f'):>7} {fmt(r.server_ms, '.2f'):>7}"
            f" {fmt(r.foreign_cores, '.2f'):>8} {fmt(r.steal_cores, '.2f'):>6}{mark}"
            f" {' / '.join(f'{w.rate:.0f}' for w in r.windows)}"
        )
    print(
        "  wall: elapsed per command per writer; client: this process's CPU; server: CPU of the"
        " PostgreSQL backends of the benchmark database (from /proc)"
    )
    if any(r.disturbed for r in results):
        print(
            f"  * other processes > {DISTURBED_FOREIGN_CORES} or steal > {DISTURBED_STEAL_CORES}"
            " cores meanwhile: those figures are depressed; rerun on an idle machine."
        )
    print()
    shapes = dict.fromkeys(r.shape for r in results)
    for shape in shapes:
        app = next(r for r in results if r.shape == shape and r.path == "app")
        raw = next(r for r in results if r.shape == shape and r.path == "raw")
        ratio = app.rate / raw.rate if raw.rate else 0.0
        verdict = "MET" if ratio >= GOAL_APP_VS_RAW else "NOT MET"
        print(f"  app / raw, {shape + ':':<27} {ratio:.2f}   goal >= {GOAL_APP_VS_RAW}: {verdict}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.commands", description=__doc__)
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("LEDGER_BENCH_SECONDS", DEFAULT_SECONDS)),
        help="measured seconds per path and shape (env LEDGER_BENCH_SECONDS; default %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="split the seconds into this many windows per path, app and raw alternating"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=DEFAULT_WARMUP,
        help="seconds run before each measured window (default %(default)s)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=0,
        metavar="TENANTS",
        help="also run this many tenants with one writer thread each (default: not run)",
    )
    parser.add_argument(
        "--loads",
        type=int,
        default=DEFAULT_LOADS,
        help="timed loads per long-history stream (default %(default)s)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help="events per save when writing the long-history streams (default %(default)s)",
    )
    parser.add_argument(
        "--no-growth",
        action="store_true",
        help="skip the streams with a new lot per receipt (saves ~15 s)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help="hash partitions of the events table (default %(default)s)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile the app path (one writer) for --seconds",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.warmup < 0 or args.parallel < 0:
        parser.error("--seconds must be > 0, --rounds >= 1, --warmup and --parallel >= 0")
    if args.loads < 1 or args.batch < 1:
        parser.error("--loads and --batch must be >= 1")
    return args


def run(url: str, args: argparse.Namespace, busy_before: float | None) -> None:
    with ExitStack() as stack:
        conn = stack.enter_context(psycopg.connect(url, autocommit=True))
        single = build_shape(url, "1 tenant, 1 writer", 1, "single")
        stack.callback(single.ledger.close)
        shapes = [single]
        if args.parallel:
            label = f"{args.parallel} tenants, 1 writer each"
            shapes.append(build_shape(url, label, args.parallel, "parallel"))
            stack.callback(shapes[-1].ledger.close)

        # The trace: the app first (its stored bytes then feed the raw path), then raw.
        trace = StatementTrace()
        app_writer = single.app_writers[0]
        trace.run("app", app_writer, TRACE_PAIRS)
        samples = Samples()
        done = app_writer.number
        samples.read_events(
            conn, app_writer.app.tenant_id, command_key(done - 1), command_key(done)
        )
        samples.read_snapshots(conn, single.app_tenants)
        for shape in shapes:
            attach_raw(shape, url, samples, stack)
        trace.run("raw", single.raw_writers[0], TRACE_PAIRS)
        print(
            f"Set up: {SETUP_PAIRS} pairs per tenant; traced {TRACE_PAIRS} pairs per path;"
            f" measuring {args.seconds:g} s per path in {args.rounds} window(s) after"
            f" {args.warmup:g} s warm-up each...",
            flush=True,
        )
        results: list[PathResult] = []
        for shape in shapes:
            results.extend(measure_shape(shape, samples, conn, args))
        print_results(results, busy_before)
        print_trace(trace)

        sizes = payload_sizes(conn, single)
        print()
        print("Average stored payload bytes (header + serialised event), app vs raw tenants:")
        for topic in (RECEIVED_TOPIC, LOT_REGISTERED_TOPIC, REMOVED_TOPIC):
            print(
                f"  {topic:<34} app {sizes['app'].get(topic, 0.0):>6.0f}"
                f"   raw {sizes['raw'].get(topic, 0.0):>6.0f}"
            )
        app_snap = last_snapshot_bytes(conn, single.app_tenants[0])
        raw_snap = last_snapshot_bytes(conn, single.raw_tenants[0])
        print(
            f"  latest stock item snapshot: app v{app_snap[0]:,} {app_snap[1]:,} bytes, raw"
            f" v{raw_snap[0]:,} {raw_snap[1]:,} bytes (raw reuses the app's snapshot of the same"
            " version; beyond the app's last one, that one padded to the size the app's growth"
            " rate predicts)"
        )
        problems = [p for shape in shapes for p in check_streams(conn, shape)]
        print(
            "  checks: "
            + ("; ".join(problems) if problems else "every command of both paths appended")
            + ("" if problems else " its events and its idempotency record; app stock consistent")
        )
        if args.profile:
            explain(app_writer, single.raw_writers[0])
            profile_app(app_writer, args.seconds)
        long_history(url, conn, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    busy_before = sample_busy(1.0)
    with throwaway_database(admin_url()) as url:
        print(f"benchmark database {dbname(url)}; migrating...", flush=True)
        migrate_postgres(url, args.partitions)
        run(url, args, busy_before)
    print(f"Total run time {time.perf_counter() - start:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
