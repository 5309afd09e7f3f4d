"""The ``ledger`` command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domain.ids import tenant_id_for
from ledger.cli import app
from ledger.migrate import expected_revision
from ledger.sealing import SealingUnavailable, sealer, unseal
from ledger.settings import Settings

runner = CliRunner()
HEAD = expected_revision()


def ledger(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"LEDGER_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


def unique_slug() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_db_upgrade_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert ledger(url, "db", "upgrade")[:2] == (0, f"database at revision {HEAD}\n")
    assert ledger(url, "db", "upgrade")[0] == 0
    assert f"current: {HEAD}" in ledger(url, "db", "current")[1]


def test_tenant_create_prints_the_tenant_id(database_url: str) -> None:
    slug = unique_slug()
    code, out, _ = ledger(
        database_url, "tenant", "create", slug, "--name", "Acme", "--timezone", "Europe/Berlin"
    )
    assert code == 0
    assert out.strip() == str(tenant_id_for(slug))


def test_a_duplicate_slug_is_a_one_line_error_with_a_non_zero_exit(database_url: str) -> None:
    slug = unique_slug()
    ledger(database_url, "tenant", "create", slug)
    code, out, err = ledger(database_url, "tenant", "create", slug)
    assert code == 1
    assert out == ""
    assert err == f"error: tenant {slug!r} already exists\n"


def test_exist_ok_prints_the_existing_tenants_id(database_url: str) -> None:
    slug = unique_slug()
    first = ledger(database_url, "tenant", "create", slug)[1]
    assert ledger(database_url, "tenant", "create", slug, "--exist-ok")[:2] == (0, first)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Not_A_Slug"], "error: slug: 'Not_A_Slug' must be"),
        (["ok-slug", "--timezone", "Mars/Olympus"], "error: timezone: 'Mars/Olympus' is not"),
        (["ok-slug", "--name", "   "], "error: name: must be"),
    ],
)
def test_invalid_tenant_input_is_refused_and_nothing_is_recorded(
    sqlite_url: str, args: list[str], message: str
) -> None:
    code, _, err = ledger(sqlite_url, "tenant", "create", *args)
    assert code == 1
    assert err.startswith(message)
    assert len(err.splitlines()) == 1
    assert "no tenants yet" in ledger(sqlite_url, "tenant", "list")[1]


def test_tenant_list_shows_registered_tenants(database_url: str) -> None:
    slug = unique_slug()
    ledger(
        database_url, "tenant", "create", slug, "--name", "Listed Ltd", "--timezone", "Asia/Tokyo"
    )
    code, out, _ = ledger(database_url, "tenant", "list")
    assert code == 0
    line = next(line for line in out.splitlines() if slug in line)
    assert line.split()[:4] == [str(tenant_id_for(slug)), slug, "Asia/Tokyo", "1"]
    assert line.endswith("Listed Ltd")


def test_audit_verify_reports_an_intact_chain(database_url: str) -> None:
    slug = unique_slug()
    ledger(database_url, "tenant", "create", slug)
    code, out, _ = ledger(database_url, "audit", "verify", "--tenant", slug)
    assert code == 0
    assert "checked to position: 1" in out
    assert out.rstrip().endswith("ok: the hash chain matches every stored payload")


def test_audit_verify_of_an_unknown_tenant_fails(sqlite_url: str) -> None:
    code, _, err = ledger(sqlite_url, "audit", "verify", "--tenant", "nobody")
    assert (code, err) == (1, "error: tenant 'nobody' not found\n")


def test_commands_refuse_a_database_that_was_never_migrated(tmp_path: Path) -> None:
    code, _, err = ledger(f"sqlite:///{tmp_path / 'empty.db'}", "tenant", "list")
    assert code == 1
    assert err == (
        f"error: database schema is at nothing, expected {HEAD}; run `ledger db upgrade`\n"
    )


def test_an_unsupported_database_url_is_a_one_line_error() -> None:
    code, _, err = ledger("mysql://localhost/x", "tenant", "list")
    assert code == 1
    assert err.startswith("error: LEDGER_DATABASE_URL:")
    assert len(err.splitlines()) == 1


def test_secret_key_prints_a_new_key_that_seals_and_opens_a_secret() -> None:
    first = runner.invoke(app, ["secret-key"])
    second = runner.invoke(app, ["secret-key"])
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert first.stdout != second.stdout
    settings = Settings(secret_key=first.stdout.strip())  # type: ignore[arg-type]
    sealed = sealer(settings)("whsec-0123456789abcdef")
    assert "0123456789abcdef" not in sealed
    assert unseal(settings, sealed) == "whsec-0123456789abcdef"
    other = Settings(secret_key=second.stdout.strip())  # type: ignore[arg-type]
    with pytest.raises(SealingUnavailable):
        unseal(other, sealed)
