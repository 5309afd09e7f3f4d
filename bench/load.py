"""Load benchmark: how long loading one aggregate stream takes, with and without snapshots.

A load is ``app.repository.get(stream_id)`` on a ``TenantApplication`` from
``Ledger(store, snapshot_interval=...)`` (the aggregate cache is off): the store reads the latest
snapshot row of the stream (tenant predicate included), then the event rows after it, and the
library rebuilds the aggregate. Beside it, the same two reads with raw psycopg (sqlite3 on SQLite)
on one reused connection:

* ``raw io``   - the store's two SELECTs (``eventstore.queries.stream_query``: same tables,
                 columns, predicates and order), prepared, every row fetched, nothing decoded;
* ``raw json`` - the same plus ``json.loads`` of each row's state (the serialised event after the
                 payload header; the snapshot's state). The fairer baseline: no store can hand
                 back an aggregate without decoding what it read.

Streams of 1,000, 10,000 and 100,000 events (``bench.counter.Counter``) with a snapshot every
100 events, and 1,000 and 10,000 without snapshots, on PostgreSQL; the snapshotted ones again on
SQLite. They are written through the app with many events per save, which also takes the
snapshots; the benchmark checks that every multiple of the interval got one.

Run from the project root: ``python -m bench.load``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
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
from bench.counter import Counter
from domain.application import TenantApplication
from domain.metadata import EventMetadata
from eventstore.envelope import payload_state
from eventstore.postgres import PostgresLedgerStore
from eventstore.queries import EVENTS, SNAPSHOTS, stream_query
from eventstore.sqlite import SQLiteLedgerStore
from eventstore.store import LedgerStore
from ledger.migrate import upgrade
from ledger.wiring import Ledger

SNAPSHOT_INTERVAL = 100
SNAPSHOTTED_SIZES = (1_000, 10_000, 100_000)
#: 100,000 without snapshots is left out: one load alone takes several seconds (see the report).
UNSNAPSHOTTED_SIZES = (1_000, 10_000)

#: Streams up to this long are written in ONE save (several snapshots taken by one save).
ONE_SAVE_EVENTS = 1_000
#: Longer streams: events per save. The store's multi-event insert costs O(n^2) in the events
#: of a save (see bench/README.md), so saves of ~50 are the fastest way to write 100,000.
DEFAULT_BATCH = 50
DEFAULT_LOADS = 30
DEFAULT_WARMUP = 3

GOAL_LONG_HISTORY = 2.0

#: One load; returns what it read (the aggregate's version, or rows), checked after warm-up.
Load = Callable[[], int]
#: Runs a statement on a reused connection and returns every row as a tuple.
Fetch = Callable[[str, Sequence[Any]], Sequence[Sequence[Any]]]


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """A Counter stream written through the app, and what the writing found."""

    backend: str
    tenant_id: UUID
    stream_id: UUID
    events: int
    interval: int
    saves: int
    per_save: int
    seconds: float
    snapshot_versions: tuple[int, ...]
    snapshot_problems: tuple[str, ...]

    @property
    def snapshotted(self) -> bool:
        return self.interval > 0

    @property
    def latest_snapshot(self) -> int:
        return self.snapshot_versions[-1] if self.snapshot_versions else 0

    @property
    def rows_read(self) -> tuple[int, int]:
        """(snapshot rows, event rows) that one load reads."""
        latest = self.latest_snapshot
        return (1 if latest else 0), self.events - latest

    @property
    def label(self) -> str:
        return f"every {self.interval}" if self.snapshotted else "none"


def fill(app: TenantApplication, events: int, batch: int) -> tuple[UUID, int, int, float]:
    """A new Counter stream of `events` events: (its id, saves, events per save, seconds)."""
    per_save = events if events <= ONE_SAVE_EVENTS else batch
    counter = Counter()  # version 1: Created
    saves = saved = 0
    start = time.perf_counter()
    while saved < events:
        size = min(per_save, events - saved)
        while counter.version < saved + size:
            counter.increment()
        app.save(counter, meta=EventMetadata())
        saved += size
        saves += 1
    return counter.id, saves, per_save, time.perf_counter() - start


def check_snapshots(
    rows: Sequence[Sequence[Any]], events: int, interval: int
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The stream's snapshot versions, and what is wrong with them (nothing, if as expected).

    Expected: one at every multiple of the interval up to `events`, each holding count =
    version - 1 (a Counter's first event creates it, every later one adds 1).
    """
    versions = tuple(int(row[0]) for row in rows)
    expected = tuple(range(interval, events + 1, interval)) if interval > 0 else ()
    problems: list[str] = []
    missing = sorted(set(expected) - set(versions))
    extra = sorted(set(versions) - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing (first {missing[:5]})")
    if extra:
        problems.append(f"{len(extra)} unexpected (first {extra[:5]})")
    wrong = [int(row[0]) for row in rows if json.loads(row[1])["state"]["count"] != row[0] - 1]
    if wrong:
        problems.append(f"{len(wrong)} with a wrong count (first {wrong[:5]})")
    return versions, tuple(problems)


def describe_snapshots(stream: Stream) -> str:
    count = len(stream.snapshot_versions)
    if stream.snapshot_problems:
        return f"{count} snapshots: NOT AS EXPECTED: " + "; ".join(stream.snapshot_problems)
    if not count:
        return "0 snapshots (as expected)"
    return (
        f"{count} snapshots, at every multiple of {stream.interval} up to"
        f" {stream.latest_snapshot:,}, each with the right state"
    )


def make_stream(
    backend: str,
    app: TenantApplication,
    events: int,
    interval: int,
    batch: int,
    fetch: Fetch,
    mark: str,
    key: Callable[[UUID], object],
) -> Stream:
    stream_id, saves, per_save, seconds = fill(app, events, batch)
    rows = fetch(
        f"SELECT originator_version, state FROM {SNAPSHOTS}"
        f" WHERE tenant_id = {mark} AND originator_id = {mark} ORDER BY originator_version",
        (key(app.tenant_id), key(stream_id)),
    )
    versions, problems = check_snapshots(rows, events, interval)
    stream = Stream(
        backend=backend,
        tenant_id=app.tenant_id,
        stream_id=stream_id,
        events=events,
        interval=interval,
        saves=saves,
        per_save=per_save,
        seconds=seconds,
        snapshot_versions=versions,
        snapshot_problems=problems,
    )
    print(
        f"  snapshots {stream.label:<10} {events:>8,} events {saves:>5,} save(s) of"
        f" {per_save:>5,} {seconds:>6.1f} s  {events / seconds:>7,.0f} events/s"
        f"  {describe_snapshots(stream)}",
        flush=True,
    )
    return stream


# --------------------------------------------------------------------------------------------
# Loads
# --------------------------------------------------------------------------------------------


def store_load(app: TenantApplication, stream_id: UUID) -> Load:
    """The load measured: the application's repository, as a command handler uses it."""

    def load() -> int:
        counter: Counter = app.repository.get(stream_id)
        return int(counter.version)

    return load


@dataclass(frozen=True)
class RawLoad:
    """The store's reads for one load, on a reused connection: the latest snapshot row of the
    stream, then the event rows after it (``stream_query``, as the recorders build them)."""

    fetch: Fetch
    mark: str
    tenant_key: object
    stream_key: object
    decode: bool

    def __call__(self) -> int:
        snapshots = self.fetch(
            *stream_query(
                SNAPSHOTS, "state", self.mark, self.tenant_key, self.stream_key, None, None, True, 1
            )
        )
        after = int(snapshots[0][0]) if snapshots else None
        events = self.fetch(
            *stream_query(
                EVENTS,
                "payload",
                self.mark,
                self.tenant_key,
                self.stream_key,
                after,
                None,
                False,
                None,
            )
        )
        if self.decode:
            for row in snapshots:
                json.loads(row[2])
            for row in events:
                json.loads(payload_state(row[2]))
        return len(snapshots) + len(events)


def postgres_fetch(conn: psycopg.Connection[TupleRow]) -> Fetch:
    """Prepared statements (as the store's) on one autocommit connection and cursor."""
    cursor = conn.cursor()

    def fetch(statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        cursor.execute(statement, params, prepare=True)
        return cursor.fetchall()

    return fetch


def sqlite_fetch(conn: sqlite3.Connection) -> Fetch:
    def fetch(statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        rows: list[tuple[Any, ...]] = conn.execute(statement, params).fetchall()
        return rows

    return fetch


@dataclass(frozen=True)
class Timing:
    """Seconds of each measured load."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]


@dataclass(frozen=True)
class Measured:
    """One stream's loads: by key ("store", "raw io", "raw json")."""

    stream: Stream
    timings: dict[str, Timing]

    def median(self, key: str) -> float | None:
        timing = self.timings.get(key)
        return None if timing is None else timing.median


def measure(stream: Stream, loads: dict[str, Load], repeats: int, warmup: int) -> Measured:
    """Warm-up loads, a check of what they read, then `repeats` rounds of every load in turn
    (the order rotating from round to round)."""
    snapshot_rows, event_rows = stream.rows_read
    for key, load in loads.items():
        for _ in range(max(1, warmup)):
            found = load()
        expected = stream.events if key == "store" else snapshot_rows + event_rows
        if found != expected:
            raise RuntimeError(f"{stream.backend} {key} load read {found}, expected {expected}")
    keys = list(loads)
    samples: dict[str, list[float]] = {key: [] for key in keys}
    for index in range(repeats):
        shift = index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            loads[key]()
            samples[key].append(time.perf_counter() - start)
    return Measured(stream, {key: Timing(tuple(values)) for key, values in samples.items()})


# --------------------------------------------------------------------------------------------
# Who else used the CPU meanwhile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """CPU seconds spent during one phase of the run, by whom."""

    label: str
    seconds: float
    own: float
    server: float | None
    foreign: float | None
    steal: float | None

    def cores(self, cpu: float | None) -> float | None:
        return None if cpu is None or self.seconds <= 0 else cpu / self.seconds

    @property
    def disturbed(self) -> bool:
        return (self.cores(self.foreign) or 0.0) > DISTURBED_FOREIGN_CORES or (
            self.cores(self.steal) or 0.0
        ) > DISTURBED_STEAL_CORES


class Meter:
    """Splits the CPU used during a phase: this process, the server backends of the benchmark's
    database, other processes (other databases' backends included) and the hypervisor's steal.

    From /proc, so the server figures need the server on this machine (else they are n/a).
    """

    def __init__(self, monitor: psycopg.Connection[TupleRow], before: float | None) -> None:
        self.monitor = monitor
        self.before = before
        self.usages: list[Usage] = []

    def backends(self, database: str | None) -> tuple[set[int], set[int]]:
        """(the benchmark database's backends and the monitor's, the other backends)."""
        rows = self.monitor.execute(
            "SELECT pid, datname IS NOT DISTINCT FROM %s FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
        ours = {int(pid) for pid, own in rows if own} | {self.monitor.info.backend_pid}
        return ours, {int(pid) for pid, own in rows if not own}

    @contextmanager
    def phase(self, label: str, database: str | None = None) -> Iterator[None]:
        ours, others = self.backends(database)
        machine0, processes0 = machine_cpu(), processes_cpu()
        wall0, own0 = time.perf_counter(), time.process_time()
        yield
        wall1, own1 = time.perf_counter(), time.process_time()
        machine1, processes1 = machine_cpu(), processes_cpu()
        ours1, others1 = self.backends(database)
        split = split_cpu(processes0, processes1, ours | ours1, others | others1)
        steal = None if machine0 is None or machine1 is None else machine1.steal - machine0.steal
        self.usages.append(
            Usage(
                label=label,
                seconds=wall1 - wall0,
                own=own1 - own0,
                server=split.server if database is not None else None,
                foreign=split.foreign,
                steal=steal,
            )
        )


def cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def print_usage(meter: Meter) -> None:
    print()
    before = "n/a" if meter.before is None else f"{100 * meter.before:.0f}%"
    print(
        f"CPU by phase, in cores (CPU seconds per second); nproc = {nproc()};"
        f" machine busy before the run (1 s idle check): {before}"
    )
    print(
        f"  {'phase':<18} {'seconds':>8} {'this process':>13} {'its server':>11}"
        f" {'other procs':>12} {'steal':>6}"
    )
    for usage in meter.usages:
        mark = "*" if usage.disturbed else ""
        print(
            f"  {usage.label:<18} {usage.seconds:>8.2f} {cores(usage.cores(usage.own)):>13}"
            f" {cores(usage.cores(usage.server)):>11} {cores(usage.cores(usage.foreign)):>12}"
            f" {cores(usage.cores(usage.steal)):>6}{mark}"
        )
    if any(usage.disturbed for usage in meter.usages):
        print(
            f"  * other processes > {DISTURBED_FOREIGN_CORES} or steal > {DISTURBED_STEAL_CORES}"
            " cores: other load shared the CPUs; those figures are slower and noisier"
            " than on an idle machine - rerun."
        )


# --------------------------------------------------------------------------------------------
# The two databases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    batch: int
    loads: int
    warmup: int
    partitions: int


def new_app(store: LedgerStore, interval: int) -> TenantApplication:
    app = Ledger(store, snapshot_interval=interval, snapshotted=(Counter,)).app(uuid4())
    if app.repository.cache is not None:
        raise SystemExit(
            "AGGREGATE_CACHE_MAXSIZE is set in the environment: the aggregate cache would serve"
            " the loads. Unset it."
        )
    return app


def run_postgres(url: str, options: Options, meter: Meter) -> list[Measured]:
    measured: list[Measured] = []
    database = dbname(url)
    with ExitStack() as stack:
        store = PostgresLedgerStore(url, pool_size=1)
        stack.callback(store.close)
        conn = stack.enter_context(psycopg.connect(url, autocommit=True))
        fetch = postgres_fetch(conn)
        cases = [(SNAPSHOT_INTERVAL, n) for n in SNAPSHOTTED_SIZES]
        cases += [(0, n) for n in UNSNAPSHOTTED_SIZES]
        apps = {interval: new_app(store, interval) for interval in (SNAPSHOT_INTERVAL, 0)}
        store.head(uuid4())  # opens the pool's connection: its backend is then counted as ours
        with meter.phase("PostgreSQL writes", database):
            streams = [
                make_stream(
                    "PostgreSQL",
                    apps[interval],
                    n,
                    interval,
                    options.batch,
                    fetch,
                    "%s",
                    lambda u: u,
                )
                for interval, n in cases
            ]
        print("  loading...", flush=True)
        with meter.phase("PostgreSQL loads", database):
            for stream in streams:
                app = apps[stream.interval]
                tenant, stream_id = stream.tenant_id, stream.stream_id
                loads: dict[str, Load] = {
                    "store": store_load(app, stream_id),
                    "raw io": RawLoad(fetch, "%s", tenant, stream_id, decode=False),
                    "raw json": RawLoad(fetch, "%s", tenant, stream_id, decode=True),
                }
                measured.append(measure(stream, loads, options.loads, options.warmup))
    return measured


def run_sqlite(directory: str, options: Options, meter: Meter) -> list[Measured]:
    path = str(Path(directory) / "ledger.db")
    upgrade("sqlite:///" + path)
    print(f"SQLite {path}: migrated; writing through the app...", flush=True)
    measured: list[Measured] = []
    with ExitStack() as stack:
        store = SQLiteLedgerStore(path, pool_size=1)
        stack.callback(store.close)
        conn = sqlite3.connect(path, isolation_level=None)
        stack.callback(conn.close)
        fetch = sqlite_fetch(conn)
        app = new_app(store, SNAPSHOT_INTERVAL)
        with meter.phase("SQLite writes"):
            streams = [
                make_stream("SQLite", app, n, SNAPSHOT_INTERVAL, options.batch, fetch, "?", str)
                for n in SNAPSHOTTED_SIZES
            ]
        print("  loading...", flush=True)
        with meter.phase("SQLite loads"):
            for stream in streams:
                tenant, stream_key = str(stream.tenant_id), str(stream.stream_id)
                loads: dict[str, Load] = {
                    "store": store_load(app, stream.stream_id),
                    "raw io": RawLoad(fetch, "?", tenant, stream_key, decode=False),
                    "raw json": RawLoad(fetch, "?", tenant, stream_key, decode=True),
                }
                measured.append(measure(stream, loads, options.loads, options.warmup))
    return measured


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.1f}"


def print_table(measured: Sequence[Measured]) -> None:
    header = (
        f"{'backend':<11} {'snapshots':<10} {'events':>8} {'rows':>9}"
        f" {'store':>9} {'':>9} {'raw io':>9} {'':>9} {'raw json':>9} {'':>9}"
        f" {'store/':>8} {'store/':>9}"
    )
    print(header)
    print(
        f"{'':<11} {'':<10} {'':>8} {'read':>9}"
        f" {'median':>9} {'p95':>9} {'median':>9} {'p95':>9} {'median':>9} {'p95':>9}"
        f" {'raw io':>8} {'raw json':>9}"
    )
    print("-" * len(header))
    for m in measured:
        snapshot_rows, event_rows = m.stream.rows_read
        t = m.timings
        store, io, decoded = t["store"], t.get("raw io"), t.get("raw json")
        print(
            f"{m.stream.backend:<11} {m.stream.label:<10} {m.stream.events:>8,}"
            f" {f'{snapshot_rows}+{event_rows:,}':>9}"
            f" {ms(store.median):>9} {ms(store.p95):>9}"
            f" {ms(io.median if io else None):>9} {ms(io.p95 if io else None):>9}"
            f" {ms(decoded.median if decoded else None):>9}"
            f" {ms(decoded.p95 if decoded else None):>9}"
            f" {ratio(store.median, io.median if io else None):>8}"
            f" {ratio(store.median, decoded.median if decoded else None):>9}"
        )


def long_history(measured: Sequence[Measured], backend: str) -> None:
    by_size = {
        m.stream.events: m.timings["store"].median
        for m in measured
        if m.stream.backend == backend and m.stream.snapshotted
    }
    small, large = min(SNAPSHOTTED_SIZES), max(SNAPSHOTTED_SIZES)
    if small not in by_size or large not in by_size:
        return
    value = by_size[large] / by_size[small]
    verdict = "MET" if value < GOAL_LONG_HISTORY else "NOT MET"
    print(
        f"  {backend}, snapshots every {SNAPSHOT_INTERVAL}: load({large:,}) / load({small:,})"
        f" = {value:.2f}   goal < {GOAL_LONG_HISTORY:.0f}: {verdict}"
    )


def where_time_goes(measured: Sequence[Measured]) -> None:
    unsnapshotted = {
        m.stream.events: m
        for m in measured
        if m.stream.backend == "PostgreSQL" and not m.stream.snapshotted
    }
    largest = unsnapshotted.get(max(UNSNAPSHOTTED_SIZES))
    smallest = unsnapshotted.get(min(UNSNAPSHOTTED_SIZES))
    if largest is None or smallest is None:
        return
    n = largest.stream.events
    print()
    print(f"Where a load's time goes: PostgreSQL, {n:,} events, no snapshot (medians)")
    lines = (
        ("raw io", "raw io     the two SELECTs, every row fetched"),
        ("raw json", "raw json   + json.loads of each event's state"),
        ("store", "store      app.repository.get(id)"),
    )
    for key, text in lines:
        value = largest.median(key)
        if value is not None:
            print(f"  {text:<48} {ms(value):>8} ms {1e6 * value / n:>6.1f} us/event")
    store_small, store_large = smallest.median("store"), largest.median("store")
    if store_small is None or store_large is None:
        return
    per_event = (store_large - store_small) / (n - smallest.stream.events)
    print(
        f"  store, per replayed event: (load({n:,}) - load({smallest.stream.events:,}))"
        f" / {n - smallest.stream.events:,} = {1e6 * per_event:.1f} us. The snapshotted loads"
    )
    print("  above read the snapshot at the stream's last version and no event (their best case);")
    print(
        f"  one replaying the {SNAPSHOT_INTERVAL - 1} events after its snapshot costs"
        f" ~{1000 * per_event * (SNAPSHOT_INTERVAL - 1):.1f} ms more."
    )
    big = max(SNAPSHOTTED_SIZES)
    fill_rate = largest.stream.events / largest.stream.seconds
    print(
        f"  {big:,} events without snapshots: not measured - one load would take"
        f" ~{big * per_event:.1f} s and writing"
    )
    print(f"  the stream ~{big / fill_rate:.0f} s, well over the ~10 s allowed for that case.")


def print_report(
    measured: Sequence[Measured], options: Options, meter: Meter, elapsed: float
) -> None:
    print()
    print(
        "Loading one stream: app.repository.get(id), aggregate cache off;"
        f" {options.loads} loads per case after {options.warmup} warm-up load(s), the store's"
        " and the raw loads in turn; milliseconds (p95 interpolated)."
    )
    print("  rows read   snapshot rows + event rows, the same for the store and the raw reads")
    print("  raw io      the store's two SELECTs on one reused connection, prepared, rows fetched,")
    print("              nothing decoded (psycopg; sqlite3 on SQLite)")
    print("  raw json    raw io + json.loads of each row's state: the fairer baseline (the store")
    print("              must decode what it reads); store/raw json is the ratio to judge by")
    print()
    print_table(measured)
    print()
    print("Long history")
    for backend in ("PostgreSQL", "SQLite"):
        long_history(measured, backend)
    where_time_goes(measured)
    problems = [m.stream for m in measured if m.stream.snapshot_problems]
    print()
    if problems:
        print(
            "Snapshots NOT as expected for: "
            + ", ".join(f"{s.backend} {s.events:,}" for s in problems)
        )
    else:
        per_save = ONE_SAVE_EVENTS // SNAPSHOT_INTERVAL
        print(
            f"Snapshots: every stream written with interval {SNAPSHOT_INTERVAL} has one at every"
            f" multiple of it (the {ONE_SAVE_EVENTS:,}-event streams: {per_save} from ONE save),"
            " each with the right state; the others none."
        )
    print_usage(meter)
    print(f"Total run time {elapsed:.0f} s.")


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"events per save for streams longer than {ONE_SAVE_EVENTS:,} (default %(default)s)",
    )
    parser.add_argument(
        "--loads",
        type=int,
        default=DEFAULT_LOADS,
        help="measured loads per case (default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        help="warm-up loads per case (default %(default)s)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help="hash partitions of the events table (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.loads < 1 or args.warmup < 0:
        parser.error("--batch and --loads must be >= 1, --warmup >= 0")
    return Options(
        batch=args.batch, loads=args.loads, warmup=args.warmup, partitions=args.partitions
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    start = time.perf_counter()
    admin = admin_url()
    with psycopg.connect(admin, autocommit=True) as monitor:
        meter = Meter(monitor, before=sample_busy(1.0))
        with throwaway_database(admin) as url:
            migrate_postgres(url, options.partitions)
            print(
                f"PostgreSQL database {dbname(url)}: migrated ({options.partitions} partitions);"
                " writing through the app...",
                flush=True,
            )
            measured = run_postgres(url, options, meter)
        with tempfile.TemporaryDirectory(prefix="ledger_bench_") as directory:
            measured += run_sqlite(directory, options, meter)
    print_report(measured, options, meter, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
