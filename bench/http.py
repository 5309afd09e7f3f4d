"""HTTP benchmark: stock commands and stock-level reads through a real `ledger serve`.

In a throwaway PostgreSQL database (or a temporary SQLite file with ``--backend sqlite``):

* **commands** - 16 clients (threads, each with its own keep-alive ``httpx.Client`` and its own
  SKU) alternately ``POST /v1/stock/receipts`` 1 unit and ``POST /v1/stock/issues`` 1 unit, each
  with an ``Idempotency-Key``, for ``--seconds`` after ``--warmup``: against a server whose read
  models are kept by another process (``LEDGER_PROJECTIONS=off``) and against the default
  ``ledger serve`` (read models following in the same process). Then, with the server stopped,
  the same commands called directly on the application service (``Ledger.app(tenant).receive`` /
  ``.issue``) by 16 threads in this process. Each path has a tenant of its own, set up alike.
  Reported: commands/s, p50 and p99 latency (as the client sees it), CPU, and HTTP / direct.
* **reads** - a tenant with ``--rows`` stock-level rows (SKUs x warehouses, 4 events each),
  seeded with the bulk seeder (``ledger.demo_bulk``: the ledger's own commands, written in
  batches) and projected by ``projections.rebuild.Rebuild`` (stock levels, lots, catalog: what
  the stock-levels query reads). Then ``GET /v1/stock-levels?sku=&warehouse=`` (one row, random
  pairs) and ``GET /v1/stock-levels?limit=100`` (a full first page), ``--reads`` requests each,
  by one client and by 16, against the query function called in-process on one connection.

CPU is shown as in the other benchmarks (``bench.common.Meter``): this process (the clients, or
the direct path), the PostgreSQL server, and other load, which includes the served process.
Every HTTP client runs on this machine, so clients and server share its cores.

Run from the project root: ``python -m bench.http [--backend sqlite] [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import jwt
from sqlalchemy import Engine, text

from bench.common import Meter, Usage, admin_url, migrate_postgres, throwaway_database
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from ledger import migrate
from ledger.demo_bulk import bulk_application
from ledger.read_side import read_engine
from ledger.settings import Settings
from ledger.wiring import Ledger
from projections.catalog import Catalog
from projections.lots import Lots
from projections.rebuild import Rebuild
from projections.stock_levels import StockLevels, stock_levels
from tests.http_server import SECRET, served

CLIENTS = 16
WAREHOUSE, BIN = "WH-1", "A-01"
UNIT_COST = "2.50"
READ_WAREHOUSES = 100
PAGE = 100
#: Positions per rebuild batch. A batch of 50,000 positions of this seed holds ~12,000 new
#: stock items, and the stock-levels projection's lookup of them (one IN list) exceeds
#: PostgreSQL's max_stack_depth; 10,000 positions hold ~2,500.
BATCH = 10_000
#: Settings of the served benchmark instance: a connection per client, no rate limit in the way
#: and no log line per request.
SERVER_ENV = {
    "LEDGER_DB_POOL_SIZE": str(CLIENTS),
    "LEDGER_DB_MAX_OVERFLOW": "8",
    "LEDGER_LOG_REQUESTS": "false",
}


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one path did in its window: latencies (seconds) of the requests it measured."""

    label: str
    latencies: list[float]
    usage: Usage

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.usage.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        p50, p99 = self.percentile(0.50) * 1000, self.percentile(0.99) * 1000
        return (
            f"  {self.label:<44} {self.rate:>9,.0f}/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
            f"  ({len(self.latencies):,} in {self.usage.seconds:.1f} s; {self.usage.describe()})"
        )


def for_seconds(
    label: str, actions: Sequence[Callable[[], None]], seconds: float, warmup: float
) -> Run:
    """Each action on its own thread, again and again; the window after `warmup` is measured."""
    stop, start = threading.Event(), threading.Barrier(len(actions) + 1)
    measured_from = [float("inf")]
    latencies: list[list[float]] = [[] for _ in actions]
    errors: list[str] = []

    def loop(i: int) -> None:
        start.wait()
        while not stop.is_set():
            began = time.perf_counter()
            try:
                actions[i]()
            except Exception as error:  # reported, and the run refused, below
                errors.append(f"{type(error).__name__}: {error}")
                stop.set()
                return
            if began >= measured_from[0]:
                latencies[i].append(time.perf_counter() - began)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    measured_from[0] = time.perf_counter() + warmup
    start.wait()
    time.sleep(warmup)
    meter = Meter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{label}: {len(errors)} failed, first: {errors[0]}")
    return Run(label, [x for each in latencies for x in each], meter.stop())


def for_count(label: str, actions: Sequence[Callable[[], None]], count: int) -> Run:
    """`count` calls shared by the actions' threads, every one measured."""
    latencies: list[float] = []
    lock = threading.Lock()
    left = [count]

    def loop(action: Callable[[], None]) -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            began = time.perf_counter()
            action()
            with lock:
                latencies.append(time.perf_counter() - began)

    meter = Meter()
    threads = [threading.Thread(target=loop, args=(a,), daemon=True) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(latencies) != count:
        raise SystemExit(f"{label}: {count - len(latencies)} requests failed")
    return Run(label, latencies, meter.stop())


# -- the database and the tenants -----------------------------------------------------------------


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A migrated, empty database of its own (dropped or removed afterwards)."""
    if backend == "postgres":
        with throwaway_database(admin_url()) as url:
            migrate_postgres(url)
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="ledger-bench-http-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'ledger.db'}"
        migrate.upgrade(url)
        yield url


def bearer(tenant: UUID, role: str) -> dict[str, str]:
    claims = {
        "sub": "bench",
        "tenant_id": str(tenant),
        "roles": [role],
        "exp": datetime.now(UTC) + timedelta(hours=2),
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def new_tenant(ledger: Ledger, prefix: str) -> LedgerApplication:
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    app = ledger.app(tenant_id_for(slug))
    app.create_tenant(slug, None, "UTC", EventMetadata())
    return app


def command_tenant(ledger: Ledger, prefix: str) -> UUID:
    """A tenant with a warehouse, a bin, and a SKU per client (FIFO, not lot tracked)."""
    app = new_tenant(ledger, prefix)
    meta = EventMetadata()
    app.register_warehouse(WAREHOUSE, "Bench", "UTC", meta)
    app.add_bin(WAREHOUSE, BIN, meta)
    for sku in skus():
        app.register_product(sku, f"Bench {sku}", meta)
    return app.tenant_id


def skus() -> list[str]:
    return [f"SKU-{i:02d}" for i in range(CLIENTS)]


# -- the commands ---------------------------------------------------------------------------------


class HttpWriter:
    """One client: receives 1 unit of its SKU, then issues it, each with an idempotency key."""

    def __init__(self, base: str, tenant: UUID, sku: str) -> None:
        self.client = httpx.Client(base_url=base, headers=bearer(tenant, "warehouse_operator"))
        self.sku, self.number = sku, 0
        self.receipt = {"sku": sku, "warehouse": WAREHOUSE, "bin": BIN, "quantity": 1}
        self.receipt["unit_cost"] = UNIT_COST
        self.issue = {"sku": sku, "warehouse": WAREHOUSE, "quantity": 1, "reason": "sale"}

    def __call__(self) -> None:
        self.number += 1
        path, body = (
            ("/v1/stock/receipts", self.receipt)
            if self.number % 2
            else ("/v1/stock/issues", self.issue)
        )
        key = f"{self.sku}-{self.number:09d}"
        response = self.client.post(path, json=body, headers={"Idempotency-Key": key})
        if response.status_code != 201:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")

    def close(self) -> None:
        self.client.close()


class DirectWriter:
    """The same commands on the application service, as a request handler calls it."""

    def __init__(self, app: LedgerApplication, sku: str) -> None:
        self.app, self.sku, self.number = app, sku, 0

    def __call__(self) -> None:
        self.number += 1
        meta = EventMetadata(idempotency_key=f"{self.sku}-{self.number:09d}")
        if self.number % 2:
            self.app.receive(self.sku, WAREHOUSE, BIN, 1, UNIT_COST, meta)
        else:
            self.app.issue(self.sku, WAREHOUSE, 1, "sale", meta)


def over_http(url: str, ledger: Ledger, projections: str, args: argparse.Namespace) -> Run:
    tenant = command_tenant(ledger, f"bench-http-{projections}")
    env = SERVER_ENV | {"LEDGER_PROJECTIONS": projections}
    with served(url, env) as base, ExitStack() as stack:
        writers = [HttpWriter(base, tenant, sku) for sku in skus()]
        for writer in writers:
            stack.callback(writer.close)
        label = f"HTTP, {CLIENTS} clients, projections {projections}"
        return for_seconds(label, writers, args.seconds, args.warmup)


def direct(ledger: Ledger, args: argparse.Namespace) -> Run:
    app = ledger.app(command_tenant(ledger, "bench-direct"))
    writers = [DirectWriter(app, sku) for sku in skus()]
    return for_seconds(f"direct, {CLIENTS} threads", writers, args.seconds, args.warmup)


def commands(url: str, args: argparse.Namespace) -> None:
    settings = Settings(database_url=url, db_pool_size=CLIENTS, db_max_overflow=8)
    with Ledger.from_settings(settings) as ledger:
        runs = [over_http(url, ledger, p, args) for p in ("off", "on")]
        baseline = direct(ledger, args)
    print(f"\ncommands: receipt / issue of 1 unit, alternately ({args.backend})")
    for run in [*runs, baseline]:
        print(run.line())
    for run in runs:
        print(f"  {run.label} / direct: {run.rate / baseline.rate:.2f}")


# -- the reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadTenant:
    tenant: UUID
    skus: list[str]
    warehouses: list[str]


def seed_levels(ledger: Ledger, rows: int) -> ReadTenant:
    """`rows` stock-level rows: every SKU received once in every warehouse (bulk seeder)."""
    app = new_tenant(ledger, "bench-read")
    count = min(READ_WAREHOUSES, rows)
    warehouses = [f"W-{w:03d}" for w in range(count)]
    products = [f"P-{s:05d}" for s in range(-(-rows // count))]
    meta = EventMetadata()
    with bulk_application(app) as bulk:
        for code in warehouses:
            bulk.register_warehouse(code, f"Warehouse {code}", "UTC", meta)
            bulk.add_bin(code, BIN, meta)
        for sku in products:
            bulk.register_product(sku, f"Product {sku}", meta)
        for i in range(rows):
            sku, code = products[i // count], warehouses[i % count]
            bulk.receive(sku, code, BIN, 5, UNIT_COST, meta)
    return ReadTenant(app.tenant_id, products, warehouses)


def project(ledger: Ledger, engine: Engine) -> None:
    """Stock levels, lots and the catalog (what the stock-levels query reads), from position 0."""
    with Rebuild(ledger.store, engine, [StockLevels(), Lots(), Catalog()], batch_size=BATCH) as job:
        job.run()
    # Fresh tables have no statistics yet; a live database would have had them analysed.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


class Reader:
    """One client reading stock levels: one random row, or the first page."""

    def __init__(self, base: str, seeded: ReadTenant, single: bool, seed: int) -> None:
        self.client = httpx.Client(base_url=base, headers=bearer(seeded.tenant, "auditor"))
        self.seeded, self.single = seeded, single
        self.pick = random.Random(seed)

    def __call__(self) -> None:
        seeded, pick = self.seeded, self.pick
        params = (
            {"sku": pick.choice(seeded.skus), "warehouse": pick.choice(seeded.warehouses)}
            if self.single
            else {"limit": str(PAGE)}
        )
        response = self.client.get("/v1/stock-levels", params=params)
        items = response.json()["items"] if response.status_code == 200 else None
        if items is None or len(items) != (1 if self.single else PAGE):
            raise RuntimeError(f"{response.status_code} {response.text[:300]}")

    def close(self) -> None:
        self.client.close()


def in_process(engine: Engine, seeded: ReadTenant, single: bool, count: int) -> Run:
    """The same query function the route calls, on one connection of this process."""
    pick = random.Random(0)
    with engine.connect() as conn:

        def read() -> None:
            if single:
                sku, code = pick.choice(seeded.skus), pick.choice(seeded.warehouses)
                found = stock_levels(conn, seeded.tenant, sku=sku, warehouse=code, limit=2)
            else:
                found = stock_levels(conn, seeded.tenant, limit=PAGE + 1)
            conn.rollback()
            if len(found) != (1 if single else PAGE + 1):
                raise RuntimeError(f"{len(found)} rows")

        return for_count("in process, 1 thread", [read], count)


def read_cases(base: str, engine: Engine, seeded: ReadTenant, count: int) -> None:
    for single, what in ((True, "one row by sku and warehouse"), (False, f"limit={PAGE}")):
        print(f"  GET /v1/stock-levels, {what}:")
        with ExitStack() as stack:
            readers = [Reader(base, seeded, single, i) for i in range(CLIENTS)]
            for each in readers:
                stack.callback(each.close)
            one = for_count("HTTP, 1 client", readers[:1], count)
            loaded = for_count(f"HTTP, {CLIENTS} clients", readers, count)
        baseline = in_process(engine, seeded, single, count)
        for run in (one, loaded, baseline):
            print("  " + run.line())
        ratio = one.percentile(0.5) / baseline.percentile(0.5)
        print(f"    p50 HTTP, 1 client / in process: {ratio:.1f}")


def reads(url: str, args: argparse.Namespace) -> None:
    settings = Settings(database_url=url)
    engine = read_engine(settings)
    with Ledger.from_settings(settings) as ledger:
        began = time.perf_counter()
        seeded = seed_levels(ledger, args.rows)
        seeded_in = time.perf_counter() - began
        project(ledger, engine)
        projected_in = time.perf_counter() - began - seeded_in
        events = ledger.store.head(seeded.tenant).position
    print(
        f"\nreads: {args.rows:,} stock-level rows ({len(seeded.skus):,} SKUs x"
        f" {len(seeded.warehouses)} warehouses, {events:,} events): seeded in {seeded_in:.0f} s,"
        f" projected in {projected_in:.0f} s"
    )
    try:
        with served(url, SERVER_ENV | {"LEDGER_PROJECTIONS": "off"}) as base:
            read_cases(base, engine, seeded, args.reads)
    finally:
        engine.dispose()


# -- the run --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per command path")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured, before each window")
    parser.add_argument("--rows", type=int, default=100_000, help="stock-level rows to read")
    parser.add_argument("--reads", type=int, default=1_000, help="requests per read run")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.rows, args.reads = 1.0, 0.5, 500, 100
    if min(args.seconds, args.rows, args.reads) <= 0 or args.warmup < 0:
        parser.error("--seconds, --rows and --reads must be positive, --warmup not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    with database(args.backend) as url:
        commands(url, args)
        reads(url, args)
    print(f"\nwhole run {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
