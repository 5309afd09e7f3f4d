"""What the benchmarks share: the throwaway PostgreSQL database, its migration, the admin URL,
and a meter of a phase's CPU.

Nothing here connects at import time.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ledger.migrate import upgrade

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PARTITIONS = 16

#: The environment variable naming the admin connection (a postgresql:// URL).
ADMIN_URL_VARIABLE = "LEDGER_BENCH_DATABASE_URL"


def admin_url() -> str:
    """The admin connection: $LEDGER_BENCH_DATABASE_URL, else the local server as postgres."""
    return os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL)


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"{ADMIN_URL_VARIABLE} must be a postgresql:// URL, not {url!r}")
    return urlunsplit(parts._replace(scheme="postgresql", path="/" + dbname))


def dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


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


def migrate_postgres(url: str, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Brings the (postgresql://) database to the newest schema with `partitions` partitions."""
    upgrade("postgresql+psycopg://" + url.split("://", 1)[1], partitions)


@dataclass(frozen=True)
class Usage:
    """CPU used during a phase: this process, the PostgreSQL server (every database's backends
    and its own processes, when it runs on this machine), and every core of the machine."""

    seconds: float
    own: float
    server: float | None
    busy: float | None

    @property
    def own_cores(self) -> float:
        return self.own / self.seconds

    @property
    def server_cores(self) -> float | None:
        return None if self.server is None else self.server / self.seconds

    @property
    def other_cores(self) -> float | None:
        """Cores busy with neither this process nor the server (other work on the machine)."""
        if self.busy is None:
            return None
        return max(0.0, self.busy - self.own - (self.server or 0.0)) / self.seconds

    def describe(self) -> str:
        def cores(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        return (
            f"this process {cores(self.own_cores)} cores, server {cores(self.server_cores)},"
            f" other load {cores(self.other_cores)} (of {os.cpu_count()})"
        )


class Meter:
    """Measures a phase's wall time and CPU (see `Usage`); Linux /proc, else only wall and own."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.busy = _machine_busy()
        self.server = _server_cpu()

    def stop(self) -> Usage:
        busy, server, before = _machine_busy(), _server_cpu(), self.server
        return Usage(
            time.perf_counter() - self.wall,
            time.process_time() - self.own,
            None
            if server is None or before is None
            else sum(cpu - before.get(pid, 0.0) for pid, cpu in server.items()),
            None if busy is None or self.busy is None else busy - self.busy,
        )


def _machine_busy() -> float | None:
    """Busy (and stolen) CPU seconds of all cores since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    values += [0] * (8 - len(values))
    user, nice, system, _, _, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _server_cpu() -> dict[int, float] | None:
    """CPU seconds of each process of the local PostgreSQL server (those named postgres), with
    those of its children that ended."""
    found: dict[int, float] = {}
    try:
        pids = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue  # gone meanwhile
        if text[text.index("(") + 1 : text.rindex(")")] != "postgres":
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # Its own time and its exited children's (the postmaster's backends that ended).
        found[int(pid)] = sum(int(f) for f in fields[11:15]) / _TICKS
    return found or None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
