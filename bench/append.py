"""Append benchmark: single-event saves per second, one transaction per save.

Three ways to do the same write, each in three shapes, against a throwaway PostgreSQL database:

* ``store``   - this project: ``Ledger(PostgresLedgerStore)`` -> ``TenantApplication.save()``
                (tenant head row + hash-chained insert in ONE autocommit statement).
* ``raw``     - the leanest psycopg doing the same write: ``eventstore.postgres.INSERT_ONE``,
                prepared, on one reused autocommit connection (and cursor) per thread.
* ``default`` - the library's own ``PostgresApplicationRecorder`` (one table lock per save).

Run from the project root: ``python -m bench.append [--seconds 5]``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.application import Application
from eventsourcing.utils import Environment
from psycopg.conninfo import conninfo_to_dict

from bench.common import DEFAULT_PARTITIONS, admin_url, migrate_postgres, throwaway_database
from bench.counter import Counter
from domain.application import TenantApplication
from domain.metadata import EventMetadata
from eventstore.envelope import ZERO_HASH, encode_payload, utc_now
from eventstore.postgres import INSERT_ONE, PostgresLedgerStore
from eventstore.queries import EVENTS, HEADS
from ledger.wiring import Ledger

DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 1.0
DEFAULT_ROUNDS = 2
DEFAULT_WRITERS = 4

GOAL_STORE_VS_RAW = 0.6
GOAL_TENANT_SCALING = 2.0

#: Above these, a case's figures are marked as disturbed by other load.
DISTURBED_FOREIGN_CORES = 0.1
DISTURBED_STEAL_CORES = 0.2

#: A save, run over and over by one writer thread.
Writer = Callable[[], None]


# --------------------------------------------------------------------------------------------
# What is measured
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How many tenants and writer threads a case runs with."""

    key: str
    label: str
    tenants: int
    threads: int


@dataclass
class Bench:
    """The benchmark database and what the cases share."""

    url: str
    state: bytes
    tenants: dict[str, list[UUID]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class Case:
    """One way of saving an event; `build` prepares one writer per thread of a shape."""

    key: str
    label: str
    build: Callable[[Bench, Shape, ExitStack], list[Writer]]


@dataclass(frozen=True)
class Result:
    """The saves of one case's measured windows, and who spent CPU on them (seconds)."""

    case: Case
    shape: Shape
    saves: int
    seconds: float
    client_cpu: float
    server_cpu: float | None
    foreign_cpu: float | None
    steal_cpu: float | None
    machine_busy_cpu: float | None
    machine_cores: int
    per_thread: tuple[int, ...]
    round_rates: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.saves / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_ms_per_save(self) -> float:
        return 1000 * self.client_cpu / self.saves if self.saves else 0.0

    @property
    def server_ms_per_save(self) -> float | None:
        if self.server_cpu is None or not self.saves:
            return None
        return 1000 * self.server_cpu / self.saves

    @property
    def client_cores(self) -> float:
        """Cores' worth of CPU the benchmark process used (a GIL-bound process stays <= ~1)."""
        return self.client_cpu / self.seconds if self.seconds > 0 else 0.0

    @property
    def machine_busy(self) -> float | None:
        """Fraction of all the machine's cores that were busy."""
        if self.machine_busy_cpu is None or self.seconds <= 0:
            return None
        return self.machine_busy_cpu / (self.seconds * self.machine_cores)

    @property
    def foreign_cores(self) -> float | None:
        """CPU of processes that are neither this one nor the PostgreSQL server's: other load."""
        if self.foreign_cpu is None or self.seconds <= 0:
            return None
        return self.foreign_cpu / self.seconds

    @property
    def steal_cores(self) -> float | None:
        """CPU the hypervisor gave to other machines while this one wanted it."""
        if self.steal_cpu is None or self.seconds <= 0:
            return None
        return self.steal_cpu / self.seconds

    @property
    def disturbed(self) -> bool:
        return (self.foreign_cores or 0.0) > DISTURBED_FOREIGN_CORES or (
            self.steal_cores or 0.0
        ) > DISTURBED_STEAL_CORES


def optional_sum(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def combine(rounds: Sequence[Result]) -> Result:
    """One case's rounds as one result: totals over all its measured windows."""
    first = rounds[0]
    return Result(
        case=first.case,
        shape=first.shape,
        saves=sum(r.saves for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        client_cpu=sum(r.client_cpu for r in rounds),
        server_cpu=optional_sum([r.server_cpu for r in rounds]),
        foreign_cpu=optional_sum([r.foreign_cpu for r in rounds]),
        steal_cpu=optional_sum([r.steal_cpu for r in rounds]),
        machine_busy_cpu=optional_sum([r.machine_busy_cpu for r in rounds]),
        machine_cores=first.machine_cores,
        per_thread=tuple(map(sum, zip(*(r.per_thread for r in rounds), strict=True))),
        round_rates=tuple(rate for r in rounds for rate in r.round_rates),
    )


def shapes(writers: int) -> tuple[Shape, ...]:
    return (
        Shape("one", "1 tenant, 1 writer", 1, 1),
        Shape("tenants", f"{writers} tenants, 1 writer each", writers, writers),
        Shape("threads", f"1 tenant, {writers} writers", 1, writers),
    )


# --------------------------------------------------------------------------------------------
# store: this project's application path
# --------------------------------------------------------------------------------------------


def app_save(app: TenantApplication, counter: Counter) -> None:
    counter.increment()
    app.save(counter, meta=EventMetadata())


def build_store(bench: Bench, shape: Shape, stack: ExitStack) -> list[Writer]:
    """One Ledger (one shared pool); each thread has its own Counter stream in its tenant."""
    ledger = Ledger(PostgresLedgerStore(bench.url, pool_size=shape.threads), snapshot_interval=0)
    stack.callback(ledger.close)
    tenants = [uuid4() for _ in range(shape.tenants)]
    bench.tenants["store"].extend(tenants)
    writers: list[Writer] = []
    for index in range(shape.threads):
        app = ledger.app(tenants[index % shape.tenants])
        counter = Counter()
        app.save(counter, meta=EventMetadata())  # creates the stream (and the tenant's head row)
        writers.append(partial(app_save, app, counter))
    return writers


# --------------------------------------------------------------------------------------------
# raw: the same statement, nothing else
# --------------------------------------------------------------------------------------------

COUNTER_INCREMENTED_TOPIC = f"{Counter.__module__}:{Counter.Incremented.__qualname__}"


class RawWriter:
    """INSERT_ONE on one autocommit connection and cursor.

    Per save, like the store: new metadata, the recorded time, ``encode_payload`` (orjson header
    + the serialised event) and one prepared statement. Precomputed: the serialised event (the
    library's transcoding of an ``Incremented`` event, taken once from the store's own mapper, so
    the payloads have the same size). Not done at all: the aggregate, the domain event object,
    transcoding, the pool checkout, the retry wrapper - that is the overhead the ratio measures.
    """

    def __init__(self, conn: psycopg.Connection[Any], tenant_id: UUID, state: bytes) -> None:
        self.cursor = conn.cursor()
        self.tenant_id = tenant_id
        self.stream_id = uuid4()
        self.version = 0
        self.state = state

    def __call__(self) -> None:
        self.version += 1
        payload = encode_payload(
            self.tenant_id,
            self.stream_id,
            self.version,
            COUNTER_INCREMENTED_TOPIC,
            self.state,
            EventMetadata(),
            utc_now(),
        )
        self.cursor.execute(
            INSERT_ONE,
            {
                "tenant_id": self.tenant_id,
                "originator_id": self.stream_id,
                "originator_version": self.version,
                "topic": COUNTER_INCREMENTED_TOPIC,
                "payload": payload,
            },
            prepare=True,
        )
        if self.cursor.fetchone() is None:
            raise RuntimeError(f"tenant {self.tenant_id} has no head row")


def build_raw(bench: Bench, shape: Shape, stack: ExitStack) -> list[Writer]:
    tenants = [uuid4() for _ in range(shape.tenants)]
    bench.tenants["raw"].extend(tenants)
    with psycopg.connect(bench.url, autocommit=True) as conn:
        for tenant_id in tenants:
            conn.execute(
                f"INSERT INTO {HEADS} (tenant_id, position, hash, prev_hash)"
                " VALUES (%s, 0, %s, %s)",
                (tenant_id, ZERO_HASH, ZERO_HASH),
            )
    writers: list[Writer] = []
    for index in range(shape.threads):
        conn = psycopg.connect(bench.url, autocommit=True)
        stack.callback(conn.close)
        writers.append(RawWriter(conn, tenants[index % shape.tenants], bench.state))
    return writers


# --------------------------------------------------------------------------------------------
# default: the library's PostgresApplicationRecorder
# --------------------------------------------------------------------------------------------


class DefaultApp(Application[UUID]):
    """A plain library application on ``eventsourcing.postgres``.

    Its settings are only the ones given (the process environment is not merged in), so no
    stray ``POSTGRES_*`` variable - in particular never POSTGRES_ENABLE_DB_FUNCTIONS - applies.
    """

    name = "BenchDefault"

    def construct_env(self, name: str, env: Any = None) -> Environment:
        return Environment(name, dict(env or {}))


def default_env(url: str, *, pool_size: int, create_table: bool) -> dict[str, str]:
    params = conninfo_to_dict(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params["dbname"]),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "CREATE_TABLE": "y" if create_table else "n",
    }


def create_default_tables(url: str) -> None:
    """Once, before any writer thread: concurrent table creation by the library fails."""
    DefaultApp(env=default_env(url, pool_size=1, create_table=True)).close()


def default_save(app: DefaultApp, counter: Counter) -> None:
    counter.increment()
    app.save(counter)


def build_default(bench: Bench, shape: Shape, stack: ExitStack) -> list[Writer]:
    """One application (one pool) shared by the threads, each on its own Counter stream."""
    app = DefaultApp(env=default_env(bench.url, pool_size=shape.threads, create_table=False))
    stack.callback(app.close)
    writers: list[Writer] = []
    for _ in range(shape.threads):
        counter = Counter()
        app.save(counter)
        writers.append(partial(default_save, app, counter))
    return writers


CASES = (
    Case("store", "this store (app)", build_store),
    Case("raw", "raw psycopg", build_raw),
    Case("default", "library default", build_default),
)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class MachineCpu:
    """CPU seconds of all the machine's cores since boot: used, and stolen by the hypervisor."""

    busy: float
    steal: float


def machine_cpu() -> MachineCpu | None:
    """From the first line of /proc/stat (None off Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user, nice]
    values += [0] * (8 - len(values))
    user, nice, system, _, _, irq, softirq, steal = values[:8]
    ticks = clock_ticks()
    return MachineCpu((user + nice + system + irq + softirq) / ticks, steal / ticks)


@dataclass(frozen=True)
class ProcessCpu:
    pid: int
    ppid: int
    cpu: float


def processes_cpu() -> dict[int, ProcessCpu]:
    """User + system CPU seconds of every process, from /proc/<pid>/stat (empty off Linux)."""
    found: dict[int, ProcessCpu] = {}
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return found
    ticks = clock_ticks()
    for name in entries:
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
            fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            found[int(name)] = ProcessCpu(int(name), int(fields[1]), cpu)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def backend_pids(monitor: psycopg.Connection[Any]) -> tuple[set[int], set[int]]:
    """The server's client backends: (the benchmark's but `monitor`, other databases')."""
    rows = monitor.execute(
        "SELECT pid, datname = current_database() FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ).fetchall()
    return {int(p) for p, ours in rows if ours}, {int(p) for p, ours in rows if not ours}


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds between two snapshots: our server backends, and foreign processes."""

    server: float | None
    foreign: float | None


def split_cpu(
    before: dict[int, ProcessCpu],
    after: dict[int, ProcessCpu],
    backends: set[int],
    others: set[int],
) -> CpuSplit:
    """Backends: the benchmark's connections. Foreign: other load - neither this process, nor
    the server (its postmaster and children, e.g. the WAL writer) except its backends serving
    other databases (`others`), nor kernel threads.

    Both are None when /proc is unreadable or the server is not on this machine.
    """
    common = backends & before.keys() & after.keys()
    if not common:
        return CpuSplit(None, None)
    server = sum(after[p].cpu - before[p].cpu for p in common)
    postmaster = after[next(iter(common))].ppid
    own = os.getpid()
    foreign = 0.0
    for pid, proc in after.items():
        if pid in (own, postmaster, 2) or (proc.ppid in (postmaster, 2) and pid not in others):
            continue
        previous = before.get(pid)
        foreign += proc.cpu - (previous.cpu if previous is not None else 0.0)
    return CpuSplit(server, max(0.0, foreign))


def sample_busy(seconds: float) -> float | None:
    """How busy the machine's CPUs are over a short while (before the benchmark loads it)."""
    before, start = machine_cpu(), time.perf_counter()
    time.sleep(seconds)
    after, elapsed = machine_cpu(), time.perf_counter() - start
    if before is None or after is None:
        return None
    return (after.busy - before.busy + after.steal - before.steal) / (elapsed * nproc())


def measure(
    case: Case, shape: Shape, writers: Sequence[Writer], url: str, warmup: float, seconds: float
) -> Result:
    """Runs each writer on its own thread; counts the saves of a window after the warm-up."""
    counts = [0] * len(writers)
    stop = threading.Event()
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers) + 1)

    def loop(index: int, writer: Writer) -> None:
        start.wait()
        try:
            while not stop.is_set():
                writer()
                counts[index] += 1
        except BaseException as error:
            errors.append(error)
            stop.set()

    threads = [
        threading.Thread(target=loop, args=(i, w), name=f"writer-{i}", daemon=True)
        for i, w in enumerate(writers)
    ]
    with psycopg.connect(url, autocommit=True) as monitor:
        for thread in threads:
            thread.start()
        try:
            start.wait()
            stop.wait(warmup)
            backends, others = backend_pids(monitor)
            procs0 = processes_cpu()
            machine0 = machine_cpu()
            first, t0, cpu0 = list(counts), time.perf_counter(), time.process_time()
            stop.wait(seconds)
            last, t1, cpu1 = list(counts), time.perf_counter(), time.process_time()
            machine1 = machine_cpu()
            procs1 = processes_cpu()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    if errors:
        raise errors[0]
    per_thread = tuple(b - a for a, b in zip(first, last, strict=True))
    split = split_cpu(procs0, procs1, backends, others)
    return Result(
        case=case,
        shape=shape,
        saves=sum(per_thread),
        seconds=t1 - t0,
        client_cpu=cpu1 - cpu0,
        server_cpu=split.server,
        foreign_cpu=split.foreign,
        steal_cpu=None if machine0 is None or machine1 is None else machine1.steal - machine0.steal,
        machine_busy_cpu=None
        if machine0 is None or machine1 is None
        else machine1.busy - machine0.busy,
        machine_cores=nproc(),
        per_thread=per_thread,
        round_rates=(sum(per_thread) / (t1 - t0),),
    )


def run_case(bench: Bench, case: Case, shape: Shape, warmup: float, seconds: float) -> Result:
    with ExitStack() as stack:
        return measure(case, shape, case.build(bench, shape, stack), bench.url, warmup, seconds)


def sample_state(url: str) -> bytes:
    """The store's serialised Incremented event, as its own mapper makes it (no writes)."""
    with Ledger(PostgresLedgerStore(url, pool_size=1), snapshot_interval=0) as ledger:
        app = ledger.app(uuid4())
        counter = Counter()
        counter.increment()
        event = counter.collect_events()[-1]
        return app.mapper.to_stored_event(event).state


def payload_sizes(bench: Bench) -> dict[str, float]:
    """Average stored payload bytes of the store's and the raw writers' tenants."""
    sizes: dict[str, float] = {}
    with psycopg.connect(bench.url, autocommit=True) as conn:
        for key in ("store", "raw"):
            row = conn.execute(
                f"SELECT avg(length(payload))::float FROM {EVENTS}"
                " WHERE tenant_id = ANY(%s) AND originator_version > 1",
                (bench.tenants[key],),
            ).fetchone()
            if row is not None and row[0] is not None:
                sizes[key] = float(row[0])
    return sizes


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def verdict(value: float, goal: float) -> str:
    return f"goal >= {goal:.1f}: {'MET' if value >= goal else 'NOT MET'}"


def fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, spec)


def print_report(
    results: list[Result], bench: Bench, args: argparse.Namespace, baseline: float | None
) -> None:
    by_key = {(r.case.key, r.shape.key): r for r in results}
    cpus = nproc()
    n = args.writers
    print()
    print(
        f"Single-event saves per second, one transaction per save: {args.seconds:g} s measured"
        f" per case, in {args.rounds} window(s) each after {args.warmup:g} s of warm-up."
        f" nproc = {cpus}."
    )
    print("  rounds: saves/s of each window (their spread shows how steady the machine was)")
    print("CPU columns, over the measured window:")
    print("  client ms/save  CPU of this Python process (all writer threads) per save")
    print("  server ms/save  CPU of the PostgreSQL backends serving the benchmark's connections")
    print("  client cores    client CPU / wall time (one process, one GIL: Python runs on <= ~1)")
    print(f"  machine busy    share of all {cpus} cores in use (client, server, anything else)")
    print("  foreign cores   CPU of other processes (not this one, not the PostgreSQL server)")
    print("  steal cores     CPU the hypervisor withheld from this virtual machine")
    print(
        f"  *               foreign > {DISTURBED_FOREIGN_CORES} or steal >"
        f" {DISTURBED_STEAL_CORES} cores: figures depressed by others' load"
    )
    print()
    header = (
        f"{'case':<17} {'shape':<26} {'saves/s':>8} {'client':>7} {'server':>7} {'client':>7}"
        f" {'machine':>8} {'foreign':>7} {'steal':>6}  {'rounds':<14} per-thread"
    )
    print(header)
    print(
        f"{'':<17} {'':<26} {'':>8} {'ms/save':>7} {'ms/save':>7} {'cores':>7}"
        f" {'busy':>8} {'cores':>7} {'cores':>6}  {'saves/s':<14} saves"
    )
    print("-" * (len(header) + 16))
    for r in results:
        shape_label = r.shape.label
        if r.case.key == "default" and r.shape.key != "one":
            shape_label = f"{r.shape.threads} writers, no tenants"
        mark = "*" if r.disturbed else " "
        print(
            f"{r.case.label:<17} {shape_label:<26} {r.rate:>8,.0f} {r.client_ms_per_save:>7.3f}"
            f" {fmt(r.server_ms_per_save, '.3f'):>7} {r.client_cores:>7.2f}"
            f" {fmt(r.machine_busy, '.0f', 100):>7}% {fmt(r.foreign_cores, '.2f'):>7}"
            f" {fmt(r.steal_cores, '.2f'):>6}{mark}"
            f" {'/'.join(f'{rate:.0f}' for rate in r.round_rates):<14}"
            f" {', '.join(str(c) for c in r.per_thread)}"
        )
    sizes = payload_sizes(bench)
    if sizes:
        print()
        print(
            "average stored payload: "
            + ", ".join(f"{k} {v:.0f} bytes" for k, v in sizes.items())
            + f" (of which the serialised event: {len(bench.state)} bytes)"
        )

    def ratio(case_a: str, shape_a: str, case_b: str, shape_b: str) -> float:
        b = by_key[(case_b, shape_b)].rate
        return by_key[(case_a, shape_a)].rate / b if b else 0.0

    labels = {s.key: s.label for s in shapes(n)}
    print()
    print("Ratios of saves/s")
    for key, label in labels.items():
        value = ratio("store", key, "raw", key)
        print(f"  {'store / raw, ' + label:<52} {value:5.2f}   {verdict(value, GOAL_STORE_VS_RAW)}")
    value = ratio("store", "tenants", "store", "one")
    print(
        f"  {f'store, {n} tenants in parallel / 1 writer':<52} {value:5.2f}"
        f"   {verdict(value, GOAL_TENANT_SCALING)}"
    )
    lines = [
        (f"raw,   {n} tenants in parallel / 1 writer", "raw", "tenants", "(reference)"),
        (f"store, 1 tenant x {n} writers / 1 writer", "store", "threads", "(head row serialises)"),
        (f"raw,   1 tenant x {n} writers / 1 writer", "raw", "threads", "(reference)"),
        (f"library default, {n} writers / 1 writer", "default", "tenants", "(one table lock)"),
    ]
    for text, case, shape, remark in lines:
        print(f"  {text:<52} {ratio(case, shape, case, 'one'):5.2f}   {remark}")
    for key, label in labels.items():
        value = ratio("store", key, "default", key)
        print(f"  {'store / library default, ' + label:<52} {value:5.2f}")

    notes = []
    if cpus <= 2:
        notes.append(
            f"only {cpus} CPU(s): this process (one GIL) and the PostgreSQL backends share them,"
            " so the parallel shapes cannot scale linearly."
        )
    gil_bound = [f"{r.case.key}/{r.shape.key}" for r in results if r.client_cores >= 0.85]
    if gil_bound:
        notes.append(f"client process at >= 0.85 cores (GIL/CPU-bound): {', '.join(gil_bound)}.")
    saturated = [
        f"{r.case.key}/{r.shape.key}"
        for r in results
        if r.machine_busy is not None and r.machine_busy >= 0.9
    ]
    if saturated:
        notes.append(f"machine CPU >= 90% busy: {', '.join(saturated)}.")
    disturbed = [f"{r.case.key}/{r.shape.key}" for r in results if r.disturbed]
    if disturbed:
        notes.append(
            "other processes or the hypervisor took CPU (the * rows) during:"
            f" {', '.join(disturbed)} - those figures are depressed; rerun on an idle machine."
        )
    if baseline is not None and baseline >= 0.15:
        notes.append(
            f"the machine was already {100 * baseline:.0f}% busy before the benchmark started."
        )
    if notes:
        print()
        print("Notes")
        for note in notes:
            print(f"  - {note}")


# --------------------------------------------------------------------------------------------
# Profile (optional)
# --------------------------------------------------------------------------------------------

PACKAGE_MARKERS = (
    ("psycopg_pool", "/psycopg_pool/"),
    ("psycopg", "/psycopg/"),
    ("eventsourcing", "/eventsourcing/"),
    ("eventstore", "/eventstore/"),
    ("domain", "/domain/"),
    ("bench", "/bench/"),
    ("typing", "/typing.py"),
    ("uuid", "/uuid.py"),
    ("json", "/json/"),
    ("datetime", "datetime"),
)


def package_of(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    for name, marker in PACKAGE_MARKERS:
        if marker in filename:
            return name
    return "other stdlib"


def profile_store(bench: Bench, seconds: float) -> None:
    """cProfile of the store's single writer on this thread, timed by the thread's CPU clock.

    Waiting for the server costs no CPU, so this shows where the client's CPU goes.
    """
    with ExitStack() as stack:
        (writer,) = build_store(bench, Shape("one", "1 tenant, 1 writer", 1, 1), stack)
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            writer()
        profiler = cProfile.Profile(time.thread_time)
        saves = 0
        deadline = time.perf_counter() + seconds
        profiler.enable()
        while time.perf_counter() < deadline:
            writer()
            saves += 1
        profiler.disable()
    stats = pstats.Stats(profiler)
    raw_stats: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(float(v[2]) for v in raw_stats.values())
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, _), values in raw_stats.items():
        by_package[package_of(filename)] += float(values[2])
    print()
    print(
        f"CPU profile of the store path, 1 writer, {saves} saves over {seconds:g} s"
        " (cProfile inflates Python time; compare shares, not absolute figures)"
    )
    print("  own CPU by package (C functions and methods counted as builtins):")
    for name, spent in sorted(by_package.items(), key=lambda item: -item[1]):
        print(f"    {name:<16} {100 * spent / total:5.1f}%  {1000 * spent / saves:6.3f} ms/save")
    print()
    stats.sort_stats("tottime").print_stats(25)


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.append", description=__doc__)
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("LEDGER_BENCH_SECONDS", DEFAULT_SECONDS)),
        help="measured seconds per case (env LEDGER_BENCH_SECONDS; default %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="split each case's seconds into this many windows, alternating with the other"
        " cases (default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=DEFAULT_WARMUP,
        help="seconds run before each measured window (default %(default)s)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=DEFAULT_WRITERS,
        help="threads (and tenants) of the parallel shapes (default %(default)s)",
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
        help="afterwards, cProfile the store's single writer for --seconds",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.writers < 1 or args.rounds < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --writers and --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_database(admin_url()) as url:
        print(f"benchmark database {conninfo_to_dict(url)['dbname']}; migrating...")
        migrate_postgres(url, args.partitions)
        create_default_tables(url)
        bench = Bench(url=url, state=sample_state(url))
        baseline = sample_busy(1.0)
        if baseline is not None:
            print(f"machine CPU busy before the benchmark (idle check, 1 s): {100 * baseline:.0f}%")
        results = []
        window = args.seconds / args.rounds
        # Shape by shape, the cases alternating round by round, so that the cases compared with
        # each other run back to back and a passing disturbance does not hit one case only.
        for shape in shapes(args.writers):
            rounds: dict[str, list[Result]] = defaultdict(list)
            for _ in range(args.rounds):
                for case in CASES:
                    rounds[case.key].append(run_case(bench, case, shape, args.warmup, window))
            for case in CASES:
                result = combine(rounds[case.key])
                rates = ", ".join(f"{rate:,.0f}" for rate in result.round_rates)
                print(
                    f"  {case.label:<18} {shape.label:<28} {result.rate:>7,.0f} saves/s"
                    f"  (rounds: {rates})"
                )
                results.append(result)
            sys.stdout.flush()
        print_report(results, bench, args, baseline)
        if args.profile:
            profile_store(bench, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
