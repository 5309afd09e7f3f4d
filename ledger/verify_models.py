"""The read models against the ledger: stock levels and lots, row by row, column by column.

Each read model is compared with the fold of the tenant's events (projections.stock_fold, which
shares no code with the projections) up to the position the read model has tracked, so a read
model that merely lags is not wrong; how far it lags is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, Engine, Table, select

from eventstore.store import LedgerStore
from ledger.stock_text import text
from projections.events import decode
from projections.history import stock_events
from projections.schema import LotRow, ProjectionFailure, ProjectionTracking, StockLevelRow
from projections.stock_fold import LevelState, LotState, StockFold
from projections.tenancy import tenant_scope

LEVELS = cast("Table", StockLevelRow.__table__)
LOTS = cast("Table", LotRow.__table__)
TRACKING = cast("Table", ProjectionTracking.__table__)
FAILURES = cast("Table", ProjectionFailure.__table__)
LEVEL_KEY = ("sku", "warehouse")
LEVEL_VALUES = ("on_hand", "reserved", "value")
LOT_KEY = ("sku", "warehouse", "lot", "bin")
LOT_VALUES = ("on_hand", "reserved", "value", "expires_on", "received_at", "status")
#: Reads of the read models before giving up while a runner keeps changing them (SQLite).
READ_ATTEMPTS = 20

State = LevelState | LotState
Key = tuple[str, ...]


class ReadModelsBusy(Exception):
    """The read models changed under every attempt to read them consistently."""


@dataclass(frozen=True)
class ModelReport:
    """One read model of one tenant compared with the ledger."""

    name: str
    position: int | None  # tracked; None: never built for the tenant
    head: int
    rows: int
    failed_at: int | None
    differences: tuple[str, ...]

    def summary(self) -> str:
        if self.position is None:
            return f"{self.name}: never built for this tenant (no tracking position)"
        where = f"at position {self.position} ({self.lag()})"
        if self.differences:
            count = len(self.differences)
            return f"{self.name}: {count} difference{'s' * (count != 1)} from the ledger {where}"
        return f"{self.name}: {self.rows} rows match the ledger {where}"

    def lag(self) -> str:
        behind = self.head - (self.position or 0)
        if behind > 0:
            return f"{behind} behind the head at {self.head}"
        if behind < 0:
            return f"beyond the head at {self.head}"
        return "up to date with the head"

    def notes(self) -> list[str]:
        if self.failed_at is None:
            return []
        return [f"{self.name}: stopped by a failure at position {self.failed_at}"]


@dataclass(frozen=True)
class _Stored:
    positions: dict[str, int | None]
    failures: dict[str, int]
    levels: dict[Key, LevelState]
    lots: dict[Key, LotState]


@dataclass(frozen=True)
class _Ledger:
    levels: list[LevelState]
    lots: list[LotState]


@dataclass(frozen=True)
class _Model:
    name: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    rows: Callable[[_Stored], Mapping[Key, State]]
    folded: Callable[[_Ledger], Sequence[State]]


MODELS = (
    _Model("stock_levels", LEVEL_KEY, LEVEL_VALUES, lambda s: s.levels, lambda f: f.levels),
    _Model("lots", LOT_KEY, LOT_VALUES, lambda s: s.lots, lambda f: f.lots),
)


def check_read_models(store: LedgerStore, engine: Engine, tenant_id: UUID) -> list[ModelReport]:
    """Stock levels and lots of the tenant, each compared at the position it has tracked."""
    stored = read_stored(engine, tenant_id)
    head = store.head(tenant_id).position
    wanted = {m.name: min(stored.positions[m.name] or 0, head) for m in MODELS}
    folds = folds_at(store, tenant_id, set(wanted.values()))
    reports = []
    for model in MODELS:
        position = stored.positions[model.name]
        ledger = {_key(s, model.key): s for s in model.folded(folds[wanted[model.name]])}
        rows = model.rows(stored)
        found = differences(model, ledger, rows)
        if position is not None and position > head:  # events gone from the end of the chain?
            found.insert(0, f"{model.name}: tracked at position {position}, beyond the head")
        reports.append(
            ModelReport(
                model.name,
                position,
                head,
                len(rows),
                stored.failures.get(model.name),
                tuple(found),
            )
        )
    return reports


def folds_at(store: LedgerStore, tenant_id: UUID, positions: Iterable[int]) -> dict[int, _Ledger]:
    """Stock levels and lots as the tenant's events up to each position leave them (one pass)."""
    pending = sorted(positions)
    found: dict[int, _Ledger] = {}
    fold = StockFold()
    for recorded in stock_events(store, tenant_id, pending[-1] if pending else 0):
        while pending and recorded.position > pending[0]:
            found[pending.pop(0)] = _Ledger(fold.levels(), fold.lots())
        fold.apply(decode(recorded))
    for position in pending:
        found[position] = _Ledger(fold.levels(), fold.lots())
    return found


def differences(
    model: _Model, ledger: Mapping[Key, State], stored: Mapping[Key, State]
) -> list[str]:
    """Every row missing from the read model, every extra row, every differing column."""
    found = []
    for key in sorted({*ledger, *stored}):
        where = f"{model.name}: " + " ".join(
            f"{name} {value!r}" for name, value in zip(model.key, key, strict=True)
        )
        mine, theirs = ledger.get(key), stored.get(key)
        if theirs is None:
            found.append(
                f"{where}: missing from the read model; the ledger has {_all(model, mine)}"
            )
        elif mine is None:
            found.append(f"{where}: extra row in the read model ({_all(model, theirs)})")
        else:
            for name in model.values:
                ours, its = getattr(mine, name), getattr(theirs, name)
                if ours != its:
                    found.append(
                        f"{where}: {name} is {text(its)} in the read model,"
                        f" {text(ours)} in the ledger"
                    )
    return found


def _all(model: _Model, state: State | None) -> str:
    return ", ".join(f"{name} {text(getattr(state, name))}" for name in model.values)


def _key(state: State, names: Sequence[str]) -> Key:
    return tuple(getattr(state, name) for name in names)


def read_stored(engine: Engine, tenant_id: UUID) -> _Stored:
    """Tracking positions and rows read together: a runner's commit in between means again."""
    for _ in range(READ_ATTEMPTS):
        connection = engine.connect()
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection as conn, conn.begin():
            tenant_scope(conn, tenant_id)
            before = _positions(conn, tenant_id)
            stored = _Stored(before, _failures(conn, tenant_id), *_rows(conn, tenant_id))
            if _positions(conn, tenant_id) == before:
                return stored
    raise ReadModelsBusy("the read models kept changing while being read; try again")


def _positions(conn: Connection, tenant_id: UUID) -> dict[str, int | None]:
    rows = conn.execute(
        select(TRACKING.c.projection, TRACKING.c.position).where(TRACKING.c.tenant_id == tenant_id)
    )
    tracked = {row.projection: int(row.position) for row in rows}
    return {model.name: tracked.get(model.name) for model in MODELS}


def _failures(conn: Connection, tenant_id: UUID) -> dict[str, int]:
    rows = conn.execute(
        select(FAILURES.c.projection, FAILURES.c.position).where(FAILURES.c.tenant_id == tenant_id)
    )
    return {row.projection: int(row.position) for row in rows}


def _rows(conn: Connection, tenant_id: UUID) -> tuple[dict[Key, LevelState], dict[Key, LotState]]:
    levels = {}
    level_columns = [LEVELS.c[name] for name in (*LEVEL_KEY, *LEVEL_VALUES)]
    query = select(*level_columns, LEVELS.c.stream_id).where(_of(LEVELS, tenant_id))
    for row in conn.execute(query):
        fields = dict(row._mapping)
        stream = fields.pop("stream_id")
        level = LevelState(**fields)
        if stream is None and not any(fields[name] for name in LEVEL_VALUES):
            continue  # a SKU only ordered for the warehouse: no stock item yet
        levels[_key(level, LEVEL_KEY)] = level
    lot_columns = [LOTS.c[name] for name in (*LOT_KEY, *LOT_VALUES)]
    lots = {}
    for row in conn.execute(select(*lot_columns).where(_of(LOTS, tenant_id))):
        lot = LotState(**row._mapping)
        lots[_key(lot, LOT_KEY)] = lot
    return levels, lots


def _of(table: Table, tenant_id: UUID) -> Any:
    return table.c.tenant_id == tenant_id
