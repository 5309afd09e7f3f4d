"""`ledger projections run` and `status` on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from domain.ids import tenant_id_for
from ledger import read_side
from ledger.cli import app
from tests.following import (
    caught_up,
    eventually,
    follow_command,
    on_hand,
    open_engine,
    open_store,
    own_postgres,
    receive,
    stocked_tenant,
    stop_process,
)

runner = CliRunner()


def invoke(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"LEDGER_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


def status_of(out: str, slug: str) -> dict[str, tuple[int, int, int, str]]:
    rows = {}
    for line in out.splitlines()[1:]:
        name, tenant, position, head, lag, state = line.split(maxsplit=5)
        if tenant == slug:
            rows[name] = (int(position), int(head), int(lag), state)
    return rows


def test_run_catches_every_projection_up_and_status_shows_no_lag(database_url: str) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert invoke(database_url, "demo", "seed", "--tenant", slug, "--events", "80")[0] == 0
    code, out, _ = invoke(database_url, "projections", "status")
    assert code == 0
    before = status_of(out, slug)
    # without Kafka settings, alerts and webhook deliveries are fed in-process beside them
    assert set(before) == {p.name for p in read_side.projections()} | {"alerts", "webhooks"}
    assert all(lag > 0 for _, _, lag, _ in before.values())

    code, out, err = invoke(database_url, "projections", "run", "--batch", "17")
    # Other tests' tenants in a shared database may hold tampered events (a refusal there
    # makes the exit status 1); this tenant's projections must all have caught up.
    assert out.startswith("processed ")
    assert str(tenant_id_for(slug)) not in err
    assert code == (1 if err else 0)
    code, out, _ = invoke(database_url, "projections", "status")
    after = status_of(out, slug)
    assert all(lag == 0 and state == "ok" for _, _, lag, state in after.values())
    assert {position for position, _, _, _ in after.values()} == {before["lots"][1]}


def test_a_bad_batch_size_is_a_usage_error(sqlite_url: str) -> None:
    code, _, err = invoke(sqlite_url, "projections", "run", "--batch", "0")
    assert code == 2
    assert "--batch" in err


@pytest.fixture
def own_pg(pg_server: str) -> Iterator[str]:
    with own_postgres(pg_server) as url:
        yield url


@pytest.mark.parametrize(
    ("database", "signum"),
    [
        ("sqlite_url", signal.SIGINT),
        pytest.param("own_pg", signal.SIGTERM, marks=pytest.mark.postgres),
    ],
)
def test_following_ends_cleanly_on_sigterm_or_ctrl_c(
    request: pytest.FixtureRequest, database: str, signum: signal.Signals
) -> None:
    url = str(request.getfixturevalue(database))
    with open_store(url) as store:
        tenant = stocked_tenant(store, "sig")
        receive(tenant, 2)
        engine = open_engine(url)
        command, env = follow_command(url, "--interval", "0.05")
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            eventually(lambda: caught_up(engine, store, tenant.tenant_id), "the first pass")
            receive(tenant, 3)
            eventually(lambda: on_hand(engine, tenant.tenant_id) == 5, "the follower")
            process.send_signal(signum)
            out, err = process.communicate(timeout=30)
        finally:
            stop_process(process)
            engine.dispose()
    assert process.returncode == 0, err
    assert out.startswith("processed ")
    assert "Traceback" not in err
