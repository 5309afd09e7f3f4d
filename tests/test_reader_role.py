"""API reads on PostgreSQL run as `ledger_reader`, a role row-level security binds: a query that
forgot its tenant filter still sees only the caller's tenant, and never the event store."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.exc import ProgrammingError

from api.app import create_app
from api.pages import reader_role, scope
from ledger.settings import Settings
from tests.test_api_foundation import SECRET, bearer, head, seed, token

pytestmark = pytest.mark.postgres
ROLE = "ledger_reader"


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(Settings(database_url=pg_url).sqlalchemy_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def tenants(pg_url: str) -> tuple[UUID, UUID]:
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    return seed(pg_url, f"reader-a-{run}", 3), seed(pg_url, f"reader-b-{run}", 4)


def as_reader(engine: Engine) -> SimpleNamespace:
    """What `scope` needs of a request: an app whose reads switch to the reader role."""
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(read_role=ROLE)))


def test_the_migrated_database_has_a_reader_that_cannot_bypass_row_level_security(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        bypass, superuser = conn.execute(
            text("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = :r"), {"r": ROLE}
        ).one()
    assert (bypass, superuser) == (False, False)
    assert reader_role(engine, ROLE) == ROLE
    assert reader_role(engine, "no_such_role_here") is None
    assert reader_role(engine, "") is None


def test_a_query_without_a_tenant_filter_sees_only_the_scoped_tenant(
    pg_url: str, engine: Engine, tenants: tuple[UUID, UUID]
) -> None:
    settings = Settings(database_url=pg_url, jwt_secret=SECRET)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:  # its read side fills the read models
        for tenant in tenants:
            wanted = head(pg_url, tenant)
            response = client.get(
                "/v1/stock-levels",
                params={"min_position": wanted},
                headers=bearer(token(tenant, ["auditor"])),
            )
            assert response.status_code == 200, response.text
        assert client.app.state.read_role == ROLE  # type: ignore[attr-defined]
    with engine.connect() as conn:
        owner_sees = set(conn.execute(text("SELECT DISTINCT tenant_id FROM rm_stock_levels")))
    assert {row[0] for row in owner_sees} >= set(tenants)
    for tenant in tenants:
        with engine.begin() as conn:
            scope(as_reader(engine), conn, tenant)  # type: ignore[arg-type]
            assert conn.execute(text("SELECT current_user")).scalar() == ROLE
            seen = conn.execute(text("SELECT DISTINCT tenant_id FROM rm_stock_levels"))
            assert [row[0] for row in seen] == [tenant]
            others = conn.execute(
                text("SELECT count(*) FROM rm_lots WHERE tenant_id <> :t"), {"t": tenant}
            )
            assert others.scalar() == 0


def test_the_reader_cannot_read_the_event_store_or_write_read_models(
    engine: Engine, tenants: tuple[UUID, UUID]
) -> None:
    with engine.begin() as conn:
        scope(as_reader(engine), conn, tenants[0])  # type: ignore[arg-type]
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("SELECT count(*) FROM ledger_events"))
        conn.rollback()
    with engine.begin() as conn:
        scope(as_reader(engine), conn, tenants[0])  # type: ignore[arg-type]
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("DELETE FROM rm_stock_levels"))
        conn.rollback()
