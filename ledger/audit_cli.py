"""``ledger audit``: the hash chain, checkpoints, the export, the read models and past stock."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn
from uuid import UUID

import typer

from domain.ids import tenant_id_for
from eventstore.records import TenantHead
from eventstore.store import LedgerStore
from ledger import audit, read_side, stock_text
from ledger.cli_support import T, fail, load_settings, opened_ledger
from ledger.verify_models import ModelReport, ReadModelsBusy, check_read_models
from projections.history import lots_as_of, stock_levels_as_of
from projections.stock_fold import LevelState, LotState, UnknownStockEvent, UnopenedStream

audit_app = typer.Typer(
    no_args_is_help=True,
    help="Audit: hash chain, checkpoints, export, read models, stock as of any time.",
)
FOLD_ERRORS = (UnknownStockEvent, UnopenedStream)

TenantOption = Annotated[str, typer.Option(help="The tenant's slug.")]


# Typer keeps the line breaks of a help text's later paragraphs, so each is one line here.
VERIFY_HELP = (
    "Recomputes the tenant's hash chain, then compares the stock levels and lots read models"
    " with the events."
    "\n\nExit 1 at the first position where the chain breaks, or on any difference between a"
    " read model and the events, each listed. Each read model is compared at the position it has"
    " reached, so one that merely lags is no difference; its lag is reported."
)


@audit_app.command("verify", help=VERIFY_HELP)
def audit_verify(
    tenant: TenantOption,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            metavar="POSITION:HEX",
            help="From `ledger audit checkpoint`: also fail unless the history leads to it.",
        ),
    ] = None,
) -> None:
    """Verifies the chain, the checkpoint and the read models (see VERIFY_HELP)."""
    expected = None if checkpoint is None else parsed(audit.parse_checkpoint, checkpoint)
    settings = load_settings()
    with opened_ledger() as ledger:
        tenant_id = known_tenant(ledger.store, tenant).tenant_id
        typer.echo(f"tenant: {tenant} ({tenant_id})")
        check_chain(ledger.store, tenant_id)
        if expected is not None:
            problem = audit.checkpoint_problem(ledger.store, tenant_id, expected)
            if problem is not None:
                fail(problem)
        engine = read_side.read_engine(settings)
        try:
            reports = check_read_models(ledger.store, engine, tenant_id)
        except (ReadModelsBusy, *FOLD_ERRORS) as error:
            fail(str(error))
        finally:
            engine.dispose()
        show_reports(reports)
        typer.echo("ok: the hash chain matches every stored payload")
        if expected is not None:
            typer.echo(f"ok: the history still leads to checkpoint {expected}")
        count = sum(len(report.differences) for report in reports)
        if count:
            fail(f"{count} difference{'s' * (count != 1)} between the read models and the ledger")


def show_reports(reports: Sequence[ModelReport]) -> None:
    for report in reports:
        typer.echo(report.summary())
        for line in [*report.notes(), *report.differences]:
            typer.echo(line)


@audit_app.command("checkpoint")
def audit_checkpoint(tenant: TenantOption) -> None:
    """Verifies the chain to the head and prints the head as a checkpoint to keep elsewhere."""
    with opened_ledger() as ledger:
        tenant_id = known_tenant(ledger.store, tenant).tenant_id
        result = audit.verify_to_head(ledger.store, tenant_id)
        if not result.ok:
            fail(f"first bad position: {result.first_bad_position} ({result.reason})")
        point = audit.Checkpoint(result.checked_to_position, result.head_hash)
        typer.echo(f"tenant: {tenant} ({tenant_id})")
        typer.echo(f"head position: {point.position}\nhead hash: {point.hash.hex()}")
        typer.echo(f"checkpoint: {point}")
        typer.echo(f"keep it outside the database; check with --checkpoint {point} later")


UntilOption = Annotated[
    str | None,
    typer.Option(
        metavar="TIME",
        help="Stop at the first event recorded after TIME: ISO 8601 with a UTC offset"
        " (2024-05-01T18:00:00+02:00), or a date for the end of that day in UTC.",
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write to FILE (atomically: complete or not at all), not stdout.",
    ),
]


@audit_app.command("export")
def audit_export(
    tenant: TenantOption, until: UntilOption = None, output: OutputOption = None
) -> None:
    """Writes the tenant's events as NDJSON with metadata, payloads and hashes (see README)."""
    moment = None if until is None else parsed(audit.parse_until, until)
    if output is not None and output.is_dir():
        fail(f"--output {str(output)!r} is a directory")
    with opened_ledger() as ledger:
        head = known_tenant(ledger.store, tenant)
        progress, target = audit.ExportProgress(total=head.position), str(output or "stdout")
        stdout = typer.get_binary_stream("stdout")
        try:
            with (
                audit.output_to(output, stdout) as out,
                audit.progress_display(progress.total, sys.stderr) as show,
            ):
                audit.export_events(
                    ledger.store, head.tenant_id, out, progress, until=moment, on_page=show
                )
        except OSError as error:
            fail(f"cannot write {target}: {error.strerror or error}")
        typer.echo("\n".join(audit.summary(progress, moment, target)), err=True)


# --- stock as of a time ------------------------------------------------------------------------

AtOption = Annotated[
    str,
    typer.Option(
        metavar="TIME",
        help="Business (effective) time: ISO 8601 with a UTC offset, a date for the end of that"
        " day in UTC, or `now`.",
    ),
]
KnownAtOption = Annotated[
    str | None,
    typer.Option(
        metavar="TIME",
        help="Count only what the ledger had recorded by TIME (same forms as --at;"
        " default: everything recorded).",
    ),
]
SkuOption = Annotated[str | None, typer.Option(help="Only this SKU.")]
WarehouseOption = Annotated[str | None, typer.Option(help="Only this warehouse.")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")]


@audit_app.command("stock-levels")
def audit_stock_levels(
    tenant: TenantOption,
    at: AtOption,
    known_at: KnownAtOption = None,
    sku: SkuOption = None,
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stock per SKU and warehouse as it was at a business time, computed from the events."""
    show_as_of(LEVELS, tenant, at, known_at, sku, warehouse, as_json)


@audit_app.command("lots")
def audit_lots(
    tenant: TenantOption,
    at: AtOption,
    known_at: KnownAtOption = None,
    sku: SkuOption = None,
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lots per bin as they were at a business time, computed from the events."""
    show_as_of(LOTS, tenant, at, known_at, sku, warehouse, as_json)


@dataclass(frozen=True)
class AsOfView:
    """What an as-of command shows: its rows' name, their columns, the query computing them."""

    what: str
    columns: Sequence[str]
    query: Callable[
        [LedgerStore, UUID, datetime, datetime | None, str | None, str | None],
        Sequence[LevelState | LotState],
    ]


LEVELS = AsOfView("stock levels", stock_text.LEVEL_COLUMNS, stock_levels_as_of)
LOTS = AsOfView("lots", stock_text.LOT_COLUMNS, lots_as_of)


def show_as_of(
    view: AsOfView,
    tenant: str,
    at: str,
    known_at: str | None,
    sku: str | None,
    warehouse: str | None,
    as_json: bool,
) -> None:
    moment = time_option(at, "--at")
    known = None if known_at is None else time_option(known_at, "--known-at")
    with opened_ledger() as ledger:
        tenant_id = known_tenant(ledger.store, tenant).tenant_id
        try:
            rows = view.query(ledger.store, tenant_id, moment, known, sku, warehouse)
        except FOLD_ERRORS as error:
            fail(str(error))
    if as_json:
        typer.echo(stock_text.json_lines(rows), nl=False)
        return
    recorded = "everything recorded" if known is None else f"recorded by {stock_text.text(known)}"
    typer.echo(f"tenant: {tenant} ({tenant_id})")
    typer.echo(f"{view.what} at {stock_text.text(moment)}, {recorded}")
    typer.echo(stock_text.table(rows, view.columns) if rows else f"no {view.what}\n", nl=False)


def time_option(text: str, option: str) -> datetime:
    """`now`, or a time as `audit.parse_time` reads it; else a one-line usage error (exit 2)."""
    if text.strip() == "now":
        return datetime.now(UTC)
    try:
        return audit.parse_time(text, option)
    except ValueError as error:
        usage_error(str(error))


def usage_error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


# --- shared ------------------------------------------------------------------------------------


def known_tenant(store: LedgerStore, slug: str) -> TenantHead:
    """The head of a tenant that has recorded its creation; else a one-line error."""
    head = store.head(tenant_id_for(slug))
    if head.position == 0:
        fail(f"tenant {slug!r} not found")
    return head


def parsed(parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError as error:
        fail(str(error))


def check_chain(store: LedgerStore, tenant_id: UUID) -> None:
    """Prints how far the chain was checked and its head; a one-line error where it breaks."""
    result = store.verify(tenant_id)
    typer.echo(f"checked to position: {result.checked_to_position}")
    typer.echo(f"head hash: {result.head_hash.hex()}")
    if not result.ok:
        fail(f"first bad position: {result.first_bad_position} ({result.reason})")


def verify_chain(store: LedgerStore, tenant_id: UUID) -> None:
    check_chain(store, tenant_id)
    typer.echo("ok: the hash chain matches every stored payload")
