"""`ledger demo seed` on SQLite and PostgreSQL: a realistic, deterministic, verifiable tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
from typer.testing import CliRunner

from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import demo
from ledger.cli import app
from ledger.wiring import Ledger
from tests.conftest import open_store

runner = CliRunner()
EVENTS = 150
COMMANDS = {
    "register_product",
    "register_warehouse",
    "add_bin",
    "create_purchase_order",
    "submit_purchase_order",
    "receive_purchase_order",
    "close_purchase_order",
    "move",
    "create_sales_order",
    "allocate_sales_order",
    "ship_sales_order",
    "cancel_sales_order",
    "return_sales_order",
    "issue",
    "transfer",
    "count",
    "adjust",
    "set_lot_status",
    "write_off_expired",
}


def seed(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["demo", "seed", *args], env={"LEDGER_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


def unique_slug() -> str:
    return f"demo-{uuid.uuid4().hex[:10]}"


def commands_in(out: str) -> dict[str, int]:
    line = next(line for line in out.splitlines() if line.startswith("commands: "))
    pairs = (item.rsplit(" ", 1) for item in line.removeprefix("commands: ").split(", "))
    return {name: int(n) for name, n in pairs}


def reasons(store: LedgerStore, slug: str) -> set[str]:
    """Why stock arrived and left: receipt, transfer, count, sale, damage, expiry..."""
    return {
        orjson.loads(event.state)["reason"]
        for event in store.iter_events(tenant_id_for(slug))
        if event.topic in ("domain.stock:StockItem.Received", "domain.stock:StockItem.Removed")
    }


def topics(store: LedgerStore, slug: str) -> list[str]:
    return [event.topic for event in store.iter_events(tenant_id_for(slug))]


def test_a_seeded_tenant_holds_a_wholesalers_catalogue_and_every_kind_of_activity(
    database_url: str,
) -> None:
    slug = unique_slug()
    code, out, err = seed(database_url, "--tenant", slug, "--events", str(EVENTS))
    assert (code, err) == (0, "")
    assert set(commands_in(out)) >= COMMANDS
    assert out.rstrip().endswith("ok: the hash chain matches every stored payload")
    with open_store(database_url) as store:
        head = store.head(tenant_id_for(slug)).position
        assert head >= EVENTS
        assert f"checked to position: {head}" in out
        assert store.verify(tenant_id_for(slug)).ok
        inventory = Ledger(store).app(tenant_id_for(slug))
        assert [inventory.product(item.sku).sku for item in demo.CATALOG] == list(demo.SKUS)
        assert {inventory.warehouse(code).code for code, *_ in demo.WAREHOUSES} == {"BER1", "HAM1"}
        kinds = {"receipt", "transfer", "count", "sale", "damage", "expiry", "return"}
        assert kinds <= reasons(store, slug)
        assert "domain.lots:Lot.StatusChanged" in topics(store, slug)


def test_the_same_seed_gives_the_same_events_and_another_seed_other_events(
    database_url: str,
) -> None:
    slugs = [unique_slug() for _ in range(3)]
    for slug, rng_seed in zip(slugs, ("11", "11", "12"), strict=True):
        assert seed(database_url, "--tenant", slug, "--events", "120", "--seed", rng_seed)[0] == 0
    with open_store(database_url) as store:
        first, again, other = (topics(store, slug) for slug in slugs)
    assert first == again
    assert first != other


def test_a_tenant_with_records_is_not_seeded_again(sqlite_url: str) -> None:
    slug = unique_slug()
    seed(sqlite_url, "--tenant", slug, "--events", "1")
    with open_store(sqlite_url) as store:
        head = store.head(tenant_id_for(slug)).position
    code, out, err = seed(sqlite_url, "--tenant", slug, "--events", "1")
    assert (code, out) == (1, "")
    assert err == f"error: tenant {slug!r} already holds records; seed a new tenant (--tenant)\n"
    with open_store(sqlite_url) as store:
        assert store.head(tenant_id_for(slug)).position == head


def test_exist_ok_leaves_a_tenant_with_records_as_it_is(sqlite_url: str) -> None:
    slug = unique_slug()
    seed(sqlite_url, "--tenant", slug, "--events", "1")
    with open_store(sqlite_url) as store:
        head = store.head(tenant_id_for(slug)).position
    code, out, _ = seed(sqlite_url, "--tenant", slug, "--events", "1", "--exist-ok")
    assert code == 0
    assert "already holds records; nothing seeded" in out
    assert f"checked to position: {head}" in out
    with open_store(sqlite_url) as store:
        assert store.head(tenant_id_for(slug)).position == head


def test_an_existing_empty_tenant_is_seeded(sqlite_url: str) -> None:
    slug = unique_slug()
    runner.invoke(app, ["tenant", "create", slug], env={"LEDGER_DATABASE_URL": sqlite_url})
    code, out, _ = seed(sqlite_url, "--tenant", slug, "--events", "1")
    assert code == 0
    assert "appended " in out


def test_expiry_dates_follow_the_clock_so_a_seed_works_whenever_it_runs(sqlite_url: str) -> None:
    slug = unique_slug()
    with open_store(sqlite_url) as store:
        tenant = tenant_id_for(slug)
        later = datetime(2031, 2, 28, 23, 30, tzinfo=UTC)
        inventory = LedgerApplication(tenant, store.factory_for(tenant), clock=lambda: later)
        inventory.create_tenant(slug, None, "Europe/Berlin", EventMetadata())
        summary = demo.seed(inventory, events=60, rng_seed=3, meta=EventMetadata())
        assert summary.events >= 60
        assert summary.commands["write_off_expired"] >= 1
        assert summary.commands["ship_sales_order"] >= 1
        expiries = [
            expiry
            for item in demo.CATALOG
            if item.shelf_life is not None
            for code, *_ in demo.WAREHOUSES
            for expiry in getattr(inventory.stock_item(item.sku, code), "expiry", {}).values()
        ]
        assert expiries
        assert all(
            later.date() - timedelta(days=3) <= e <= later.date() + timedelta(days=90)
            for e in expiries
        )
