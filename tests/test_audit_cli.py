"""`ledger audit export`, `checkpoint` and `verify --checkpoint`, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from typer.testing import CliRunner

from domain.ids import tenant_id_for
from eventstore.envelope import ZERO_HASH, chain_all
from ledger import audit, export_lines
from ledger.cli import app
from ledger.export_parallel import ExportFailed
from tests.conftest import open_store
from tests.tamper import tamper

runner = CliRunner()
EVENTS = 120
HEADER_FIELDS = ["stream_id", "version", "topic", "recorded_at", "effective_at", "actor"]
HEADER_FIELDS += ["request_id", "idempotency_key", "causation_id"]
LINE_FIELDS = ["position", *HEADER_FIELDS, "payload", "prev_hash", "hash"]
SET_PAYLOAD = "UPDATE ledger_events SET payload = %s WHERE tenant_id = %s AND position = %s"
SET_HASH = "UPDATE ledger_events SET hash = %s WHERE tenant_id = %s AND position = %s"
DELETE_ROW = "DELETE FROM ledger_events WHERE tenant_id = %s AND position = %s"
SET_HEAD_HASH = "UPDATE ledger_tenant_heads SET hash = %s WHERE tenant_id = %s AND position = %s"


def ledger(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"LEDGER_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class Seeded:
    """A tenant filled by `ledger demo seed`."""

    url: str
    slug: str
    head: int

    @property
    def tenant(self) -> UUID:
        return tenant_id_for(self.slug)

    def headers(self) -> list[dict[str, Any]]:
        with open_store(self.url) as store:
            return [event.header for event in store.iter_events(self.tenant)]


def seed(url: str) -> Seeded:
    slug = f"audit-{uuid.uuid4().hex[:10]}"
    code, _, err = ledger(url, "demo", "seed", "--tenant", slug, "--events", str(EVENTS))
    assert (code, err) == (0, "")
    with open_store(url) as store:
        return Seeded(url, slug, store.head(tenant_id_for(slug)).position)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def seeded(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Seeded:
    """One seeded tenant per backend, shared by the tests that only read it."""
    if request.param == "postgres":
        return seed(request.getfixturevalue("pg_url"))
    path = tmp_path_factory.mktemp("audit") / "ledger.db"
    shutil.copyfile(sqlite_template, path)
    return seed(f"sqlite:///{path}")


@pytest.fixture
def own_seeded(database_url: str) -> Seeded:
    """A seeded tenant of this test alone (it may be tampered with)."""
    return seed(database_url)


def export(seeded: Seeded, *args: str) -> list[dict[str, Any]]:
    code, out, err = ledger(seeded.url, "audit", "export", "--tenant", seeded.slug, *args)
    assert code == 0, err
    assert out.endswith("\n") or out == ""
    return [orjson.loads(line) for line in out.splitlines()]


def checkpoint_of(seeded: Seeded) -> str:
    code, out, _ = ledger(seeded.url, "audit", "checkpoint", "--tenant", seeded.slug)
    assert code == 0
    return next(line for line in out.splitlines() if line.startswith("checkpoint: ")).split()[1]


def verify(seeded: Seeded, checkpoint: str) -> tuple[int, str, str]:
    return ledger(
        seeded.url, "audit", "verify", "--tenant", seeded.slug, "--checkpoint", checkpoint
    )


# --- export ----------------------------------------------------------------------------------


def test_export_writes_one_line_per_event_in_position_order(seeded: Seeded) -> None:
    code, out, err = ledger(seeded.url, "audit", "export", "--tenant", seeded.slug)
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert code == 0
    assert seeded.head >= EVENTS
    assert [line["position"] for line in lines] == list(range(1, seeded.head + 1))
    assert all(list(line) == LINE_FIELDS for line in lines)
    assert (
        err.splitlines()[0]
        == f"exported {seeded.head} events (positions 1-{seeded.head}) to stdout"
    )


def test_exported_payloads_reproduce_every_hash_of_the_chain(seeded: Seeded) -> None:
    lines = export(seeded)
    previous = bytes(32)
    for line in lines:
        assert bytes.fromhex(line["prev_hash"]) == previous
        previous = hashlib.sha256(previous + base64.b64decode(line["payload"])).digest()
        assert line["hash"] == previous.hex()
    with open_store(seeded.url) as store:
        assert previous == store.head(seeded.tenant).hash


def test_exported_metadata_is_the_stored_payloads_header(seeded: Seeded) -> None:
    lines = export(seeded)
    headers = seeded.headers()
    assert [{name: line[name] for name in HEADER_FIELDS} for line in lines] == [
        {name: header[name] for name in HEADER_FIELDS} for header in headers
    ]
    assert lines[0]["topic"] == "domain.tenant:Tenant.Created"
    assert lines[1]["actor"]["kind"] == "cli"


def test_until_stops_at_the_first_event_recorded_after_it(seeded: Seeded) -> None:
    recorded = [datetime.fromisoformat(h["recorded_at"]) for h in seeded.headers()]
    cut = recorded[seeded.head // 2]
    kept = next(i for i, moment in enumerate(recorded) if moment > cut)
    assert 0 < kept < seeded.head
    berlin_summer = timezone(timedelta(hours=2))
    lines = export(seeded, "--until", cut.astimezone(berlin_summer).isoformat())
    assert [line["position"] for line in lines] == list(range(1, kept + 1))


def test_until_a_date_means_the_whole_of_that_day_in_utc(seeded: Seeded) -> None:
    recorded = [datetime.fromisoformat(h["recorded_at"]) for h in seeded.headers()]
    day = recorded[0].astimezone(UTC).date()
    on_that_day = sum(1 for moment in recorded if moment.astimezone(UTC).date() <= day)
    assert len(export(seeded, "--until", day.isoformat())) == on_that_day > 0
    assert export(seeded, "--until", (day - timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("2024-05-01T12:00:00", "error: --until '2024-05-01T12:00:00' needs a UTC offset"),
        ("yesterday", "error: --until 'yesterday' is not an ISO 8601 date or time"),
        ("2024-02-30", "error: --until '2024-02-30': day is out of range for month"),
    ],
)
def test_an_unclear_until_is_a_one_line_error(sqlite_url: str, until: str, message: str) -> None:
    ledger(sqlite_url, "tenant", "create", "acme")
    code, out, err = ledger(sqlite_url, "audit", "export", "--tenant", "acme", "--until", until)
    assert (code, out) == (1, "")
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


def test_output_writes_the_file_and_nothing_to_stdout(seeded: Seeded, tmp_path: Path) -> None:
    target = tmp_path / "audit.ndjson"
    args = ("audit", "export", "--tenant", seeded.slug)
    code, out, err = ledger(seeded.url, *args, "--output", str(target))
    assert (code, out) == (0, "")
    assert target.read_text() == ledger(seeded.url, *args)[1]
    assert f"to {target}" in err
    assert [path.name for path in tmp_path.iterdir()] == ["audit.ndjson"]


def test_an_unknown_tenant_is_a_one_line_error_and_writes_no_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    args = ("audit", "export", "--tenant", "nobody", "--output", str(exports / "out.ndjson"))
    assert ledger(sqlite_url, *args) == (1, "", "error: tenant 'nobody' not found\n")
    assert list(exports.iterdir()) == []


def test_an_interrupted_export_leaves_no_file_under_the_final_name(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "audit.ndjson"
    target.write_bytes(b"the previous export\n")
    written = 0
    real_line = export_lines.line

    def interrupted(*args: Any) -> bytes:
        nonlocal written
        written += 1
        if written > 50:
            raise KeyboardInterrupt
        return real_line(*args)

    monkeypatch.setattr(export_lines, "line", interrupted)
    code, _, _ = ledger(seeded.url, "audit", "export", "--tenant", seeded.slug, "-o", str(target))
    assert code != 0  # Ctrl-C: the CLI aborts
    assert written == 51
    assert target.read_bytes() == b"the previous export\n"
    assert [path.name for path in tmp_path.iterdir()] == ["audit.ndjson"]


def test_a_row_with_an_unreadable_header_is_exported_as_it_is(own_seeded: Seeded) -> None:
    tamper(own_seeded.url, SET_PAYLOAD, own_seeded.tenant, 7, b"no header here")
    lines = export(own_seeded)
    assert len(lines) == own_seeded.head
    assert base64.b64decode(lines[6]["payload"]) == b"no header here"
    assert lines[6]["topic"] is None
    assert lines[7]["prev_hash"] == lines[6]["hash"]


def test_a_deleted_row_leaves_a_gap_and_an_unknown_prev_hash(own_seeded: Seeded) -> None:
    tamper(own_seeded.url, DELETE_ROW, own_seeded.tenant, 5)
    lines = export(own_seeded)
    assert [line["position"] for line in lines][3:6] == [4, 6, 7]
    assert lines[4]["prev_hash"] is None
    assert lines[5]["prev_hash"] == lines[4]["hash"]


def test_pages_where_every_row_is_missing_do_not_end_the_export(own_seeded: Seeded) -> None:
    for position in range(11, 31):
        tamper(own_seeded.url, DELETE_ROW, own_seeded.tenant, position)
    progress = audit.ExportProgress(total=own_seeded.head)
    out = io.BytesIO()
    with open_store(own_seeded.url) as store:
        audit.export_events(store, own_seeded.tenant, out, progress, page_size=10)
    positions = [orjson.loads(line)["position"] for line in out.getvalue().splitlines()]
    assert positions == [*range(1, 11), *range(31, own_seeded.head + 1)]
    assert (progress.events, progress.last_position) == (own_seeded.head - 20, own_seeded.head)


def test_until_parses_offsets_and_dates_to_utc() -> None:
    assert audit.parse_until("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert audit.parse_until("2024-05-01") == datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)


# --- checkpoint and verify --checkpoint ------------------------------------------------------


def test_checkpoint_prints_the_head_and_verify_accepts_it(seeded: Seeded) -> None:
    checkpoint = checkpoint_of(seeded)
    with open_store(seeded.url) as store:
        head = store.head(seeded.tenant)
    assert checkpoint == f"{head.position}:{head.hash.hex()}"
    code, out, _ = verify(seeded, checkpoint)
    assert code == 0
    assert out.rstrip().endswith(f"ok: the history still leads to checkpoint {checkpoint}")


def test_a_checkpoint_still_holds_after_more_events_are_appended(database_url: str) -> None:
    slug = f"audit-{uuid.uuid4().hex[:10]}"
    ledger(database_url, "tenant", "create", slug)
    early = Seeded(database_url, slug, 1)
    checkpoint = checkpoint_of(early)
    assert checkpoint.startswith("1:")
    assert ledger(database_url, "demo", "seed", "--tenant", slug, "--events", "5")[0] == 0
    assert verify(early, checkpoint)[0] == 0


def test_a_wrong_hash_fails_verification(seeded: Seeded) -> None:
    position, digest = checkpoint_of(seeded).split(":")
    wrong = f"{position}:{digest[:-1]}{'0' if digest[-1] != '0' else '1'}"
    code, _, err = verify(seeded, wrong)
    assert code == 1
    assert err.startswith(f"error: checkpoint {position}: the history now leads to {digest}")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("beyond", [1, 10**15])
def test_a_position_beyond_the_head_fails_verification(seeded: Seeded, beyond: int) -> None:
    position = seeded.head + beyond
    code, _, err = verify(seeded, f"{position}:{'ab' * 32}")
    assert (code, err) == (
        1,
        f"error: checkpoint {position}: no event at position {position} (last: {seeded.head})\n",
    )


@pytest.mark.parametrize("checkpoint", ["12", "0:" + "ab" * 32, "3:xyz", "3:" + "ab" * 31])
def test_a_malformed_checkpoint_is_a_one_line_error(sqlite_url: str, checkpoint: str) -> None:
    ledger(sqlite_url, "tenant", "create", "acme")
    code, out, err = verify(Seeded(sqlite_url, "acme", 1), checkpoint)
    assert (code, out) == (1, "")
    assert err == (
        f"error: --checkpoint {checkpoint!r} is not POSITION:HEX"
        " (a position >= 1, a colon, 64 hex digits)\n"
    )


def test_verify_with_a_checkpoint_fails_after_a_row_is_tampered(own_seeded: Seeded) -> None:
    checkpoint = checkpoint_of(own_seeded)
    tamper(own_seeded.url, SET_PAYLOAD, own_seeded.tenant, 10, b'{"v":1}\n{}')
    code, _, err = verify(own_seeded, checkpoint)
    assert code == 1
    assert (
        err == "error: first bad position: 10 (hash does not match the payload and the"
        " previous hash)\n"
    )


def test_the_checkpoint_is_checked_against_the_payloads_not_the_stored_hashes(
    own_seeded: Seeded,
) -> None:
    checkpoint = audit.parse_checkpoint(checkpoint_of(own_seeded))
    tamper(own_seeded.url, SET_PAYLOAD, own_seeded.tenant, 10, b'{"v":1}\n{}')
    with open_store(own_seeded.url) as store:
        assert store.head(own_seeded.tenant).hash == checkpoint.hash  # stored hashes untouched
        problem = audit.checkpoint_problem(store, own_seeded.tenant, checkpoint)
    assert problem is not None
    assert problem.startswith(f"checkpoint {checkpoint.position}: the history now leads to")


def test_a_rewritten_history_passes_the_plain_check_but_not_the_checkpoint(
    own_seeded: Seeded,
) -> None:
    checkpoint = checkpoint_of(own_seeded)
    rewrite_consistently(own_seeded, position=own_seeded.head - 3)
    plain = ledger(own_seeded.url, "audit", "verify", "--tenant", own_seeded.slug)
    assert plain[0] == 0
    code, _, err = verify(own_seeded, checkpoint)
    assert code == 1
    assert err.startswith(f"error: checkpoint {own_seeded.head}: the history now leads to")
    assert len(err.splitlines()) == 1


def rewrite_consistently(seeded: Seeded, position: int) -> None:
    """What an intruder with database access would do: alter one payload, then rewrite every
    later hash and the head so that the chain in the database is whole again."""
    with open_store(seeded.url) as store:
        payloads = [payload for _, payload, _ in store.read_chain(seeded.tenant, 0, seeded.head)]
    payloads[position - 1] += b" "  # still valid JSON after the header: an invisible change
    hashes = chain_all(ZERO_HASH, payloads)
    tamper(seeded.url, SET_PAYLOAD, seeded.tenant, position, payloads[position - 1])
    for later in range(position, seeded.head + 1):
        tamper(seeded.url, SET_HASH, seeded.tenant, later, hashes[later - 1])
    tamper(seeded.url, SET_HEAD_HASH, seeded.tenant, seeded.head, hashes[-1])


# --- an export made by worker processes --------------------------------------------------------


def exported_bytes(
    seeded: Seeded, path: Path, workers: int, until: datetime | None = None, page_size: int = 7
) -> tuple[bytes, audit.ExportProgress]:
    with open_store(seeded.url) as store:
        progress = audit.ExportProgress(total=store.head(seeded.tenant).position)
        with audit.output_to(path, io.BytesIO()) as out:
            audit.export_events(
                store,
                seeded.tenant,
                out,
                progress,
                until=until,
                page_size=page_size,
                workers=workers,
            )
    return path.read_bytes(), progress


def test_an_export_by_workers_is_the_sequential_export_byte_for_byte(
    seeded: Seeded, tmp_path: Path
) -> None:
    alone, done_alone = exported_bytes(seeded, tmp_path / "alone.ndjson", workers=1)
    for workers, page_size in ((2, 7), (3, 50), (2, 1000)):
        shared, done = exported_bytes(
            seeded, tmp_path / f"shared-{workers}.ndjson", workers, page_size=page_size
        )
        assert shared == alone
        assert done == done_alone
    assert len(alone.splitlines()) == seeded.head


def test_an_export_by_workers_stops_where_until_cuts(seeded: Seeded, tmp_path: Path) -> None:
    recorded = [datetime.fromisoformat(h["recorded_at"]) for h in seeded.headers()]
    for cut in (recorded[0], recorded[seeded.head // 3], recorded[-1]):
        alone, done_alone = exported_bytes(seeded, tmp_path / "a.ndjson", 1, until=cut)
        shared, done = exported_bytes(seeded, tmp_path / "s.ndjson", 2, until=cut)
        assert shared == alone
        assert (done.events, done.last_position, done.cut_at) == (
            done_alone.events,
            done_alone.last_position,
            done_alone.cut_at,
        )


def test_an_export_by_workers_of_a_chain_missing_rows_matches_the_sequential(
    own_seeded: Seeded, tmp_path: Path
) -> None:
    # pages of 7: the row before the page (7) missing; two missing in a page (15, 16); one (30)
    for position in (7, 15, 16, 30):
        tamper(own_seeded.url, DELETE_ROW, own_seeded.tenant, position)
    tamper(own_seeded.url, SET_PAYLOAD, own_seeded.tenant, 21, b"no header here")
    alone, _ = exported_bytes(own_seeded, tmp_path / "a.ndjson", 1)
    shared, _ = exported_bytes(own_seeded, tmp_path / "s.ndjson", 2)
    assert shared == alone
    lines = [orjson.loads(line) for line in alone.splitlines()]
    assert [line["prev_hash"] is None for line in lines[6:8]] == [True, False]


def test_a_failing_export_worker_is_reported_and_leaves_no_file(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.ndjson"
    monkeypatch.setattr(
        "eventstore.sqlite.SQLiteLedgerStore.address",
        lambda self: ("sqlite", str(tmp_path / "missing" / "ledger.db")),
    )
    monkeypatch.setattr(
        "eventstore.postgres.PostgresLedgerStore.address",
        lambda self: ("postgresql", "postgresql://postgres@127.0.0.1:5432/no_such_database"),
    )
    with pytest.raises(ExportFailed, match="an export worker failed"):
        exported_bytes(seeded, target, workers=2)
    assert list(tmp_path.iterdir()) == []
