"""Stock as of any time from the ledger: business time `at`, recorded time `known_at`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import orjson
import pytest
from sqlalchemy import create_engine, pool
from typer.testing import CliRunner

from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore import envelope
from eventstore.store import LedgerStore
from ledger import demo
from ledger.cli import app
from ledger.settings import Settings
from projections.history import lots_as_of, stock_levels_as_of
from projections.movements import Movement, Movements, movements
from projections.runner import Runner
from tests.conftest import open_store
from tests.orders import Clock, order_ledger
from tests.test_projections import folded_lots, seeded

D = Decimal
runner = CliRunner()


def day(date_: int, hour: int = 9, minute: int = 0) -> datetime:
    """A time in the scenario's week: June 2026, UTC."""
    return datetime(2026, 6, date_, hour, minute, tzinfo=UTC)


def on(at: datetime) -> EventMetadata:
    return EventMetadata(effective_at=at)


@dataclass(frozen=True)
class Scenario:
    """BOLT in WH1, bin A1, as recorded day by day; see `scenario`."""

    url: str
    store: LedgerStore
    slug: str
    tenant: UUID


@pytest.fixture
def scenario(database_url: str, store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """Recorded on the 15th: 100 of lot B1 at 2.00.
    Recorded on the 17th: 30 issued (from B1).
    Recorded on the 19th, effective the 16th: 50 of lot B2 at 3.00 (a backdated receipt).
    Recorded on the 20th, effective the 18th: 20 of B2 issued (a backdated issue).
    Recorded on the 21st: B1 counted 65 (5 short) at 09:00, 10 of B1 reserved at 10:00,
    B2 put on hold at 11:00. The clock stops at noon on the 21st."""
    clock = Clock(day(15, 8))
    monkeypatch.setattr(envelope, "utc_now", clock)  # recorded times follow the clock
    ledger = order_ledger(store, clock)

    def at(moment: datetime) -> EventMetadata:
        clock.now = moment
        return on(moment)

    ledger.receive("BOLT", "WH1", "A1", 100, "2.00", at(day(15)), lot="B1")
    ledger.issue("BOLT", "WH1", 30, "sale", at(day(17)))
    clock.now = day(19)
    ledger.receive("BOLT", "WH1", "A1", 50, "3.00", on(day(16)), lot="B2")
    clock.now = day(20)
    ledger.issue("BOLT", "WH1", 20, "sale", on(day(18)), lot="B2")
    ledger.count("BOLT", "WH1", "A1", 65, at(day(21)), lot="B1")
    ledger.reserve("BOLT", "WH1", 10, "SO-1", at(day(21, 10)))
    ledger.set_lot_status("BOLT", "B2", "hold", at(day(21, 11)))
    clock.now = day(21, 12)
    return Scenario(database_url, store, ledger.tenant().slug, ledger.tenant_id)


Level = tuple[int, int, int]  # on hand, reserved, value
Lot = tuple[str, Decimal, Decimal, Decimal, datetime, str]  # lot, on hand, reserved, value, ...


def b1(on_hand: int, value: int, reserved: int = 0) -> Lot:
    return ("B1", D(on_hand), D(reserved), D(value), day(15), "released")


def b2(on_hand: int, value: int, status: str = "released") -> Lot:
    return ("B2", D(on_hand), D(0), D(value), day(16), status)


EXPECTED: list[tuple[datetime, datetime | None, Level | None, list[Lot]]] = [
    # Before anything took effect: no stock item yet.
    (day(15, 8, 30), None, None, []),
    # The backdated receipt counts on the 16th as known now, not as known on the 18th.
    (day(16, 12), None, (150, 0, 350), [b1(100, 200), b2(50, 150)]),
    (day(16, 12), day(18, 12), (100, 0, 200), [b1(100, 200)]),
    # On the 18th: both issues as known now; the receipt but not the issue as known on the 19th.
    (day(18, 12), None, (100, 0, 230), [b1(70, 140), b2(30, 90)]),
    (day(18, 12), day(19, 12), (120, 0, 290), [b1(70, 140), b2(50, 150)]),
    (day(18, 12), day(18, 12), (70, 0, 140), [b1(70, 140)]),
    # The count on the 21st, before the reservation and the hold.
    (day(21, 9, 30), None, (95, 0, 220), [b1(65, 130), b2(30, 90)]),
    # Now: everything.
    (day(21, 12), None, (95, 10, 220), [b1(65, 130, reserved=10), b2(30, 90, "hold")]),
    # Now, as known before the backdated issue was recorded.
    (day(21, 12), day(20, 8), (120, 0, 290), [b1(70, 140), b2(50, 150)]),
]


@pytest.mark.parametrize(("at", "known_at", "level", "lots"), EXPECTED)
def test_stock_as_of_counts_what_took_effect_by_at_among_what_was_recorded_by_known_at(
    scenario: Scenario,
    at: datetime,
    known_at: datetime | None,
    level: Level | None,
    lots: list[Lot],
) -> None:
    levels = stock_levels_as_of(scenario.store, scenario.tenant, at, known_at)
    assert [(x.sku, x.warehouse, x.on_hand, x.reserved, x.value) for x in levels] == (
        [] if level is None else [("BOLT", "WH1", *map(D, level))]
    )
    found = lots_as_of(scenario.store, scenario.tenant, at, known_at)
    assert [(x.sku, x.warehouse, x.bin, x.expires_on) for x in found] == [
        ("BOLT", "WH1", "A1", None)
    ] * len(lots)
    assert [(x.lot, x.on_hand, x.reserved, x.value, x.received_at, x.status) for x in found] == lots


def test_as_of_filters_by_sku_and_warehouse(store: LedgerStore) -> None:
    ledger = order_ledger(store, Clock(day(21, 12)))
    ledger.receive("MILK", "WH1", "A2", 4, "1", on(day(21, 11)), lot="M1")
    ledger.receive("BOLT", "WH2", "A1", 6, "2", on(day(21, 11)), lot="B9")
    everything = lots_as_of(store, ledger.tenant_id, day(21, 12))
    assert [(x.sku, x.warehouse) for x in everything] == [("BOLT", "WH2"), ("MILK", "WH1")]
    for sku, warehouse in [("MILK", None), (None, "WH2"), ("BOLT", "WH2"), ("MILK", "WH2")]:
        wanted = [
            (x.sku, x.warehouse)
            for x in everything
            if sku in (None, x.sku) and warehouse in (None, x.warehouse)
        ]
        levels = stock_levels_as_of(store, ledger.tenant_id, day(21, 12), None, sku, warehouse)
        lots = lots_as_of(store, ledger.tenant_id, day(21, 12), sku=sku, warehouse=warehouse)
        assert [(x.sku, x.warehouse) for x in levels] == wanted
        assert [(x.sku, x.warehouse) for x in lots] == wanted


def test_a_time_without_an_offset_is_refused(scenario: Scenario) -> None:
    with pytest.raises(ValueError, match="at must carry a time zone offset"):
        stock_levels_as_of(scenario.store, scenario.tenant, datetime(2026, 6, 18))


# --- a seeded demo history ----------------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    """A demo history with its movements read model, shared by the tests that only read it."""

    store: LedgerStore
    ledger: LedgerApplication
    moved: list[Movement]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def demo_history(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    else:
        path = tmp_path_factory.mktemp("as-of") / "ledger.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    engine = create_engine(Settings(database_url=url).sqlalchemy_url, poolclass=pool.NullPool)
    with open_store(url) as store:
        ledger = seeded(store, 200)
        Runner(store, engine, [Movements()]).run_tenant(ledger.tenant_id)
        with engine.connect() as conn:
            moved = movements(conn, ledger.tenant_id, limit=100_000)
        engine.dispose()
        yield Demo(store, ledger, moved)


def aggregates(
    ledger: LedgerApplication,
) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    """On hand, reserved and value of every stock item, as its aggregate has them."""
    found = {}
    for item in demo.CATALOG:
        for code, *_ in demo.WAREHOUSES:
            stock = ledger.stock_item(item.sku, code)
            if stock is not None:
                value = sum((x.quantity * x.unit_cost for x in stock.layers.values()), D(0))
                found[(item.sku, code)] = (stock.on_hand(), stock.reserved(), value)
    return found


def test_as_of_now_equals_the_stock_items_of_a_demo_history(demo_history: Demo) -> None:
    store, ledger = demo_history.store, demo_history.ledger
    now = datetime.now(UTC)
    levels = stock_levels_as_of(store, ledger.tenant_id, now)
    expected = aggregates(ledger)
    assert {(x.sku, x.warehouse): (x.on_hand, x.reserved, x.value) for x in levels} == expected
    assert any(on_hand == 0 for on_hand, _, _ in expected.values())  # emptied ones stay, at 0
    lots = lots_as_of(store, ledger.tenant_id, now)
    assert {
        (x.sku, x.warehouse, x.lot, x.bin): (
            x.on_hand, x.reserved, x.value, x.expires_on, x.received_at, x.status
        )
        for x in lots
    } == folded_lots(ledger)  # fmt: skip


def test_past_on_hand_is_the_sum_of_the_movements_effective_and_recorded_by_then(
    demo_history: Demo,
) -> None:
    store, tenant, moved = demo_history.store, demo_history.ledger.tenant_id, demo_history.moved
    effective = sorted(m.effective_at for m in moved)
    recorded = sorted(m.recorded_at for m in moved)
    moments: list[tuple[datetime, datetime | None]] = [(effective[0], None)]
    moments += [(effective[len(effective) * k // 5], None) for k in range(1, 5)]
    moments += [(effective[-1], recorded[len(recorded) // 2])]
    moments += [(effective[len(effective) * 3 // 5], recorded[len(recorded) * 2 // 5])]
    for at, known_at in moments:
        expected: dict[tuple[str, str, str, str], Decimal] = {}
        for m in moved:
            if m.effective_at <= at and (known_at is None or m.recorded_at <= known_at):
                key = (m.sku, m.warehouse, m.lot, m.bin)
                expected[key] = expected.get(key, D(0)) + m.quantity
        lots = lots_as_of(store, tenant, at, known_at)
        assert {(x.sku, x.warehouse, x.lot, x.bin): x.on_hand for x in lots if x.on_hand} == {
            key: quantity for key, quantity in expected.items() if quantity
        }
        assert any(expected.values())


# --- the commands -------------------------------------------------------------------------------


def ledger_cli(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"LEDGER_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


def test_stock_levels_prints_a_table_as_of_the_times_given(scenario: Scenario) -> None:
    code, out, err = ledger_cli(
        scenario.url, "audit", "stock-levels", "--tenant", scenario.slug,
        "--at", "2026-06-18T14:00:00+02:00", "--known-at", "2026-06-19T12:00:00Z",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "stock levels at 2026-06-18T12:00:00Z, recorded by 2026-06-19T12:00:00Z",
        "SKU   WAREHOUSE  ON_HAND  RESERVED  VALUE",
        "BOLT  WH1            120         0    290",
    ]


def test_lots_prints_json_lines(scenario: Scenario) -> None:
    code, out, err = ledger_cli(
        scenario.url, "audit", "lots", "--tenant", scenario.slug, "--at", "now", "--json"
    )
    assert (code, err) == (0, "")
    assert [orjson.loads(line) for line in out.splitlines()] == [
        {
            "sku": "BOLT", "warehouse": "WH1", "lot": "B1", "bin": "A1", "on_hand": "65",
            "reserved": "10", "value": "130", "expires_on": None,
            "received_at": "2026-06-15T09:00:00Z", "status": "released",
        },
        {
            "sku": "BOLT", "warehouse": "WH1", "lot": "B2", "bin": "A1", "on_hand": "30",
            "reserved": "0", "value": "90", "expires_on": None,
            "received_at": "2026-06-16T09:00:00Z", "status": "hold",
        },
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value", "count"),
    [
        ("--sku", "BOLT", 2),
        ("--sku", "MILK", 0),
        ("--warehouse", "WH1", 2),
        ("--warehouse", "WH2", 0),
    ],
)
def test_the_commands_keep_only_the_sku_or_warehouse_asked_for(
    scenario: Scenario, option: str, value: str, count: int
) -> None:
    args = ("audit", "lots", "--tenant", scenario.slug, "--at", "now", "--json", option, value)
    code, out, _ = ledger_cli(scenario.url, *args)
    assert code == 0
    assert [orjson.loads(line)["lot"] for line in out.splitlines()] == ["B1", "B2"][:count]


def test_a_date_means_the_end_of_that_day_in_utc(scenario: Scenario) -> None:
    args = ("audit", "stock-levels", "--tenant", scenario.slug, "--json", "--at", "2026-06-16")
    code, out, _ = ledger_cli(scenario.url, *args, "--known-at", "2026-06-18")
    assert code == 0
    assert orjson.loads(out) == {
        "sku": "BOLT", "warehouse": "WH1", "on_hand": "100", "reserved": "0", "value": "200"
    }  # fmt: skip


def test_nothing_as_of_a_time_before_any_stock_is_said_so(scenario: Scenario) -> None:
    args = ("audit", "lots", "--tenant", scenario.slug, "--at", "2026-06-15T08:30:00Z")
    code, out, _ = ledger_cli(scenario.url, *args)
    assert code == 0
    assert out.splitlines()[1:] == ["lots at 2026-06-15T08:30:00Z, everything recorded", "no lots"]
    assert ledger_cli(scenario.url, *args, "--json") == (0, "", "")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--at", "yesterday", "--at 'yesterday' is not an ISO 8601 date or time"),
        ("--at", "2026-06-18T12:00:00", "--at '2026-06-18T12:00:00' needs a UTC offset"),
        ("--known-at", "2026-02-30", "--known-at '2026-02-30': day is out of range for month"),
    ],
)
@pytest.mark.parametrize("command", ["stock-levels", "lots"])
def test_a_bad_time_is_a_one_line_error_with_exit_2(
    sqlite_url: str, command: str, option: str, value: str, message: str
) -> None:
    times = {"--at": "now", option: value}
    args = [part for pair in times.items() for part in pair]
    code, out, err = ledger_cli(sqlite_url, "audit", command, "--tenant", "acme", *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}")
    assert len(err.splitlines()) == 1


def test_an_unknown_tenant_is_a_one_line_error(sqlite_url: str) -> None:
    code, out, err = ledger_cli(sqlite_url, "audit", "lots", "--tenant", "nobody", "--at", "now")
    assert (code, out, err) == (1, "", "error: tenant 'nobody' not found\n")
