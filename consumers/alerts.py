"""The alerts projection: it records alerts as the ledger's events arrive, in-process (fed by
the projection runner) or behind Kafka (`ledger consume alerts`), with the same code.

Low stock, expiring lots and expired lots on hand are conditions: a record is raised when one
starts for its subject (a SKU in a warehouse, or a lot in a bin) and cleared when it ends, and a
subject never has two open records. They are judged against the read models it reads (stock
levels, lots, catalog, orders) for the subjects a batch's events touch, at the time the batch is
applied; those read models must have applied the batch first, else `NotYet`. Each change of an
order's status is an `order_status` record, raised and cleared at once (a notice, not a
condition). Time alone turns lots expiring and expired: `sweep` re-judges them at the
position the projection has reached.

Recorded alerts are history: a rebuild from position 0 would judge old events against today's
state, so the projection owns no rebuildable tables.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Connection, Engine, Table, select, text, tuple_

from consumers.alert_judging import judge, slices
from consumers.alert_writes import ORDER_KINDS, Stamp, open_keys, reconcile, record_orders
from projections.alerts import LEVELS, LOTS, Key
from projections.catalog import PRODUCTS, WAREHOUSES
from projections.events import LedgerEvent
from projections.runner import TRACKING, NotYet, Runner, tenant_lock_key
from projections.schema import LotStreamRow
from projections.waiting import tracked

NAME = "alerts"
#: The read models an alert is judged against; they must be ahead of the batch.
READS = ("stock_levels", "lots", "catalog", "orders")
STREAMS = LotStreamRow.__table__.c
STOCK_KINDS = frozenset(
    f"StockItem.{name}"
    for name in (
        "Opened",
        "Received",
        "Removed",
        "Moved",
        "Reserved",
        "ReservationReleased",
        "LotStatusSet",
    )
)
CATALOG_KINDS = frozenset({"Product.Registered", "Product.Changed", "Warehouse.BinAdded"})
KINDS = STOCK_KINDS | CATALOG_KINDS | ORDER_KINDS
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Alerts:
    """Records low stock, expiring and expired lots, and order status changes."""

    name = NAME
    tables: tuple[str, ...] = ()
    kinds: frozenset[str] | None = KINDS

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        """Judges the subjects the events touch and notes the orders' status changes; raises
        `NotYet` (nothing written) while a read model it reads is behind the batch."""
        wanted = [e for e in events if e.kind in KINDS]
        if not wanted:
            return
        last = max(e.position for e in events)
        reached = tracked(conn, tenant_id, READS)
        behind = {name: at for name, at in reached.items() if at < last}
        if behind:
            raise NotYet(f"alerts of {tenant_id} wait for {behind} to reach {last}")
        stamps = touched(conn, tenant_id, wanted)
        if stamps:
            reconcile(conn, tenant_id, stamps, judge(conn, tenant_id, stamps.keys(), self.clock()))
        record_orders(conn, tenant_id, wanted)


def touched(conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> dict[Key, Stamp]:
    """The (SKU, warehouse) keys the events touch, each with the last event that touched it: a
    stock item's own, every key of a product changed, every key of a warehouse given a bin.

    A key whose stock item (or product, or warehouse) the read models have already seen
    change after the batch is left for the batch that holds that change: judged now, against
    their later state, it would be raised or cleared at a position before its cause."""
    last = events[-1].position
    streams = _stream_keys(conn, tenant_id, {e.stream_id for e in events if e.kind in STOCK_KINDS})
    skus = _codes(conn, PRODUCTS, "sku", tenant_id, events, "Product.")
    codes = _codes(conn, WAREHOUSES, "code", tenant_id, events, "Warehouse.")
    by_sku: dict[str, set[Key]] = {}
    by_warehouse: dict[str, set[Key]] = {}
    wanted_skus = {sku for sku, at in skus.values() if at <= last}
    wanted_codes = {code for code, at in codes.values() if at <= last}
    if wanted_skus or wanted_codes:
        for key in _keys_of(conn, tenant_id, wanted_skus, wanted_codes):
            by_sku.setdefault(key[0], set()).add(key)
            by_warehouse.setdefault(key[1], set()).add(key)
    stamps: dict[Key, Stamp] = {}
    for event in events:
        if event.kind in STOCK_KINDS:
            keys = {streams[event.stream_id]}
        elif event.stream_id in skus:
            keys = by_sku.get(skus[event.stream_id][0], set())
        elif event.stream_id in codes:
            keys = by_warehouse.get(codes[event.stream_id][0], set())
        else:
            continue
        stamps.update(dict.fromkeys(keys, Stamp(event.position, event.recorded_at)))
    moved = _moved_after(conn, tenant_id, stamps.keys(), last)
    return {key: stamp for key, stamp in stamps.items() if key not in moved}


def _stream_keys(conn: Connection, tenant_id: UUID, streams: set[UUID]) -> dict[UUID, Key]:
    if not streams:
        return {}
    found = {
        r.stream_id: (r.sku, r.warehouse)
        for r in conn.execute(
            select(STREAMS.stream_id, STREAMS.sku, STREAMS.warehouse).where(
                STREAMS.tenant_id == tenant_id, STREAMS.stream_id.in_(streams)
            )
        )
    }
    if missing := streams - found.keys():
        raise LookupError(
            f"stock items unknown to the lots read model: {sorted(map(str, missing))}"
        )
    return found


def _moved_after(conn: Connection, tenant_id: UUID, keys: Collection[Key], last: int) -> set[Key]:
    """The keys whose stock item the lots read model has applied events of after `last`."""
    moved: set[Key] = set()
    for part in slices(keys):
        moved |= {
            (r.sku, r.warehouse)
            for r in conn.execute(
                select(STREAMS.sku, STREAMS.warehouse).where(
                    STREAMS.tenant_id == tenant_id,
                    tuple_(STREAMS.sku, STREAMS.warehouse).in_(part),
                    STREAMS.last_position > last,
                )
            )
        }
    return moved


def _codes(
    conn: Connection,
    table: Table,
    column: str,
    tenant_id: UUID,
    events: Sequence[LedgerEvent],
    prefix: str,
) -> dict[UUID, tuple[str, int]]:
    """The SKU (or warehouse code) of each product (or warehouse) stream among the events,
    with the position its catalog row was last changed at."""
    streams = {e.stream_id for e in events if e.kind.startswith(prefix)}
    if not streams:
        return {}
    columns = table.c
    rows = conn.execute(
        select(columns.stream_id, columns[column], columns.last_position).where(
            columns.tenant_id == tenant_id, columns.stream_id.in_(streams)
        )
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def _keys_of(
    conn: Connection, tenant_id: UUID, skus: Collection[str], warehouses: Collection[str]
) -> set[Key]:
    """Every key of these SKUs or warehouses: stock levels and open condition records."""
    level = LEVELS.c
    rows = conn.execute(
        select(level.sku, level.warehouse).where(
            level.tenant_id == tenant_id, level.sku.in_(skus) | level.warehouse.in_(warehouses)
        )
    )
    keys = {(r.sku, r.warehouse) for r in rows}
    return keys | open_keys(conn, tenant_id, skus=skus, warehouses=warehouses)


# -- sweeps ---------------------------------------------------------------------------------------


def sweep(conn: Connection, tenant_id: UUID, now: datetime) -> int:
    """Re-judges at `now` every key with a lot that expires or an open condition record,
    raising and clearing at the tenant's tracked alerts position; returns how many keys it
    judged (none before the projection has applied any of the tenant's events).

    On PostgreSQL it waits for the runner's lock on (alerts, tenant), so it never interleaves
    with a batch of the same tenant."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": tenant_lock_key(NAME, tenant_id)}
        )
    position = Runner.position_on(conn, NAME, tenant_id)
    if position == 0:
        return 0
    keys = {
        (r.sku, r.warehouse)
        for r in conn.execute(
            select(LOTS.c.sku, LOTS.c.warehouse)
            .distinct()
            .where(LOTS.c.tenant_id == tenant_id, LOTS.c.expires_on.is_not(None))
        )
    } | open_keys(conn, tenant_id)
    if keys:
        stamp = Stamp(position, now)
        reconcile(conn, tenant_id, dict.fromkeys(keys, stamp), judge(conn, tenant_id, keys, now))
    return len(keys)


def sweep_all(engine: Engine, now: datetime | None = None) -> int:
    """Sweeps every tenant the alerts projection follows, a transaction each; returns how
    many keys were judged."""
    at = now or utc_now()
    with engine.connect() as conn:
        tenants = list(
            conn.scalars(select(TRACKING.c.tenant_id).where(TRACKING.c.projection == NAME))
        )
    total = 0
    for tenant_id in tenants:
        with engine.begin() as conn:
            total += sweep(conn, tenant_id, at)
    return total
