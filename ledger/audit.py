"""The audit feed: a tenant's events as NDJSON with their metadata and hashes, and checkpoints.

One line per event, in position order, from position 1: the metadata of the stored payload's
JSON header, the exact stored payload (base64) and the hashes, so anyone can recompute the chain
(hash(n) = sha256(hash(n-1) || payload(n)), hash(0) = 32 zero bytes) without the database.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib.util import find_spec
from itertools import takewhile
from pathlib import Path
from time import monotonic
from typing import IO
from uuid import UUID

from eventstore.envelope import ZERO_HASH
from eventstore.records import ChainRow, Verification
from eventstore.store import LedgerStore
from eventstore.verify import verify_chain
from ledger.export_lines import page_lines, recorded_by
from ledger.export_parallel import export_in_parallel

#: Events per read: big pages keep the per-query cost small; a page is a few megabytes.
EXPORT_PAGE_SIZE = 5000
#: From this many events an export into a file is made by worker processes.
PARALLEL_FROM = 100_000
#: At most this many worker processes.
MAX_WORKERS = 4
#: Bytes buffered before a write to the output file or pipe.
WRITE_BUFFER = 1 << 20
#: Seconds between progress lines when stderr is not a terminal.
PROGRESS_EVERY_SECONDS = 10.0

_CHECKPOINT = re.compile(r"([1-9][0-9]*):([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class Checkpoint:
    """A position of a tenant's chain and the hash at it, kept outside the database."""

    position: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.position}:{self.hash.hex()}"


def parse_checkpoint(text: str) -> Checkpoint:
    """`POSITION:HEX` as `ledger audit checkpoint` prints it; ValueError if malformed."""
    match = _CHECKPOINT.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"--checkpoint {text!r} is not POSITION:HEX (a position >= 1, a colon, 64 hex digits)"
        )
    return Checkpoint(int(match[1]), bytes.fromhex(match[2]))


def parse_until(text: str) -> datetime:
    """The last moment an exported event may have been recorded at; ValueError if unclear."""
    return parse_time(text, "--until")


def parse_time(text: str, option: str) -> datetime:
    """The moment a time option names, in UTC; ValueError (naming the option) if unclear.

    A time must carry its UTC offset (`2024-05-01T12:00:00+02:00`, `...Z`); a date alone
    (`2024-05-01`) means the whole of that day in UTC, to its last microsecond.
    """
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError as error:
            raise ValueError(f"{option} {text!r}: {error}") from None
        return datetime.combine(day, time.max, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if moment.utcoffset() is None:
        raise ValueError(f"{option} {text!r} needs a UTC offset (Z or +02:00), or give a date")
    return moment.astimezone(UTC)


@dataclass
class ExportProgress:
    """How far an export got: events written, the last position and hash, where it was cut."""

    total: int
    events: int = 0
    last_position: int = 0
    last_hash: bytes = ZERO_HASH
    cut_at: int | None = None


def export_events(
    store: LedgerStore,
    tenant_id: UUID,
    out: IO[bytes],
    progress: ExportProgress,
    *,
    until: datetime | None = None,
    page_size: int = EXPORT_PAGE_SIZE,
    on_page: Callable[[ExportProgress], None] = lambda _: None,
    workers: int | None = None,
) -> None:
    """Writes positions 1..`progress.total` as NDJSON, one line per event, to `out`.

    Stops before the first event recorded after `until`. The next page is read while this one
    is written (the database and this process work at the same time); memory stays at two pages.
    Into an empty file, from `PARALLEL_FROM` events (or with `workers` > 1), worker processes
    read and format the pages instead, one per core (`ledger.export_parallel`), and the file
    holds the same bytes.
    """
    if workers is None:
        many = progress.total - progress.last_position >= PARALLEL_FROM
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if many else 1
    address, path = store.address(), _fresh_file(out)
    if workers > 1 and address is not None and path is not None and progress.last_position == 0:

        def placed(events: int, last: tuple[int, bytes] | None, cut_at: int | None) -> None:
            if last is not None:
                progress.events += events
                progress.last_position, progress.last_hash = last
                on_page(progress)
            progress.cut_at = cut_at

        export_in_parallel(
            address,
            tenant_id,
            path,
            progress.total,
            until=until,
            page_size=page_size,
            workers=workers,
            on_page=placed,
        )
        out.seek(0, os.SEEK_END)
        return
    pages = _pages(store, tenant_id, progress.total, page_size)
    for rows in _cut(pages, until, progress):
        out.write(page_lines(rows, progress.last_position, progress.last_hash))
        _advance(progress, rows, on_page)


def _fresh_file(out: IO[bytes]) -> str | None:
    """The path of `out` if it is an empty regular file written from its start, else None."""
    name = getattr(out, "name", None)
    if not isinstance(name, str):
        return None
    try:
        found = os.fstat(out.fileno())
        named = os.stat(name)
        at = out.tell()
    except (OSError, ValueError):
        return None
    fresh = stat.S_ISREG(found.st_mode) and found.st_size == 0 and at == 0
    return name if fresh and (named.st_dev, named.st_ino) == (found.st_dev, found.st_ino) else None


def _cut(
    pages: Iterator[list[ChainRow]], until: datetime | None, progress: ExportProgress
) -> Iterator[list[ChainRow]]:
    """The pages' rows up to the first recorded after `until` (noted in `progress.cut_at`)."""
    for page in pages:
        kept = page if until is None else recorded_by(page, until)
        if kept:
            yield kept
        if len(kept) < len(page):
            progress.cut_at = page[len(kept)][0]
            return


def _advance(
    progress: ExportProgress, rows: list[ChainRow], on_page: Callable[[ExportProgress], None]
) -> None:
    progress.events += len(rows)
    progress.last_position, _, progress.last_hash = rows[-1]
    on_page(progress)


def _pages(
    store: LedgerStore, tenant_id: UUID, last: int, page_size: int
) -> Iterator[list[ChainRow]]:
    """The tenant's rows up to position `last` in pages, each read while the one before is used
    (empty pages, where rows are missing, are skipped)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-read") as reader:

        def read(after: int) -> Future[list[ChainRow]] | None:
            if after >= last:
                return None
            limit = min(page_size, last - after)
            return reader.submit(store.read_chain, tenant_id, after=after, limit=limit)

        after, pending = 0, read(0)
        while pending is not None:
            page = pending.result()
            after += page_size
            pending = read(after)
            if page:
                yield page


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file written under a temporary name beside `path`, renamed to it only when complete.

    An export that fails or is interrupted leaves nothing under `path` (an older file there
    stays as it was). The file is readable by its owner only, like any audit extract should be.
    """
    target = path.resolve()
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed or removed below)
        "wb",
        buffering=WRITE_BUFFER,
        dir=target.parent,
        prefix=f".{target.name}.",
        suffix=".partial",
        delete=False,
    )
    try:
        yield handle.file  # not the wrapper: it adds a Python call to every write
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(handle.name, target)
    except BaseException:
        handle.close()
        Path(handle.name).unlink(missing_ok=True)
        raise


@contextmanager
def output_to(path: Path | None, stdout: IO[bytes]) -> Iterator[IO[bytes]]:
    """The file at `path` (written atomically), or else `stdout`."""
    with atomic_file(path) if path is not None else large_buffer(stdout) as out:
        yield out


@contextmanager
def large_buffer(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    """`stream` behind a big buffer when it has a file descriptor (fewer writes to a pipe)."""
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both: an in-memory stream
        descriptor = None
    if descriptor is None:
        yield stream
        return
    stream.flush()
    with open(descriptor, "wb", buffering=WRITE_BUFFER, closefd=False) as buffered:
        yield buffered


@contextmanager
def progress_display(total: int, err: IO[str]) -> Iterator[Callable[[ExportProgress], None]]:
    """Shows on `err` how far an export got: a bar on a terminal (with `rich`), else a line
    every PROGRESS_EVERY_SECONDS (none for a short export)."""
    if err.isatty() and find_spec("rich") is not None:
        with _rich_bar(total, err) as update:
            yield update
    else:
        yield _PeriodicLine(total, err)


@contextmanager
def _rich_bar(total: int, err: IO[str]) -> Iterator[Callable[[ExportProgress], None]]:
    import rich.console  # noqa: PLC0415 (optional: only on a terminal)
    import rich.progress as bars  # noqa: PLC0415

    columns = (bars.TextColumn("exporting"), bars.BarColumn(), bars.MofNCompleteColumn())
    console = rich.console.Console(file=err)
    with bars.Progress(
        *columns, bars.TimeRemainingColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("export", total=total)
        yield lambda progress: bar.update(task, completed=progress.last_position)


class _PeriodicLine:
    """A plain progress line now and then, for logs."""

    def __init__(self, total: int, err: IO[str]) -> None:
        self.total, self.err, self.shown = total, err, monotonic()

    def __call__(self, progress: ExportProgress) -> None:
        if monotonic() - self.shown >= PROGRESS_EVERY_SECONDS:
            self.shown = monotonic()
            print(f"exported {progress.last_position} of {self.total} positions", file=self.err)


def summary(progress: ExportProgress, until: datetime | None, destination: str) -> list[str]:
    """What an export did, for stderr."""
    last = progress.last_position
    span = f" (positions 1-{last})" if last else ""
    lines = [f"exported {progress.events} events{span} to {destination}"]
    if last:
        lines.append(f"last: {last}:{progress.last_hash.hex()}")
    if progress.cut_at is not None and until is not None:
        moment = until.isoformat().replace("+00:00", "Z")
        lines.append(f"stopped at position {progress.cut_at}: recorded after {moment}")
    return lines


def checkpoint_problem(store: LedgerStore, tenant_id: UUID, expected: Checkpoint) -> str | None:
    """Why the tenant's history, recomputed from its payloads, does not lead to `expected`."""
    found = store.chain_hash_at(tenant_id, expected.position)
    if found.hash is None:
        return f"checkpoint {expected.position}: {found.reason}"
    if found.hash != expected.hash:
        return (
            f"checkpoint {expected.position}: the history now leads to {found.hash.hex()}"
            " there, not to the checkpoint's hash"
        )
    return None


def verify_to_head(store: LedgerStore, tenant_id: UUID) -> Verification:
    """Recomputes the chain up to the head as it is now; events appended meanwhile are not read."""
    head = store.head(tenant_id)
    events = store.iter_events(tenant_id, page_size=EXPORT_PAGE_SIZE)
    return verify_chain(tenant_id, takewhile(lambda e: e.position <= head.position, events), head)
