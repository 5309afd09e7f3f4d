"""PostgreSQL row-level security: a plain role with a tenant set sees and writes only its rows."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.exc import ProgrammingError

from eventstore.postgres import PostgresLedgerStore
from ledger import read_side
from ledger.settings import Settings
from projections.alert_records import AlertRecordRow
from projections.schema import Base
from projections.stock_levels import stock_levels
from projections.tenancy import tenant_scope
from projections.webhook_log import WebhookDeliveryRow, WebhookSubscriptionRow
from tests.test_projections import seeded

pytestmark = pytest.mark.postgres
rls = importlib.import_module("migrations.versions.0010_row_level_security")
barcodes = importlib.import_module("migrations.versions.0011_barcodes")
#: Every table holding tenants' rows under the tenant-isolation policy (migrations 0010-0015).
PROTECTED = (
    *rls.TABLES,
    *barcodes.TABLES,
    WebhookDeliveryRow.__tablename__,
    AlertRecordRow.__tablename__,
    WebhookSubscriptionRow.__tablename__,
)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(Settings(database_url=pg_url).sqlalchemy_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def reader(engine: Engine) -> Iterator[str]:
    """A role that neither owns the read models nor bypasses row-level security."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS"))
        for table in PROTECTED:
            conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}"))
    yield role
    with engine.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))


def tenants_seen(conn: Connection, table: str) -> dict[uuid.UUID, int]:
    rows = conn.execute(text(f"SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id"))
    return {tenant: int(count) for tenant, count in rows}


def test_every_read_model_table_is_protected(engine: Engine) -> None:
    tables = {name for name, table in Base.metadata.tables.items() if "tenant_id" in table.c}
    assert set(PROTECTED) == tables
    with engine.connect() as conn:
        protected = {
            name
            for name, enabled in conn.execute(
                text("SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(:t)"),
                {"t": list(tables)},
            )
            if enabled
        }
    assert protected == tables


def test_a_plain_role_sees_only_the_tenant_set_for_its_transaction(
    pg_url: str, engine: Engine, reader: str
) -> None:
    with PostgresLedgerStore(pg_url, pool_size=4) as store:
        a, b = seeded(store, 120), seeded(store, 120, rng_seed=5)
        runner = read_side.runner(store, engine)
        runner.run_tenant(a.tenant_id)
        runner.run_tenant(b.tenant_id)
    with engine.connect() as conn:  # the owner: every tenant
        everything = {table: tenants_seen(conn, table) for table in rls.TABLES}
    nonempty = [t for t in rls.TABLES if everything[t].get(a.tenant_id)]
    assert {"rm_stock_levels", "rm_lots", "rm_movements", "rm_audit_log"} <= set(nonempty)

    for tenant in (a.tenant_id, b.tenant_id):
        with engine.begin() as conn:
            tenant_scope(conn, tenant, role=reader)
            for table in rls.TABLES:
                seen = tenants_seen(conn, table)
                expected = everything[table].get(tenant)
                assert seen == ({tenant: expected} if expected else {}), table
            levels = stock_levels(conn, tenant, limit=1000)
            assert levels
            assert stock_levels(conn, b.tenant_id if tenant == a.tenant_id else a.tenant_id) == []

    with engine.begin() as conn:  # no tenant set: nothing at all
        conn.execute(text(f"SET LOCAL ROLE {reader}"))
        assert all(tenants_seen(conn, table) == {} for table in rls.TABLES)


def test_a_plain_role_cannot_write_or_move_rows_into_another_tenant(
    pg_url: str, engine: Engine, reader: str
) -> None:
    with PostgresLedgerStore(pg_url, pool_size=4) as store:
        a, b = seeded(store, 60), seeded(store, 60, rng_seed=9)
        read_side.runner(store, engine).run_tenant(a.tenant_id)
        read_side.runner(store, engine).run_tenant(b.tenant_id)
    with engine.begin() as conn:
        tenant_scope(conn, a.tenant_id, role=reader)
        moved = conn.execute(
            text("UPDATE rm_stock_levels SET on_hand = 0 WHERE tenant_id = :b"),
            {"b": b.tenant_id},
        )
        assert moved.rowcount == 0  # B's rows are invisible, so nothing is touched
    with engine.begin() as conn:
        tenant_scope(conn, a.tenant_id, role=reader)
        with pytest.raises(ProgrammingError, match="row-level security"):
            conn.execute(
                text("UPDATE rm_stock_levels SET tenant_id = :b WHERE tenant_id = :a"),
                {"a": a.tenant_id, "b": b.tenant_id},
            )
        conn.rollback()


def test_a_role_name_is_checked_before_it_reaches_sql(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="not a role name"):
        tenant_scope(conn, uuid.uuid4(), role='x"; DROP TABLE rm_lots; --')
