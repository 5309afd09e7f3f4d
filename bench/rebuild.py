"""Rebuild benchmark: stock levels, lots and movements rebuilt from position 0 against a raw
psycopg baseline, and the audit export, on a demo tenant of ``--events`` events.

On a throwaway PostgreSQL database: ``ledger demo seed --events N`` (its bulk path; with
``--tenants K``, K tenants of N/K events seeded by K processes at once), ``VACUUM (ANALYZE)``,
then in one run:

* rebuild - ``projections.rebuild.Rebuild`` of ``StockLevels``, ``Lots`` and ``Movements``
            together, every tenant, ``--batch`` positions per batch, new tables built from
            position 0 and switched in;
* raw     - psycopg alone reading the same events, folding them into the same final rows and
            writing those with COPY into scratch tables (``bench.rebuild_raw``); the run checks
            that its rows equal the rebuilt ones;
* export  - ``ledger audit export`` of the first tenant into a file (``bench.export``), best of
            ``--rounds``.

Reported: events/s of each, rebuild / raw, the goals, and the CPU of this process, the server
and other load during each phase. Run from the project root: ``python -m bench.rebuild``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import psycopg
from sqlalchemy import create_engine, pool

from bench import rebuild_raw
from bench.common import (
    DEFAULT_PARTITIONS,
    Meter,
    Usage,
    admin_url,
    dbname,
    migrate_postgres,
    throwaway_database,
)
from bench.export import export_case, timed
from domain.ids import tenant_id_for
from eventstore.postgres import PostgresLedgerStore
from eventstore.queries import EVENTS
from eventstore.store import LedgerStore
from projections.lots import Lots
from projections.movements import Movements
from projections.rebuild import Rebuild, RebuildProgress
from projections.stock_levels import StockLevels

DEFAULT_EVENTS = 1_000_000
DEFAULT_BATCH = 50_000
GOAL_REBUILD = 25_000
GOAL_RATIO = 0.3
GOAL_EXPORT = 100_000
SLUG = "bench-rebuild"
LEDGER = (sys.executable, "-m", "ledger.cli")


@dataclass(frozen=True)
class Phase:
    """A measured phase: the events it covered and the CPU it took."""

    name: str
    events: int
    usage: Usage

    @property
    def rate(self) -> float:
        return self.events / self.usage.seconds

    def line(self) -> str:
        return (
            f"  {self.name:<8} {self.events:>10,} events {self.usage.seconds:>8.1f} s"
            f" {self.rate:>10,.0f} events/s   {self.usage.describe()}"
        )


def seed(url: str, events: int, tenants: int) -> list[UUID]:
    """K tenants of events/K events each, by `ledger demo seed` processes running at once."""
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    slugs = [SLUG if tenants == 1 else f"{SLUG}-{k + 1}" for k in range(tenants)]
    each = -(-events // tenants)
    meter = Meter()
    running = [
        subprocess.Popen(
            [
                *LEDGER,
                "demo",
                "seed",
                "--tenant",
                slug,
                "--events",
                str(each),
                "--seed",
                str(7 + k),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k, slug in enumerate(slugs)
    ]
    for slug, process in zip(slugs, running, strict=True):
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"ledger demo seed --tenant {slug} failed:\n{out}")
        appended = re.search(r"^appended .*$", out, re.MULTILINE)
        verified = "ok: the hash chain matches" in out
        print(f"  {slug}: {appended.group(0) if appended else '?'}; chain verified: {verified}")
    usage = meter.stop()
    print(
        f"  seeding and verifying took {usage.seconds:.0f} s in all (server"
        f" {usage.server_cores or 0:.2f} cores; the seeding processes and other load"
        f" {usage.other_cores or 0:.2f})",
        flush=True,
    )
    return [tenant_id_for(slug) for slug in slugs]


def vacuum(url: str) -> None:
    """Hint bits and statistics of the fresh rows, as autovacuum would set them in time."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {EVENTS}")


def rebuild(url: str, store: LedgerStore, batch: int) -> tuple[Phase, float]:
    """Every tenant's stock levels, lots and movements rebuilt; and the switch's seconds."""
    engine = create_engine(
        "postgresql+psycopg://" + url.split("://", 1)[1], poolclass=pool.NullPool
    )
    marks: dict[str, float] = {}
    shown = [0]

    def show(progress: RebuildProgress) -> None:
        tenth = 10 * progress.done // max(progress.total, 1)
        if progress.switched:
            marks["switched"] = progress.seconds
        elif progress.done >= progress.total:
            marks["built"] = progress.seconds
        if tenth > shown[0] and not progress.switched:
            shown[0] = tenth
            print(
                f"    {progress.done:,} of {progress.total:,} ({progress.rate:,.0f}/s)", flush=True
            )

    meter = Meter()
    with Rebuild(store, engine, [StockLevels(), Lots(), Movements()], batch_size=batch) as job:
        progress = job.run(on_progress=show)
    usage = meter.stop()
    engine.dispose()
    switch = marks.get("switched", 0.0) - marks.get("built", marks.get("switched", 0.0))
    return Phase("rebuild", progress.total, usage), switch


def raw(url: str, batch: int) -> Phase:
    rebuild_raw.prepare(url)
    meter = Meter()
    events = rebuild_raw.run(url, batch)
    return Phase("raw", events, meter.stop())


def export(store: LedgerStore, tenant: UUID, rounds: int) -> Phase:
    """The best of `rounds` exports of the tenant (each written to a file, then deleted)."""
    best: Phase | None = None
    with tempfile.TemporaryDirectory(prefix="ledger_bench_rebuild_") as directory:
        for _ in range(rounds):
            meter = Meter()
            run = timed(export_case(store, tenant), Path(directory))
            phase = Phase("export", run.events, meter.stop())
            if best is None or phase.rate > best.rate:
                best = phase
    assert best is not None
    return best


def verdict(value: float, goal: float) -> str:
    return "MET" if value >= goal else "NOT MET"


def report(
    phases: dict[str, Phase], switch: float, differences: dict[str, tuple[int, int]]
) -> None:
    print("\nResults (CPU in cores: this process, the PostgreSQL server, other load):")
    for phase in phases.values():
        print(phase.line())
    rebuilt, baseline, exported = phases["rebuild"], phases["raw"], phases["export"]
    print(f"  the rebuild's switch (last events, new rows into the live tables): {switch:.1f} s")
    same = all(counts == (0, 0) for counts in differences.values())
    print(
        "  raw rows equal the rebuilt rows: "
        + ("yes" if same else f"NO (only raw, only rebuilt: {differences})")
    )
    ratio = rebuilt.rate / baseline.rate
    print(f"\n  rebuild / raw: {ratio:.2f}")
    print(f"  rebuild >= {GOAL_REBUILD:,} events/s: {verdict(rebuilt.rate, GOAL_REBUILD)}")
    print(f"  rebuild / raw >= {GOAL_RATIO}: {verdict(ratio, GOAL_RATIO)}")
    print(f"  export >= {GOAL_EXPORT:,} events/s: {verdict(exported.rate, GOAL_EXPORT)}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events to seed")
    parser.add_argument("--tenants", type=int, default=1, help="tenants seeded at once")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rebuild batch size")
    parser.add_argument("--rounds", type=int, default=2, help="export rounds (the best counts)")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    args = parser.parse_args(argv)
    if min(args.events, args.tenants, args.batch, args.rounds) < 1:
        parser.error("--events, --tenants, --batch and --rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    idle = Meter()
    time.sleep(1.0)
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    print(f"machine before the run: load average {load}; {idle.stop().describe()}")
    with throwaway_database(admin_url()) as url:
        migrate_postgres(url, args.partitions)
        print(f"database {dbname(url)}: seeding {args.events:,} events...", flush=True)
        tenants = seed(url, args.events, args.tenants)
        vacuum(url)
        with PostgresLedgerStore(url, pool_size=2) as store:
            print(f"rebuilding ({args.batch:,} positions a batch)...", flush=True)
            rebuilt, switch = rebuild(url, store, args.batch)
            print("raw baseline...", flush=True)
            baseline = raw(url, args.batch)
            differences = rebuild_raw.differences(url)
            print("export...", flush=True)
            exported = export(store, tenants[0], args.rounds)
        report({"rebuild": rebuilt, "raw": baseline, "export": exported}, switch, differences)
    return 0


if __name__ == "__main__":
    sys.exit(main())
