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
import secrets
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import psycopg
from eventsourcing.application import Application
from eventsourcing.utils import Environment
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bench.counter import Counter
from domain.application import TenantApplication
from domain.metadata import EventMetadata
from eventstore.envelope import ZERO_HASH, encode_payload, utc_now
from eventstore.postgres import EVENTS, HEADS, INSERT_ONE, PostgresLedgerStore
from ledger.migrate import upgrade
from ledger.wiring import Ledger

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 1.0
DEFAULT_WRITERS = 4
DEFAULT_PARTITIONS = 16

GOAL_STORE_VS_RAW = 0.6
GOAL_TENANT_SCALING = 2.0

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
    case: Case
    shape: Shape
    saves: int
    seconds: float
    cpu_seconds: float
    machine_busy: float | None
    per_thread: tuple[int, ...]

    @property
    def rate(self) -> float:
        return self.saves / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_save(self) -> float:
        return 1000 * self.cpu_seconds / self.saves if self.saves else 0.0

    @property
    def client_cores(self) -> float:
        """Cores' worth of CPU the benchmark process used (a GIL-bound process stays <= ~1)."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


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


def machine_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (None off Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def measure(
    case: Case, shape: Shape, writers: Sequence[Writer], warmup: float, seconds: float
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
    for thread in threads:
        thread.start()
    try:
        start.wait()
        stop.wait(warmup)
        ticks0 = machine_cpu_ticks()
        first, t0, cpu0 = list(counts), time.perf_counter(), time.process_time()
        stop.wait(seconds)
        last, t1, cpu1 = list(counts), time.perf_counter(), time.process_time()
        ticks1 = machine_cpu_ticks()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    if errors:
        raise errors[0]
    per_thread = tuple(b - a for a, b in zip(first, last, strict=True))
    return Result(
        case=case,
        shape=shape,
        saves=sum(per_thread),
        seconds=t1 - t0,
        cpu_seconds=cpu1 - cpu0,
        machine_busy=busy_fraction(ticks0, ticks1),
        per_thread=per_thread,
    )


def run_case(bench: Bench, case: Case, shape: Shape, warmup: float, seconds: float) -> Result:
    with ExitStack() as stack:
        return measure(case, shape, case.build(bench, shape, stack), warmup, seconds)


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"LEDGER_BENCH_DATABASE_URL must be a postgresql:// URL, not {url!r}")
    return urlunsplit(parts._replace(scheme="postgresql", path="/" + dbname))


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the admin URL's server (its URL); dropped afterwards."""
    name = f"ledger_bench_{secrets.token_hex(6)}"
    url = with_dbname(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        print(f"dropped database {name}")


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


def print_report(results: list[Result], bench: Bench, args: argparse.Namespace) -> None:
    by_key = {(r.case.key, r.shape.key): r for r in results}
    cpus = nproc()
    print()
    print(
        f"Single-event saves per second, one transaction per save; {args.seconds:g} s measured"
        f" after {args.warmup:g} s warm-up per case; nproc = {cpus}."
    )
    print(
        "client CPU = CPU time of this Python process per save (all threads);"
        " client cores = that CPU / wall time (GIL: one process runs Python on ~1 core);"
        f" machine busy = all {cpus} cores, incl. PostgreSQL."
    )
    print()
    header = (
        f"{'case':<18} {'shape':<28} {'saves/s':>9} {'client CPU':>11} {'client':>7}"
        f" {'machine':>8}  per-thread saves"
    )
    print(header)
    print(f"{'':<18} {'':<28} {'':>9} {'ms/save':>11} {'cores':>7} {'busy':>8}")
    print("-" * len(header))
    for result in results:
        busy = "n/a" if result.machine_busy is None else f"{100 * result.machine_busy:.0f}%"
        shape_label = result.shape.label
        if result.case.key == "default" and result.shape.key != "one":
            shape_label = f"{result.shape.threads} writers (no tenants)"
        print(
            f"{result.case.label:<18} {shape_label:<28} {result.rate:>9,.0f}"
            f" {result.cpu_ms_per_save:>11.3f} {result.client_cores:>7.2f} {busy:>8}"
            f"  {', '.join(str(n) for n in result.per_thread)}"
        )
    sizes = payload_sizes(bench)
    if sizes:
        print()
        print(
            "average stored payload: "
            + ", ".join(f"{k} {v:.0f} bytes" for k, v in sizes.items())
            + f" (serialised event {len(bench.state)} bytes)"
        )

    def rate(case: str, shape: str) -> float:
        return by_key[(case, shape)].rate

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    shape_list = shapes(args.writers)
    labels = {s.key: s.label for s in shape_list}
    print()
    print("Ratios")
    for shape in shape_list:
        value = ratio(rate("store", shape.key), rate("raw", shape.key))
        print(
            f"  store / raw, {labels[shape.key]:<28} {value:5.2f}   "
            f"{verdict(value, GOAL_STORE_VS_RAW)}"
        )
    n = args.writers
    store_scaling = ratio(rate("store", "tenants"), rate("store", "one"))
    raw_scaling = ratio(rate("raw", "tenants"), rate("raw", "one"))
    print(
        f"  store: {n} tenants parallel / 1 writer     {store_scaling:5.2f}   "
        f"{verdict(store_scaling, GOAL_TENANT_SCALING)}"
    )
    print(f"  raw:   {n} tenants parallel / 1 writer     {raw_scaling:5.2f}   (reference ceiling)")
    print(
        f"  store: 1 tenant x {n} writers / 1 writer   "
        f"{ratio(rate('store', 'threads'), rate('store', 'one')):5.2f}   (one tenant's writers"
        " are serialised on its head row)"
    )
    print(
        f"  raw:   1 tenant x {n} writers / 1 writer   "
        f"{ratio(rate('raw', 'threads'), rate('raw', 'one')):5.2f}"
    )
    print(
        f"  default: {n} writers / 1 writer           "
        f"{ratio(rate('default', 'tenants'), rate('default', 'one')):5.2f}   (one table lock for"
        " all writers)"
    )
    for shape in shape_list:
        value = ratio(rate("store", shape.key), rate("default", shape.key))
        print(f"  store / library default, {labels[shape.key]:<28} {value:5.2f}")

    notes = []
    saturated = [r for r in results if r.machine_busy is not None and r.machine_busy >= 0.9]
    gil_bound = [r for r in results if r.client_cores >= 0.85]
    if cpus <= 2:
        notes.append(
            f"only {cpus} CPU(s): the benchmark process (one GIL) and the PostgreSQL backends"
            " share them, so multi-writer shapes cannot scale linearly."
        )
    if gil_bound:
        names = "; ".join(f"{r.case.key}/{r.shape.key}" for r in gil_bound)
        notes.append(f"client process at >= 0.85 cores (GIL/CPU-bound): {names}.")
    if saturated:
        names = "; ".join(f"{r.case.key}/{r.shape.key}" for r in saturated)
        notes.append(f"machine CPU >= 90% busy: {names}.")
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
    """cProfile of the store's single writer, on this thread: where the client CPU goes."""
    with ExitStack() as stack:
        (writer,) = build_store(bench, Shape("one", "1 tenant, 1 writer", 1, 1), stack)
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            writer()
        profiler = cProfile.Profile()
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
    print(f"Profile of the store path, 1 writer, {saves} saves (cProfile inflates Python time)")
    print("  own time by package (C functions listed separately as builtins):")
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
        "--warmup", type=float, default=DEFAULT_WARMUP, help="seconds before measuring"
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
    if args.seconds <= 0 or args.warmup < 0 or args.writers < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --writers >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    admin_url = os.environ.get("LEDGER_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)
    with throwaway_database(admin_url) as url:
        print(f"benchmark database {conninfo_to_dict(url)['dbname']}; migrating...")
        upgrade("postgresql+psycopg://" + url.split("://", 1)[1], args.partitions)
        create_default_tables(url)
        bench = Bench(url=url, state=sample_state(url))
        results = []
        for case in CASES:
            for shape in shapes(args.writers):
                result = run_case(bench, case, shape, args.warmup, args.seconds)
                print(f"  {case.label:<18} {shape.label:<28} {result.rate:>9,.0f} saves/s")
                sys.stdout.flush()
                results.append(result)
        print_report(results, bench, args)
        if args.profile:
            profile_store(bench, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
