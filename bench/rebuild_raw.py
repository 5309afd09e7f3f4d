"""The raw baseline of `bench.rebuild`: psycopg alone folds the same events into the same rows.

It reads every event of every tenant (as the rebuild does) in pages of the rebuild's batch size,
with one prepared binary SELECT per page; decodes minimally (orjson, and only the transcoded
values it uses, where it uses them); folds stock levels with their purchase order lines, lots and
movements in memory as `projections.stock_levels`, `.lots` and `.movements` do (a lot row left
empty goes at the end of its page, as at the end of a rebuild batch); and writes the final rows
with COPY into scratch tables made LIKE the live ones (same keys and indexes), in one
transaction. `differences` then compares them with the rebuilt live tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg

from bench.rebuild_fold import Fold
from eventstore.queries import EVENTS, HEADS

SCHEMA = "bench_raw"
TABLES = (
    "rm_stock_levels",
    "rm_stock_level_orders",
    "rm_lot_streams",
    "rm_lots",
    "rm_movement_streams",
    "rm_movements",
)
PAGE_QUERY = (
    f"SELECT position, originator_id, topic, payload FROM {EVENTS}"
    " WHERE tenant_id = %s AND position > %s AND position <= %s ORDER BY position"
)


STOCK_KINDS = frozenset(
    {"Opened", "Received", "Removed", "Moved", "Reserved", "ReservationReleased", "LotStatusSet"}
)
ORDER_KINDS = frozenset({"Created", "Submitted", "Received", "Closed", "Cancelled"})
COLUMNS = {
    "rm_stock_levels": "tenant_id, sku, warehouse, stream_id, on_hand, reserved, value,"
    " incoming, last_position",
    "rm_stock_level_orders": "tenant_id, order_id, line, sku, warehouse, ordered, received,"
    " status, last_position",
    "rm_lot_streams": "tenant_id, stream_id, sku, warehouse, last_position",
    "rm_lots": "tenant_id, sku, warehouse, lot, bin, stream_id, on_hand, reserved, value,"
    " expires_on, received_at, layers, status, last_position",
    "rm_movement_streams": "tenant_id, stream_id, sku, warehouse",
    "rm_movements": "tenant_id, position, seq, sku, warehouse, lot, bin, quantity, unit_cost,"
    " reason, reference, effective_at, recorded_at, actor, request_id",
}


def prepare(url: str) -> None:
    """Empty scratch tables like the live ones (columns, keys, indexes)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
            conn.execute(f"CREATE TABLE {SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)")


def run(url: str, page: int) -> int:
    """Folds every tenant's events and writes the rows; returns the events read."""
    read = 0
    with psycopg.connect(url) as conn, conn.cursor(binary=True) as cursor:
        heads = cursor.execute(f"SELECT tenant_id, position FROM {HEADS} ORDER BY tenant_id")
        for tenant_id, head in heads.fetchall():
            fold = Fold(tenant_id)
            for after in range(0, head, page):
                params = (tenant_id, after, min(after + page, head))
                rows = cursor.execute(PAGE_QUERY, params, prepare=True).fetchall()
                read += len(rows)
                fold_page(fold, rows)
                copy(cursor, "rm_movements", fold.movements)
                fold.movements = []
            write(cursor, fold)
        conn.commit()
    return read


def fold_page(fold: Fold, rows: Iterable[tuple[int, UUID, str, bytes]]) -> None:
    for position, stream, topic, payload in rows:
        aggregate, _, kind = topic[topic.rfind(":") + 1 :].partition(".")
        if aggregate == "StockItem" and kind in STOCK_KINDS:
            cut = payload.index(b"\n")
            view = memoryview(payload)
            fold.stock(position, stream, kind, orjson.loads(view[cut + 1 :]), view[:cut])
        elif aggregate == "PurchaseOrder" and kind in ORDER_KINDS:
            fold.order(position, stream, kind, orjson.loads(payload[payload.index(b"\n") + 1 :]))
    fold.sweep()


def copy(cursor: psycopg.Cursor[Any], table: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {SCHEMA}.{table} ({COLUMNS[table]}) FROM STDIN") as writer:
        for row in rows:
            writer.write_row(row)


def write(cursor: psycopg.Cursor[Any], fold: Fold) -> None:
    """The tenant's final stock levels, order lines, lots and streams."""
    tenant = fold.tenant_id
    copy(
        cursor,
        "rm_stock_levels",
        (
            (
                tenant,
                sku,
                warehouse,
                v.stream_id,
                v.on_hand,
                v.reserved,
                v.value,
                v.incoming,
                v.position,
            )
            for (sku, warehouse), v in fold.levels.items()
        ),
    )
    copy(
        cursor,
        "rm_stock_level_orders",
        (
            (tenant, order_id, n, sku, p.warehouse, ordered, received, p.status, p.position)
            for order_id, p in fold.purchases.items()
            for n, (sku, ordered, received) in p.lines.items()
        ),
    )
    named = [(tenant, s, *fold.names[s]) for s in fold.opened]
    copy(cursor, "rm_movement_streams", named)
    copy(cursor, "rm_lot_streams", ((*row, fold.positions[row[1]]) for row in named))
    copy(cursor, "rm_lots", lot_rows(fold))


def lot_rows(fold: Fold) -> Iterable[tuple[Any, ...]]:
    for (stream, lot), place in fold.lots.items():
        sku, warehouse = fold.names[stream]
        for bin_code, r in place.items():
            received = min(datetime.fromisoformat(t) for t, _ in r.layers.values())
            layers = orjson.dumps([[k, t, str(q)] for k, (t, q) in sorted(r.layers.items())])
            yield (
                fold.tenant_id,
                sku,
                warehouse,
                lot,
                bin_code,
                stream,
                r.on_hand,
                r.reserved,
                r.value,
                r.expires_on,
                received,
                layers.decode(),
                r.status,
                r.position,
            )


def differences(url: str) -> dict[str, tuple[int, int]]:
    """Per table: (rows only the baseline wrote, rows only the rebuild wrote)."""
    found = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            columns = COLUMNS[table]
            counts = []
            for a, b in (
                (f"{SCHEMA}.{table}", f"public.{table}"),
                (f"public.{table}", f"{SCHEMA}.{table}"),
            ):
                row = conn.execute(
                    f"SELECT count(*) FROM (SELECT {columns} FROM {a}"
                    f" EXCEPT ALL SELECT {columns} FROM {b}) AS diff"
                ).fetchone()
                counts.append(int(row[0]) if row else 0)
            found[table] = (counts[0], counts[1])
    return found
