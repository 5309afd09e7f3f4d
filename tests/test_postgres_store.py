"""PostgreSQL specifics: per-tenant write serialisation, hash partitions, partition pruning."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from domain.metadata import EventMetadata
from eventstore.envelope import ZERO_HASH, encode_payload, utc_now
from eventstore.postgres import CREATE_HEAD, INSERT_ONE, PostgresLedgerStore
from ledger import migrate
from ledger.settings import Settings
from ledger.wiring import Ledger
from tests.aggregates import Counter
from tests.pgserver import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    with PostgresLedgerStore(pg_url, pool_size=4) as store:
        yield Ledger(store, snapshot_interval=0)


def save_in_thread(ledger: Ledger, tenant: UUID, counter: Counter) -> threading.Thread:
    thread = threading.Thread(
        target=ledger.app(tenant).save, args=(counter,), kwargs={"meta": EventMetadata()}
    )
    thread.start()
    return thread


def test_an_open_write_of_one_tenant_never_delays_another_tenants_save(
    pg_ledger: Ledger, pg_url: str
) -> None:
    busy, other = uuid4(), uuid4()
    pg_ledger.app(busy).save(Counter(name="first"), meta=EventMetadata())
    held = psycopg.connect(pg_url)
    try:
        stream, topic = uuid4(), "tests.aggregates:Counter.Created"
        payload = encode_payload(busy, stream, 1, topic, b"{}", EventMetadata(), utc_now())
        held.execute(
            INSERT_ONE,
            {
                "tenant_id": busy,
                "originator_id": stream,
                "originator_version": 1,
                "topic": topic,
                "payload": payload,
            },
        )

        other_save = save_in_thread(pg_ledger, other, Counter(name="other"))
        other_save.join(timeout=10)
        same_tenant_save = save_in_thread(pg_ledger, busy, Counter(name="waits"))
        same_tenant_save.join(timeout=1)

        assert not other_save.is_alive()
        assert pg_ledger.store.head(other).position == 1
        assert same_tenant_save.is_alive(), "a second writer of the busy tenant must wait"
        held.commit()
    finally:
        held.close()
    same_tenant_save.join(timeout=10)
    assert not same_tenant_save.is_alive()
    assert [e.position for e in pg_ledger.store.read(busy)] == [1, 2, 3]
    assert pg_ledger.store.verify(busy).ok


def partitions_of(url: str, table: str) -> tuple[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT p.partstrat, (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid)"
            " FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
            " WHERE c.relname = %s",
            (table,),
        ).fetchone()
    assert row is not None, f"{table} is not partitioned"
    return str(row[0]), int(row[1])


def test_events_and_snapshots_are_hash_partitioned_by_tenant(pg_url: str) -> None:
    assert partitions_of(pg_url, "ledger_events") == ("h", 16)
    assert partitions_of(pg_url, "ledger_snapshots") == ("h", 16)
    with psycopg.connect(pg_url) as conn:
        key = conn.execute("SELECT pg_get_partkeydef('ledger_events'::regclass)").fetchone()
        primary_key = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'ledger_events'::regclass AND contype = 'p'"
        ).fetchone()
    assert key == ("HASH (tenant_id)",)
    assert primary_key == ("PRIMARY KEY (tenant_id, originator_id, originator_version)",)


def test_the_partition_count_is_chosen_at_migration_time(pg_server: str) -> None:
    with fresh_database(pg_server, f"ledger_parts_{uuid.uuid4().hex[:12]}") as url:
        migrate.upgrade(Settings(database_url=url).sqlalchemy_url, partitions=4)
        assert partitions_of(url, "ledger_events") == ("h", 4)


def scanned_relations(plan: Any) -> set[str]:
    found = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= scanned_relations(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= scanned_relations(item)
    return found


def test_loading_a_stream_reads_only_its_tenants_partition(
    pg_ledger: Ledger, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = uuid4()
    counter = Counter(name="pruned")
    pg_ledger.app(tenant).save(counter, meta=EventMetadata())
    captured: list[tuple[Any, Any]] = []
    execute = psycopg.Cursor.execute

    def capture(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kw: Any) -> Any:
        if "ledger_events" in str(query):
            captured.append((query, params))
        return execute(self, query, params, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", capture)
    pg_ledger.app(tenant).repository.get(counter.id)
    monkeypatch.undo()

    assert captured, "the stream read was not observed"
    with psycopg.connect(pg_url) as conn:
        for query, params in captured:
            plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
            assert plan is not None
            relations = scanned_relations(plan[0])
            assert len(relations) == 1, relations
            assert next(iter(relations)).startswith("ledger_events_p")


def test_the_first_save_of_a_tenant_creates_its_head_row(pg_ledger: Ledger, pg_url: str) -> None:
    tenant = uuid4()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM ledger_tenant_heads WHERE tenant_id = %s", (tenant,)
        ).fetchone() == (0,)
        conn.execute(CREATE_HEAD, (tenant, ZERO_HASH, ZERO_HASH))  # a racing creator is harmless
        conn.commit()
    pg_ledger.app(tenant).save(Counter(name="x"), meta=EventMetadata())
    assert pg_ledger.store.head(tenant).position == 1
