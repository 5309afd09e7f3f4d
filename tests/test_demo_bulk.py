"""Bulk demo seeding on SQLite and PostgreSQL: the same trade as one command at a time, written in
batches with positions, hash chain, idempotency records and snapshots a save one by one makes."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Repository
from sqlalchemy import Engine
from typer.testing import CliRunner

from domain.errors import ValidationFailed
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.ordering import OrderResult
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import demo
from ledger.cli import app as cli
from ledger.demo_bulk import BulkLedgerApplication, bulk_application
from projections.audit_log import AuditLog
from projections.catalog import Catalog
from projections.lots import Lots
from projections.movements import Movements
from projections.orders import Orders
from projections.runner import Runner
from projections.stock_levels import StockLevels
from tests.test_projections import (
    check_audit_log,
    check_incoming_and_available,
    check_orders,
    folded,
    folded_lots,
    moved,
    on_hand_by_place,
    projected,
    projected_lots,
)

META = EventMetadata()


def new_tenant(store: LedgerStore, snapshot_interval: int = 20) -> LedgerApplication:
    slug = f"bulk-{uuid.uuid4().hex[:10]}"
    app = LedgerApplication(
        tenant_id_for(slug),
        store.factory_for(tenant_id_for(slug)),
        snapshot_interval=snapshot_interval,
    )
    app.create_tenant(slug, None, demo.TIMEZONE, META)
    return app


def seeded_in_bulk(
    store: LedgerStore, events: int, *, flush_events: int = 37, snapshot_interval: int = 3
) -> tuple[LedgerApplication, demo.SeedSummary, BulkLedgerApplication]:
    """A tenant seeded through a bulk application that writes every few dozen events and
    snapshots every few versions (so saves cross snapshot versions within a save, too)."""
    app = new_tenant(store, snapshot_interval)
    with bulk_application(app, flush_events=flush_events) as bulk:
        summary = demo.seed(bulk, events=events, meta=META, bulk=False)
    return app, summary, bulk


def shape(store: LedgerStore, tenant_id: UUID) -> list[tuple[str, int]]:
    return [(e.topic, e.version) for e in store.iter_events(tenant_id)]


def test_a_bulk_seed_runs_the_same_commands_and_records_the_same_events_as_one_by_one(
    store: LedgerStore,
) -> None:
    one_by_one, in_bulk = new_tenant(store), new_tenant(store)
    first = demo.seed(one_by_one, events=400, rng_seed=5, meta=META, bulk=False)
    second = demo.seed(in_bulk, events=400, rng_seed=5, meta=META, bulk=True)
    assert (first.commands, first.refused, first.events) == (
        second.commands,
        second.refused,
        second.events,
    )
    assert shape(store, one_by_one.tenant_id) == shape(store, in_bulk.tenant_id)


def test_a_bulk_seeded_tenant_has_a_sound_hash_chain_and_an_idempotency_record_per_command(
    store: LedgerStore,
) -> None:
    app, summary, _ = seeded_in_bulk(store, 300)
    assert store.verify(app.tenant_id).ok
    events = list(store.iter_events(app.tenant_id))
    assert [e.position for e in events] == list(range(1, summary.head_position + 1))
    last: dict[str, int] = {}
    for event in events[1:]:  # after the tenant's own creation
        last[event.header["idempotency_key"]] = event.position
    recorder: Any = store.application_recorder(app.tenant_id)
    assert len(last) > sum(summary.commands.values()) * 0.9  # some commands append nothing
    for key, position in last.items():
        record = recorder.select_idempotency(key)
        assert record is not None
        assert record.position == position


def test_the_projections_of_a_bulk_seeded_tenant_equal_the_fold_of_its_events(
    store: LedgerStore, engine: Engine
) -> None:
    app, _, _ = seeded_in_bulk(store, 300)
    runner = Runner(
        store,
        engine,
        [StockLevels(), Lots(), Movements(), Orders(), AuditLog(), Catalog()],
        batch_size=101,
    )
    runner.run_tenant(app.tenant_id)
    assert projected(engine, app.tenant_id) == folded(app)
    assert projected_lots(engine, app.tenant_id) == folded_lots(app)
    assert moved(engine, app.tenant_id) == on_hand_by_place(app)
    check_orders(engine, app)
    check_incoming_and_available(engine, app)
    check_audit_log(engine, store, app.tenant_id)


def test_a_bulk_seed_snapshots_every_interval_and_each_snapshot_equals_the_fold(
    store: LedgerStore,
) -> None:
    app, _, bulk = seeded_in_bulk(store, 300, snapshot_interval=3)
    assert bulk.deferred_taken > 0  # some were due at an earlier version of their save
    snapshots = store.snapshot_recorder(app.tenant_id)
    events_only: Repository[UUID] = Repository(event_store=app.events)
    snapshotted = tuple(app.snapshotting_intervals)
    checked = 0
    for stream_id in dict.fromkeys(e.stream_id for e in store.iter_events(app.tenant_id)):
        latest: Any = events_only.get(stream_id)
        versions = [s.originator_version for s in snapshots.select_events(stream_id)]
        due = list(range(3, latest.version + 1, 3)) if isinstance(latest, snapshotted) else []
        assert versions == due, stream_id
        for stored in snapshots.select_events(stream_id):
            taken: Any = app.mapper.to_domain_event(stored)
            from_snapshot = taken.mutate(None)
            folded_state: Any = events_only.get(stream_id, version=stored.originator_version)
            assert vars(from_snapshot) == vars(folded_state)
            checked += 1
    assert checked > 30


def test_a_refused_command_leaves_no_change_in_the_aggregates_held_in_memory(
    store: LedgerStore,
) -> None:
    app = new_tenant(store)
    with bulk_application(app) as bulk:
        demo.seed(bulk, events=120, meta=META, bulk=False)
        sku, warehouse = demo.CATALOG[6].sku, "BER1"
        before = bulk.stock_item(sku, warehouse)
        assert before is not None
        version, lot = before.version, next(iter(before.status))

        def action() -> tuple[list[Any], OrderResult]:
            item = bulk.stock_item(sku, warehouse)
            assert item is not None
            item.set_lot_status(lot, "hold")  # changed, then the command is refused
            raise ValidationFailed("probe", "refused after a change")

        with pytest.raises(ValidationFailed):
            bulk.run("probe", {}, META, action, OrderResult.replay)
        after = bulk.stock_item(sku, warehouse)
        assert after is not None
        assert (after.version, after.status[lot], after.pending_events) == (version, "released", [])
        assert bulk.refused_after_changes == 1
    assert store.verify(app.tenant_id).ok


def test_a_bulk_application_refuses_to_write_over_another_writers_events(
    store: LedgerStore,
) -> None:
    app = new_tenant(store)
    bulk = BulkLedgerApplication.like(app)
    try:
        bulk.register_warehouse("WH-A", "A", "UTC", META)
        app.register_warehouse("WH-B", "B", "UTC", META)  # another writer, meanwhile
        with pytest.raises(Exception, match="written meanwhile"):
            bulk.flush(wait=True)
    finally:
        bulk.abandon()
    assert store.verify(app.tenant_id).ok
    assert [e.topic.rpartition(":")[2] for e in store.iter_events(app.tenant_id)][-1] == (
        "Warehouse.Registered"
    )


def test_ledger_demo_seed_runs_a_large_seed_in_bulk_and_verifies_it(sqlite_url: str) -> None:
    slug = f"demo-{uuid.uuid4().hex[:10]}"
    result = CliRunner().invoke(
        cli,
        ["demo", "seed", "--tenant", slug, "--events", str(demo.BULK_EVENTS)],
        env={"LEDGER_DATABASE_URL": sqlite_url},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("ok: the hash chain matches every stored payload")
    appended = next(line for line in result.stdout.splitlines() if line.startswith("appended "))
    assert int(appended.split()[1]) >= demo.BULK_EVENTS
