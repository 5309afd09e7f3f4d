"""The audit feed: a tenant's events as NDJSON with their metadata and hashes, and checkpoints.

One line per event, in position order, from position 1: the metadata of the stored payload's
JSON header, the exact stored payload (base64) and the hashes, so anyone can recompute the chain
(hash(n) = sha256(hash(n-1) || payload(n)), hash(0) = 32 zero bytes) without the database.
"""

from __future__ import annotations

import os
import re
import tempfile
from binascii import b2a_base64
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib.util import find_spec
from itertools import takewhile
from pathlib import Path
from time import monotonic
from typing import IO, Any
from uuid import UUID

import orjson

from eventstore.envelope import ZERO_HASH
from eventstore.records import ChainRow, Verification
from eventstore.store import LedgerStore
from eventstore.verify import verify_chain

#: Events per read: big pages keep the per-query cost small; a page is a few megabytes.
EXPORT_PAGE_SIZE = 5000
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
) -> None:
    """Writes positions 1..`progress.total` as NDJSON, one line per event, to `out`.

    Stops before the first event recorded after `until`. The next page is read while this one
    is written (the database and this process work at the same time); memory stays at two pages.
    """
    pages = _pages(store, tenant_id, progress.total, page_size)
    for rows in _cut(pages, until, progress):
        out.write(_page_lines(rows, progress.last_position, progress.last_hash))
        _advance(progress, rows, on_page)


def _cut(
    pages: Iterator[list[ChainRow]], until: datetime | None, progress: ExportProgress
) -> Iterator[list[ChainRow]]:
    """The pages' rows up to the first recorded after `until` (noted in `progress.cut_at`)."""
    for page in pages:
        kept = page if until is None else _recorded_by(page, until)
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


def _page_lines(rows: Sequence[ChainRow], previous_position: int, previous_hash: bytes) -> bytes:
    """The lines of a page; `previous_*` is the row before its first (0: none)."""
    prev: str | None = previous_hash.hex()
    lines = []
    for position, payload, digest in rows:
        current = digest.hex()
        if position != previous_position + 1:
            prev = None  # that row is missing: its hash is not known
        lines.append(_line(position, payload, prev, current))
        previous_position, prev = position, current
    return b"".join(lines)


_FIELDS = (
    "stream_id",
    "version",
    "topic",
    "recorded_at",
    "effective_at",
    "actor",
    "request_id",
    "idempotency_key",
    "causation_id",
)
_STORED_KEYS = ("v", "tenant_id", *_FIELDS)


def _line(position: int, payload: bytes, prev_hash: str | None, hash_hex: str) -> bytes:
    """One event's NDJSON line; this is the export's cost per event.

    The metadata is dumped by orjson; the payload's base64 and the hashes, all plain ASCII, are
    joined in as bytes (the same bytes orjson would write for the whole line, without building
    and scanning a string of the payload's size).
    """
    header = _header(payload)
    if tuple(header) == _STORED_KEYS:
        # The header as the store writes it: its fields after the tenant's, in the line's order.
        del header["v"], header["tenant_id"]
        metadata = b'{"position":%d,' % position + orjson.dumps(header)[1:]
    else:
        metadata = orjson.dumps({"position": position} | {k: header.get(k) for k in _FIELDS})
    previous = b"null" if prev_hash is None else b'"' + prev_hash.encode() + b'"'
    return b"".join(
        (
            metadata[:-1],
            b',"payload":"',
            b2a_base64(payload, newline=False),
            b'","prev_hash":',
            previous,
            b',"hash":"',
            hash_hex.encode(),
            b'"}\n',
        )
    )


def _recorded_by(page: list[ChainRow], until: datetime) -> list[ChainRow]:
    """The leading rows of the page recorded at or before `until` (unreadable times count)."""
    for index, (_, payload, _) in enumerate(page):
        recorded = _header(payload).get("recorded_at")
        try:
            moment = datetime.fromisoformat(recorded) if isinstance(recorded, str) else None
        except ValueError:
            moment = None
        if moment is not None and moment.utcoffset() is not None and moment > until:
            return page[:index]
    return page


def _header(payload: bytes) -> dict[str, Any]:
    """The payload's JSON header; empty when unreadable (a tampered row is exported as it is)."""
    try:
        header = orjson.loads(payload[: payload.index(b"\n")])
    except ValueError:  # no separator, or not JSON (orjson.JSONDecodeError is a ValueError)
        return {}
    return header if isinstance(header, dict) else {}


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
