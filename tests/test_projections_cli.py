"""`ledger projections run` and `status` on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from domain.ids import tenant_id_for
from ledger import read_side
from ledger.cli import app

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
    assert set(before) == {p.name for p in read_side.projections()}
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
