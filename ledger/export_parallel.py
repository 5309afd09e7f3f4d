"""A large export into a file, made by worker processes that read and format their own pages.

Making the lines costs more than reading the rows, and one process does it on one core. Here
each worker (`python -m ledger.export_parallel`, one per core) opens the store itself, reads
every Nth page with the row before it (for the first line's previous hash), makes its lines and
reports their length; the coordinator gives each page, in position order, the offset where the
pages before it end, and the worker writes it there. The file's bytes are exactly those of a
sequential export. Protocol: one JSON line with the job on the worker's stdin, then per page a
report line on its stdout and an order line (`{"offset": N}` or `{"stop": true}`) on its stdin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO, Any
from uuid import UUID

import orjson

from eventstore.envelope import ZERO_HASH
from eventstore.postgres import PostgresLedgerStore
from eventstore.records import ChainRow
from eventstore.sqlite import SQLiteLedgerStore
from eventstore.store import LedgerStore
from ledger.export_lines import page_lines, recorded_by


class ExportFailed(Exception):
    """A worker process of a parallel export failed; its message says why."""


def export_in_parallel(
    address: tuple[str, str],
    tenant_id: UUID,
    path: str,
    total: int,
    *,
    until: datetime | None,
    page_size: int,
    workers: int,
    on_page: Callable[[int, tuple[int, bytes] | None, int | None], None],
) -> None:
    """Writes positions 1..`total` of the tenant into the file at `path` (from its start).

    `on_page(events, (last_position, last_hash) or None, cut_at)` is called for each page in
    order once its place in the file is given; after a page with a cut, nothing more is written.
    """
    ranges = [(after, min(after + page_size, total)) for after in range(0, total, page_size)]
    workers = max(1, min(workers, len(ranges)))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ledger.export_parallel"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    try:
        for number, process in enumerate(processes):
            job = {
                "store": list(address),
                "tenant": str(tenant_id),
                "path": path,
                "until": None if until is None else until.isoformat(),
                "pages": ranges[number::workers],
            }
            _send(process, job)
        offset = 0
        for index in range(len(ranges)):
            process = processes[index % workers]
            report = _receive(process)
            _send(process, {"offset": offset})
            offset += report["length"]
            last = report["last"]
            if last is not None or report["cut_at"] is not None:
                row = None if last is None else (int(last[0]), bytes.fromhex(last[1]))
                on_page(report["events"], row, report["cut_at"])
            if report["cut_at"] is not None:
                break
        for process in processes:
            _finish(process)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(orjson.dumps(message) + b"\n")
        process.stdin.flush()
    except BrokenPipeError:
        raise ExportFailed(_failure(process)) from None


def _receive(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise ExportFailed(_failure(process))
    report: dict[str, Any] = orjson.loads(line)
    return report


def _finish(process: subprocess.Popen[bytes]) -> None:
    """Tells a worker to stop (it may be done already) and waits for its last write."""
    assert process.stdin is not None
    try:
        process.stdin.write(b'{"stop":true}\n')
        process.stdin.close()
    except BrokenPipeError:
        pass
    if process.wait() != 0:
        raise ExportFailed(_failure(process))


def _failure(process: subprocess.Popen[bytes]) -> str:
    process.wait()
    assert process.stderr is not None
    lines = process.stderr.read().decode(errors="replace").strip().splitlines()
    return f"an export worker failed (exit {process.returncode}): " + (
        lines[-1] if lines else "no message"
    )


# --- the worker ----------------------------------------------------------------------------------


def _open(address: Sequence[str]) -> LedgerStore:
    kind, where = address
    if kind == "sqlite":
        return SQLiteLedgerStore(where, pool_size=1)
    return PostgresLedgerStore(where, pool_size=1, max_overflow=0)


def _page(
    store: LedgerStore, tenant_id: UUID, after: int, last: int
) -> tuple[list[ChainRow], int, bytes]:
    """The rows of positions after+1..last, and the position and hash the first line follows
    (as a sequential export has them: the row at `after`, or none if it is missing)."""
    if after == 0:
        return store.read_chain(tenant_id, after=0, limit=last), 0, ZERO_HASH
    rows = store.read_chain(tenant_id, after=after - 1, limit=last - after + 1)
    if rows and rows[0][0] == after:
        return rows[1:], after, rows[0][2]
    return rows, -1, ZERO_HASH


def work(jobs: IO[bytes], reports: IO[bytes]) -> None:
    """Runs a worker's job: its pages, each reported, then written where it is told."""
    job = orjson.loads(jobs.readline())
    store = _open(job["store"])
    tenant_id = UUID(job["tenant"])
    until = None if job["until"] is None else datetime.fromisoformat(job["until"])
    out = os.open(job["path"], os.O_WRONLY)
    try:
        for after, last in job["pages"]:
            rows, previous_position, previous_hash = _page(store, tenant_id, after, last)
            kept = rows if until is None else recorded_by(rows, until)
            lines = page_lines(kept, previous_position, previous_hash) if kept else b""
            report = {
                "length": len(lines),
                "events": len(kept),
                "last": [kept[-1][0], kept[-1][2].hex()] if kept else None,
                "cut_at": rows[len(kept)][0] if len(kept) < len(rows) else None,
            }
            reports.write(orjson.dumps(report) + b"\n")
            reports.flush()
            order = orjson.loads(jobs.readline() or b'{"stop":true}')
            if order.get("stop"):
                return
            view, offset = memoryview(lines), int(order["offset"])
            while view:
                written = os.pwrite(out, view, offset)
                view, offset = view[written:], offset + written
    finally:
        os.close(out)
        store.close()


if __name__ == "__main__":
    work(sys.stdin.buffer, sys.stdout.buffer)
