"""Streamed exports: stock levels and movements as CSV, the audit feed as NDJSON.

Each export reads one consistent snapshot (one repeatable-read transaction of the read models,
or the event store up to one head position) and says which position it reflects in the
`X-Ledger-Position` header. The first chunk is read before the response starts, so an error
up to there is answered as a problem; the rest is read page by page while the response is
written, and a failure then (when only cutting the response short is left) is logged.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection, Engine
from starlette.background import BackgroundTask

from api.auth import Principal, permitted
from api.context import request_id_of
from api.pages import MAX_POSITION, MinPosition, decimal_text, scope
from api.problems import problem_responses
from api.routes.inputs import Filter
from api.routes.insights import ZERO_HASH, audit_event
from api.routes.stock_history import (
    MOVEMENT_READS,
    MovedBefore,
    MovedFrom,
    MovementItem,
    aware_time,
)
from api.routes.stock_levels import READS as LEVEL_READS
from eventstore.store import LedgerStore
from projections.movements import Movement, movements
from projections.stock_levels import stock_levels
from projections.waiting import tracked, wait_for_position

LOG = logging.getLogger("ledger.http")
router = APIRouter(prefix="/v1/exports", tags=["exports"])
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
Auditor = Annotated[Principal, Depends(permitted("audit:read"))]
POSITION = "X-Ledger-Position"
#: Rows read per query while streaming.
PAGE = 1000
#: Bytes gathered before a chunk is sent.
CHUNK = 64 * 1024
LEVEL_COLUMNS = ("sku", "warehouse", "on_hand", "reserved", "available", "incoming", "value")
MOVEMENT_COLUMNS = tuple(MovementItem.model_fields)


def _problems(permission: str, media_type: str) -> dict[int | str, dict[str, Any]]:
    own = {
        403: f"`forbidden`: needs `{permission}`",
        503: "`projection-lagging`: `min_position` not reached in time;"
        " `service-unavailable`: the database is unreachable",
    }
    return {200: {"content": {media_type: {}}}, **problem_responses(own)}


@contextmanager
def snapshot(
    request: Request, tenant_id: UUID, names: Sequence[str], min_position: int | None
) -> Iterator[tuple[Connection, int]]:
    """One repeatable-read transaction of the tenant's read models, and the position the
    projections it reads reflect (the lowest of them)."""
    engine: Engine = request.app.state.engine
    if min_position:
        timeout = request.app.state.settings.min_position_timeout
        wait_for_position(engine, tenant_id, min_position, projections=names, timeout=timeout)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if conn.dialect.name == "sqlite":
                # The driver opens no transaction for reads: without one each query would see
                # the file as it is at that moment.
                conn.exec_driver_sql("BEGIN")
            scope(request, conn, tenant_id)
            yield conn, min(tracked(conn, tenant_id, names).values())


def _csv(rows: Iterator[Sequence[object]], header: Sequence[str]) -> Iterator[str]:
    """RFC 4180 CSV text in chunks: a header row, then the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


class _Chunks:
    """The chunks of an export, each read under a lock that `close` takes too: the snapshot
    is never ended while another thread reads from it. A failure is logged, as the response
    can then only be cut short."""

    def __init__(self, chunks: Iterator[str], stack: ExitStack, what: str) -> None:
        self._chunks, self._stack, self._what = chunks, stack, what
        self._lock = threading.Lock()
        self._done = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        with self._lock:
            if self._done:
                raise StopIteration
            try:
                return next(self._chunks)
            except StopIteration:
                self._finish()
                raise
            except Exception:
                LOG.exception("export %s failed after its response started", self._what)
                self._finish()
                raise

    def close(self) -> None:
        """Ends the snapshot (when the chunks are sent, or the client went away)."""
        with self._lock:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._stack.close()


def _streamed(
    request: Request,
    chunks: Iterator[str],
    stack: ExitStack,
    position: int,
    media_type: str,
    filename: str,
) -> StreamingResponse:
    """The export's response, once its first chunk is read (an error up to there ends the
    snapshot and is answered as a problem)."""
    try:
        first = list(itertools.islice(chunks, 1))
    except BaseException:
        stack.close()
        raise
    what = f"{filename} (request {request_id_of(request)})"
    body = _Chunks(itertools.chain(first, chunks), stack, what)
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={
            POSITION: str(position),
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
        background=BackgroundTask(body.close),  # also when the body was never finished
    )


def _level_rows(
    conn: Connection, tenant_id: UUID, sku: str | None, warehouse: str | None
) -> Iterator[list[str]]:
    after: tuple[str, str] | None = None
    while True:
        page = stock_levels(conn, tenant_id, sku=sku, warehouse=warehouse, after=after, limit=PAGE)
        for r in page:
            amounts = (r.on_hand, r.reserved, r.available, r.incoming, r.value)
            yield [r.sku, r.warehouse, *(decimal_text(a) for a in amounts)]
        if len(page) < PAGE:
            return
        after = (page[-1].sku, page[-1].warehouse)


@router.get(
    "/stock-levels.csv",
    response_class=StreamingResponse,
    summary="Stock levels per SKU and warehouse as CSV, streamed",
    responses=_problems("stock:read", "text/csv"),
)
def export_stock_levels(
    request: Request,
    caller: Reader,
    sku: Filter = None,
    warehouse: Filter = None,
    min_position: MinPosition = None,
) -> StreamingResponse:
    """Stock levels per SKU and warehouse as CSV, streamed."""
    stack = ExitStack()
    conn, at = stack.enter_context(snapshot(request, caller.tenant_id, LEVEL_READS, min_position))
    rows = _level_rows(conn, caller.tenant_id, sku, warehouse)
    return _streamed(request, _csv(rows, LEVEL_COLUMNS), stack, at, "text/csv", "stock-levels.csv")


def _movement_cells(row: Movement) -> list[object]:
    item = MovementItem.of(row).model_dump(mode="json")
    return ["" if item[c] is None else item[c] for c in MOVEMENT_COLUMNS]


class _MovementFilter:
    """What the movements query leaves to the export: reference and effective time."""

    def __init__(self, reference: str | None, start: datetime | None, end: datetime | None):
        self.reference, self.start, self.end = reference, start, end

    def __call__(self, row: Movement) -> bool:
        return (
            (self.reference is None or row.reference == self.reference)
            and (self.start is None or row.effective_at >= self.start)
            and (self.end is None or row.effective_at < self.end)
        )


def _movement_rows(
    conn: Connection, tenant_id: UUID, keep: _MovementFilter, place: tuple[str | None, ...]
) -> Iterator[list[object]]:
    """Movements of (SKU, warehouse, lot) (None: any) that `keep` accepts, page by page."""
    sku, warehouse, lot = place
    after: tuple[int, int] | None = None
    while True:
        page = movements(
            conn, tenant_id, sku=sku, warehouse=warehouse, lot=lot, after=after, limit=PAGE
        )
        yield from (_movement_cells(row) for row in page if keep(row))
        if len(page) < PAGE:
            return
        after = (page[-1].position, page[-1].seq)


@router.get(
    "/movements.csv",
    response_class=StreamingResponse,
    summary="Movement history as CSV, streamed, with the filters of `GET /v1/movements`",
    responses=_problems("stock:read", "text/csv"),
)
def export_movements(
    request: Request,
    caller: Reader,
    sku: Filter = None,
    warehouse: Filter = None,
    lot: Filter = None,
    reference: Filter = None,
    from_: MovedFrom = None,
    to: MovedBefore = None,
    min_position: MinPosition = None,
) -> StreamingResponse:
    """Movement history as CSV, streamed, with the filters of `GET /v1/movements`."""
    keep = _MovementFilter(reference, aware_time(from_, "from"), aware_time(to, "to"))
    stack = ExitStack()
    conn, at = stack.enter_context(
        snapshot(request, caller.tenant_id, MOVEMENT_READS, min_position)
    )
    rows = _movement_rows(conn, caller.tenant_id, keep, (sku, warehouse, lot))
    return _streamed(request, _csv(rows, MOVEMENT_COLUMNS), stack, at, "text/csv", "movements.csv")


def _event_lines(store: LedgerStore, tenant_id: UUID, after: int, head: int) -> Iterator[str]:
    """The audit feed's items after `after` up to `head`, one JSON object per line."""
    if after >= head:
        return
    prev: bytes | None = ZERO_HASH
    if after > 0:
        before = store.read_chain(tenant_id, after - 1, 1)
        prev = before[0][2] if before and before[0][0] == after else None
    expected = after + 1
    while after < head:
        rows = store.read_chain(tenant_id, after, min(PAGE, head - after))
        if not rows:
            return
        lines = []
        for row in rows:
            if row[0] != expected:
                prev = None  # the row before is missing: its hash is not known
            lines.append(audit_event(row, prev).model_dump_json() + "\n")
            prev, expected = row[2], row[0] + 1
        yield "".join(lines)
        after = rows[-1][0]


@router.get(
    "/events.ndjson",
    response_class=StreamingResponse,
    summary="Every stored event as `GET /v1/audit/events` gives it, one per line, streamed",
    responses=_problems("audit:read", "application/x-ndjson"),
)
def export_events(
    request: Request,
    caller: Auditor,
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="Events after this position.")
    ] = 0,
) -> StreamingResponse:
    """Every stored event as `GET /v1/audit/events` gives it, one per line, streamed."""
    store: LedgerStore = request.app.state.ledger.store
    head = store.head(caller.tenant_id).position
    lines = _event_lines(store, caller.tenant_id, after, head)
    return _streamed(request, lines, ExitStack(), head, "application/x-ndjson", "events.ndjson")
