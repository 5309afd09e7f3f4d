"""`ledger audit verify` compares the stock levels and lots read models with the events."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine, Table, create_engine, delete, insert, pool, select, update
from typer.testing import CliRunner

from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger.cli import app
from ledger.settings import Settings
from ledger.stock_text import text
from projections.events import LedgerEvent
from projections.lots import Lots
from projections.runner import Runner
from projections.schema import LotRow, ProjectionTracking, StockLevelRow
from projections.stock_fold import StockFold, UnknownStockEvent
from projections.stock_levels import StockLevels
from tests.conftest import open_store
from tests.orders import Clock, M, order_ledger
from tests.tamper import tamper
from tests.test_projections import seeded

LEVELS = cast("Table", StockLevelRow.__table__)
LOTS = cast("Table", LotRow.__table__)
TRACKING = cast("Table", ProjectionTracking.__table__)
SET_PAYLOAD = "UPDATE ledger_events SET payload = %s WHERE tenant_id = %s AND position = %s"
EVENTS = 60
RECEIPTS = [
    ("BOLT", "A1", 10, "0.25", "B1"),
    ("BOLT", "A2", 4, "0.30", "B2"),
    ("MILK", "A1", 6, "0.90", "M1"),
    ("MILK", "A2", 5, "0.95", "M2"),
]
runner = CliRunner()


@dataclass(frozen=True)
class Built:
    """A tenant whose stock levels and lots read models were built."""

    url: str
    slug: str
    tenant: UUID
    head: int

    def verify(self) -> tuple[int, str, str]:
        args = ["audit", "verify", "--tenant", self.slug]
        result = runner.invoke(app, args, env={"LEDGER_DATABASE_URL": self.url})
        return result.exit_code, result.stdout, result.stderr


@contextmanager
def engine_of(url: str) -> Iterator[Engine]:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url, poolclass=pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with engine_of(database_url) as engine:
        yield engine


def build(
    url: str, store: LedgerStore, engine: Engine, ledger: LedgerApplication, **behind: int
) -> Built:
    """Builds the tenant's stock levels and lots up to the head, or `behind` it by name."""
    tenant, head = ledger.tenant_id, store.head(ledger.tenant_id).position
    projections = Runner(store, engine, [StockLevels(), Lots()])
    for projection in projections.projections:
        projections.step(projection, tenant, head - behind.get(projection.name, 0))
    return Built(url, ledger.tenant().slug, tenant, head)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def demo_built(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Built:
    """A demo history with its read models built, per backend."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    else:
        path = tmp_path_factory.mktemp("verify") / "ledger.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    with open_store(url) as store, engine_of(url) as engine:
        return build(url, store, engine, seeded(store, EVENTS))


def small_ledger(store: LedgerStore) -> LedgerApplication:
    """Receipts of two SKUs in several lots and bins, an issue and a reservation."""
    ledger = order_ledger(store, Clock())
    for sku, bin_code, quantity, cost, lot in RECEIPTS:
        ledger.receive(sku, "WH1", bin_code, quantity, cost, M, lot=lot)
    ledger.issue("BOLT", "WH1", 3, "sale", M)
    ledger.reserve("MILK", "WH1", 2, "SO-1", M)
    return ledger


@pytest.fixture
def built(database_url: str, store: LedgerStore, engine: Engine) -> Built:
    """A small history with its read models built, of this test alone (it may tamper)."""
    return build(database_url, store, engine, small_ledger(store))


def rows(engine: Engine, table: Table, tenant: UUID) -> list[Any]:
    with engine.connect() as conn:
        query = select(table).where(table.c.tenant_id == tenant)
        return list(conn.execute(query.order_by(*table.primary_key.columns)))


def test_read_models_equal_to_the_events_pass_with_their_row_counts(demo_built: Built) -> None:
    code, out, err = demo_built.verify()
    with engine_of(demo_built.url) as engine:
        levels = len(rows(engine, LEVELS, demo_built.tenant))
        lots = len(rows(engine, LOTS, demo_built.tenant))
    head = demo_built.head
    assert (code, err) == (0, "")
    assert out.splitlines()[3:] == [
        f"stock_levels: {levels} rows match the ledger at position {head}"
        " (up to date with the head)",
        f"lots: {lots} rows match the ledger at position {head} (up to date with the head)",
        "ok: the hash chain matches every stored payload",
    ]
    assert levels > 5
    assert lots > 5


def test_a_lagging_read_model_is_no_difference_and_its_lag_is_reported(
    database_url: str, store: LedgerStore, engine: Engine
) -> None:
    ledger = small_ledger(store)
    lagging = build(database_url, store, engine, ledger, stock_levels=3, lots=1)
    code, out, err = lagging.verify()
    head = lagging.head
    assert (code, err) == (0, "")
    assert out.splitlines()[3:5] == [
        f"stock_levels: 2 rows match the ledger at position {head - 3}"
        f" (3 behind the head at {head})",
        f"lots: 4 rows match the ledger at position {head - 1} (1 behind the head at {head})",
    ]


def test_read_models_never_built_for_the_tenant_are_reported_as_such(
    database_url: str, store: LedgerStore
) -> None:
    ledger = small_ledger(store)
    never = Built(database_url, ledger.tenant().slug, ledger.tenant_id, 0)
    code, out, err = never.verify()
    assert (code, err) == (0, "")
    assert out.splitlines()[3:5] == [
        "stock_levels: never built for this tenant (no tracking position)",
        "lots: never built for this tenant (no tracking position)",
    ]


def test_a_stock_level_altered_by_sql_is_reported_column_by_column(
    built: Built, engine: Engine
) -> None:
    victim = rows(engine, LEVELS, built.tenant)[0]
    with engine.begin() as conn:
        conn.execute(
            update(LEVELS)
            .where(
                LEVELS.c.tenant_id == built.tenant,
                LEVELS.c.sku == victim.sku,
                LEVELS.c.warehouse == victim.warehouse,
            )
            .values(on_hand=victim.on_hand + 5, value=Decimal("12345.6789"))
        )
    code, out, err = built.verify()
    where = f"stock_levels: sku {victim.sku!r} warehouse {victim.warehouse!r}"
    assert (code, err) == (1, "error: 2 differences between the read models and the ledger\n")
    lines = out.splitlines()
    assert lines[3] == (
        f"stock_levels: 2 differences from the ledger at position {built.head}"
        " (up to date with the head)"
    )
    assert lines[4:6] == [
        f"{where}: on_hand is {text(victim.on_hand + 5)} in the read model,"
        f" {text(victim.on_hand)} in the ledger",
        f"{where}: value is 12345.6789 in the read model, {text(victim.value)} in the ledger",
    ]
    assert lines[6].startswith("lots: ")
    assert lines[6].endswith(
        f"rows match the ledger at position {built.head} (up to date with the head)"
    )


def test_a_lot_row_deleted_by_sql_is_reported_missing_with_the_ledgers_values(
    built: Built, engine: Engine
) -> None:
    victim = rows(engine, LOTS, built.tenant)[1]
    with engine.begin() as conn:
        conn.execute(
            delete(LOTS).where(
                LOTS.c.tenant_id == built.tenant,
                LOTS.c.sku == victim.sku,
                LOTS.c.warehouse == victim.warehouse,
                LOTS.c.lot == victim.lot,
                LOTS.c.bin == victim.bin,
            )
        )
    code, out, err = built.verify()
    assert (code, err) == (1, "error: 1 difference between the read models and the ledger\n")
    assert (
        f"lots: sku {victim.sku!r} warehouse {victim.warehouse!r} lot {victim.lot!r}"
        f" bin {victim.bin!r}: missing from the read model; the ledger has on_hand"
        f" {text(victim.on_hand)}, reserved {text(victim.reserved)}, value {text(victim.value)},"
        f" expires_on {text(victim.expires_on)}, received_at {text(victim.received_at)},"
        f" status {victim.status}"
    ) in out.splitlines()
    assert f"lots: 1 difference from the ledger at position {built.head}" in out


def test_a_lot_row_inserted_by_sql_is_reported_as_an_extra_row(
    built: Built, engine: Engine
) -> None:
    model = rows(engine, LOTS, built.tenant)[0]
    received = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(LOTS).values(
                {
                    **model._asdict(),
                    **{"lot": "FORGED", "on_hand": Decimal(7), "reserved": Decimal(0)},
                    **{"value": Decimal("8.75"), "expires_on": None, "received_at": received},
                    "status": "released",
                }
            )
        )
    code, out, err = built.verify()
    assert (code, err) == (1, "error: 1 difference between the read models and the ledger\n")
    assert (
        f"lots: sku {model.sku!r} warehouse {model.warehouse!r} lot 'FORGED' bin {model.bin!r}:"
        " extra row in the read model (on_hand 7, reserved 0, value 8.75, expires_on -,"
        " received_at 2026-01-02T03:04:05Z, status released)"
    ) in out.splitlines()


def test_a_read_model_tracked_beyond_the_head_is_a_difference(built: Built, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(TRACKING)
            .where(TRACKING.c.tenant_id == built.tenant, TRACKING.c.projection == "lots")
            .values(position=built.head + 5)
        )
    code, out, err = built.verify()
    assert (code, err) == (1, "error: 1 difference between the read models and the ledger\n")
    assert out.splitlines()[4:6] == [
        f"lots: 1 difference from the ledger at position {built.head + 5}"
        f" (beyond the head at {built.head})",
        f"lots: tracked at position {built.head + 5}, beyond the head",
    ]


def test_an_event_row_altered_by_sql_still_fails_at_its_position(built: Built) -> None:
    tamper(built.url, SET_PAYLOAD, built.tenant, 20, b'{"v":1}\n{}')
    code, out, err = built.verify()
    assert code == 1
    assert err == (
        "error: first bad position: 20 (hash does not match the payload and the previous hash)\n"
    )
    assert "stock_levels" not in out


def test_the_fold_refuses_a_stock_item_event_it_does_not_know() -> None:
    fold = StockFold()
    now = datetime.now(UTC)
    stream = uuid4()
    opened = LedgerEvent(
        uuid4(), 1, stream, 1, "StockItem.Opened", now, now, {}, {"sku": "S", "warehouse": "W"}
    )
    fold.apply(opened)
    unknown = LedgerEvent(uuid4(), 2, stream, 2, "StockItem.Teleported", now, now, {}, {})
    with pytest.raises(UnknownStockEvent, match=r"position 2: StockItem\.Teleported"):
        fold.apply(unknown)
