"""Export benchmark: `ledger audit export` events per second against a raw psycopg baseline.

On a throwaway PostgreSQL database, one tenant of ``--events`` events (default 200,000): the
first 1,000 from ``ledger.demo.seed`` (a wholesaler's catalogue, orders and stock movements), the
rest copies of those events (same topics and serialised states, new stream ids) appended through
the store's own recorder, 200 per save, so every row has a real header, payload and chained hash.

Then ``VACUUM (ANALYZE)``, one unmeasured round (warm caches), and ``--rounds`` rounds in which
each case in turn writes the whole tenant as NDJSON to a temporary file:

* ``export`` - what `ledger audit export --output FILE` runs: ``audit.export_events`` into
               ``audit.output_to`` (temporary name, fsync, rename) with its progress display, on
               a ``PostgresLedgerStore`` (pages of 5,000, the next read while one is written).
* ``raw``    - the leanest psycopg writing the SAME bytes: one connection, the same SELECT
               (``eventstore.queries.chain_query``, prepared, binary) in the same pages, the same
               fields per line (orjson, binascii), a 1 MiB buffered file, fsync. It must produce a
               byte-identical file (checked), so the ratio export/raw is the export's overhead.
* ``copy``   - ``COPY (SELECT position, payload, hash ...) TO STDOUT (FORMAT binary)`` into a
               file: what reading the rows alone costs, no NDJSON (for scale, not compared).

Reported per case: best and median events/s over the rounds and this process's CPU per event.
The ratio and the goal use the best round (the machine may be shared; the medians are printed).
With ``--profile``: a cProfile of one export.

Run from the project root: ``python -m bench.export [--events 200000]``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import statistics
import sys
import tempfile
import time
from binascii import b2a_base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid5

import orjson
import psycopg
from eventsourcing.persistence import StoredEvent

from bench.append import sample_busy
from bench.common import DEFAULT_PARTITIONS, admin_url, dbname, migrate_postgres
from bench.common import throwaway_database as fresh_database
from domain.ids import tenant_id_for
from domain.metadata import Actor, EventMetadata
from eventstore.postgres import PostgresLedgerStore
from eventstore.queries import EVENTS, chain_query
from eventstore.store import LedgerStore
from ledger import audit, demo
from ledger.wiring import Ledger

DEFAULT_EVENTS = 200_000
DEMO_EVENTS = 1_000
EVENTS_PER_SAVE = 200
GOAL_EVENTS_PER_SECOND = 100_000
SLUG = "bench-export"
META = EventMetadata(actor=Actor(kind="system", id="bench.export"))


@dataclass(frozen=True)
class Run:
    """One case's round: events, wall and this process's CPU seconds, the file's size and digest."""

    events: int
    seconds: float
    cpu: float
    size: int
    digest: str

    @property
    def rate(self) -> float:
        return self.events / self.seconds


Case = Callable[[Path], int]


def seed(store: LedgerStore, events: int) -> UUID:
    """A tenant of at least `events` events: a demo seed, then copies of its events."""
    tenant = tenant_id_for(SLUG)
    app = Ledger(store, snapshot_interval=0).app(tenant)
    app.create_tenant(SLUG, "Export bench", demo.TIMEZONE, META)
    demo.seed(app, events=min(events, DEMO_EVENTS), meta=META)
    originals = list(store.iter_events(tenant))
    recorder, copy = store.application_recorder(tenant), 0
    while store.head(tenant).position < events:
        copy += 1
        batch = [
            StoredEvent(uuid5(e.stream_id, str(copy)), e.version, e.topic, e.state)
            for e in originals
        ]
        for start in range(0, len(batch), EVENTS_PER_SAVE):
            recorder.insert_events(batch[start : start + EVENTS_PER_SAVE], meta=META)
    return tenant


def export_case(store: LedgerStore, tenant: UUID) -> Case:
    """What `ledger audit export --tenant SLUG --output FILE` runs once the tenant is found."""

    def run(path: Path) -> int:
        progress = audit.ExportProgress(total=store.head(tenant).position)
        with (
            audit.output_to(path, sys.stdout.buffer) as out,
            audit.progress_display(progress.total, sys.stderr) as show,
        ):
            audit.export_events(store, tenant, out, progress, on_page=show)
        return progress.events

    return run


def raw_case(url: str, tenant: UUID, head: int) -> Case:
    def run(path: Path) -> int:
        count, previous, size = 0, bytes(32).hex(), audit.EXPORT_PAGE_SIZE
        with (
            psycopg.connect(url, autocommit=True) as conn,
            conn.cursor(binary=True) as cursor,
            open(path, "wb", buffering=audit.WRITE_BUFFER) as out,
        ):
            for after in range(0, head, size):
                params = (tenant, after, min(after + size, head))
                rows = cursor.execute(chain_query("%s"), params, prepare=True).fetchall()
                for position, payload, digest in rows:
                    current = digest.hex()
                    out.write(raw_line(position, payload, previous, current))
                    previous = current
                count += len(rows)
            out.flush()
            os.fsync(out.fileno())
        return count

    return run


def raw_line(position: int, payload: bytes, previous: str, current: str) -> bytes:
    """The line's metadata by orjson, the base64 payload and hashes joined in as bytes."""
    header = orjson.loads(payload[: payload.index(b"\n")])
    metadata = orjson.dumps(
        {
            "position": position,
            "stream_id": header.get("stream_id"),
            "version": header.get("version"),
            "topic": header.get("topic"),
            "recorded_at": header.get("recorded_at"),
            "effective_at": header.get("effective_at"),
            "actor": header.get("actor"),
            "request_id": header.get("request_id"),
            "idempotency_key": header.get("idempotency_key"),
            "causation_id": header.get("causation_id"),
        }
    )
    return b"".join(
        (
            metadata[:-1],
            b',"payload":"',
            b2a_base64(payload, newline=False),
            b'","prev_hash":"',
            previous.encode(),
            b'","hash":"',
            current.encode(),
            b'"}\n',
        )
    )


def copy_case(url: str, tenant: UUID, head: int) -> Case:
    statement = (
        f"COPY (SELECT position, payload, hash FROM {EVENTS} WHERE tenant_id = '{tenant}'"
        " ORDER BY position) TO STDOUT (FORMAT binary)"
    )

    def run(path: Path) -> int:
        with (
            psycopg.connect(url, autocommit=True) as conn,
            conn.cursor() as cursor,
            cursor.copy(statement) as copy,
            open(path, "wb", buffering=audit.WRITE_BUFFER) as out,
        ):
            for block in copy:
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        return head  # binary COPY is not parsed: its rows are not counted

    return run


def timed(case: Case, directory: Path) -> Run:
    path = directory / "out.ndjson"
    path.unlink(missing_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    events = case(path)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    with path.open("rb") as written:
        digest = hashlib.file_digest(written, "sha256").hexdigest()
    return Run(events, seconds, cpu, path.stat().st_size, digest)


def measure(
    cases: dict[str, Case], directory: Path, rounds: int, head: int
) -> dict[str, list[Run]]:
    """Every case once unmeasured (warm caches), then `rounds` rounds, the cases in turn."""
    runs: dict[str, list[Run]] = {name: [] for name in cases}
    for number in range(rounds + 1):
        for name, case in cases.items():
            run = timed(case, directory)
            if run.events != head:
                raise SystemExit(f"{name} wrote {run.events} events, not {head}")
            if number == 0:
                continue
            runs[name].append(run)
            print(f"  round {number} {name:<6} {run.rate:>9,.0f} events/s  {run.seconds:6.2f} s")
    return runs


def vacuum(url: str) -> None:
    """Sets the fresh rows' hint bits and statistics, as autovacuum would in time (otherwise
    the first reads of the rows write them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {EVENTS}")


def report(runs: dict[str, list[Run]], head: int) -> bool:
    size = runs["export"][0].size
    print(f"\n{head:,} events, NDJSON {size / 1e6:,.0f} MB ({size / head:,.0f} bytes a line)")
    print(f"  {'case':<7} {'best events/s':>14} {'median':>10} {'client CPU us/event':>20}")
    for name, case_runs in runs.items():
        best = max(run.rate for run in case_runs)
        median = statistics.median(run.rate for run in case_runs)
        cpu = min(run.cpu for run in case_runs) / head * 1e6
        print(f"  {name:<7} {best:>14,.0f} {median:>10,.0f} {cpu:>20.2f}")
    export = max(run.rate for run in runs["export"])
    raw = max(run.rate for run in runs["raw"])
    same = {run.digest for run in runs["export"] + runs["raw"]}
    print(f"export / raw (best rounds): {export / raw:.2f}")
    print(f"export and raw files identical: {'yes' if len(same) == 1 else 'NO'}")
    met = export >= GOAL_EVENTS_PER_SECOND
    print(f"export >= {GOAL_EVENTS_PER_SECOND:,} events/s: {'MET' if met else 'NOT MET'}")
    return len(same) == 1


def profile(case: Case, directory: Path) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(case, directory / "profiled.ndjson")
    print("\ncProfile of one export (times inflated by the profiler):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(12)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="tenant size")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    parser.add_argument("--profile", action="store_true", help="then cProfile one export")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    busy = sample_busy(1.0)
    if busy is not None:
        print(f"machine CPU busy before the benchmark (1 s idle check): {100 * busy:.0f}%")
    with fresh_database(admin_url()) as url:
        migrate_postgres(url, args.partitions)
        with PostgresLedgerStore(url, pool_size=2) as store:
            started = time.perf_counter()
            tenant = seed(store, args.events)
            head = store.head(tenant).position
            vacuum(url)
            seconds = time.perf_counter() - started
            print(f"database {dbname(url)}: {head:,} events seeded in {seconds:.0f} s", flush=True)
            cases = {
                "export": export_case(store, tenant),
                "raw": raw_case(url, tenant, head),
                "copy": copy_case(url, tenant, head),
            }
            with tempfile.TemporaryDirectory(prefix="ledger_bench_export_") as directory:
                identical = report(measure(cases, Path(directory), args.rounds, head), head)
                if args.profile:
                    profile(cases["export"], Path(directory))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
