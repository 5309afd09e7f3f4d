"""The ``ledger`` command line: database migrations, tenants, audit, read models, demo data."""

from __future__ import annotations

import time
from typing import Annotated
from uuid import UUID

import typer

from domain.errors import AlreadyExists, NotFound
from domain.ids import tenant_id_for
from domain.tenant import Tenant
from eventstore.store import LedgerStore
from ledger import demo, migrate
from ledger.apikey_cli import apikey_app
from ledger.audit_cli import audit_app, verify_chain
from ledger.cli_support import cli_meta, fail, load_settings, opened_ledger
from ledger.kafka_cli import consume_app, db_new_store_id, relay, webhooks_app
from ledger.projections_cli import projections_app
from ledger.rebuild_cli import projections_rebuild
from ledger.sealing import new_key
from ledger.serve_cli import serve

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants: the unit of isolation.")
demo_app = typer.Typer(no_args_is_help=True, help="Demo data to try the ledger with.")
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(audit_app, name="audit")
app.add_typer(demo_app, name="demo")
app.add_typer(projections_app, name="projections")
app.add_typer(apikey_app, name="apikey")
app.command("serve")(serve)
app.command("relay")(relay)
app.add_typer(consume_app, name="consume")
app.add_typer(webhooks_app, name="webhooks")
db_app.command("new-store-id")(db_new_store_id)


@app.command("secret-key")
def secret_key() -> None:
    """Prints a new key for LEDGER_SECRET_KEY (it seals webhook secrets in events)."""
    typer.echo(new_key())


_COMMANDS = (projections_rebuild,)  # registered on projections_app


@db_app.command("upgrade")
def db_upgrade(
    partitions: Annotated[
        int | None,
        typer.Option(help="Hash partitions of the events table, when it is first created."),
    ] = None,
) -> None:
    """Applies every pending migration (creates the schema on first use)."""
    settings = load_settings()
    count = partitions if partitions is not None else settings.event_partitions
    if not 1 <= count <= 1024:
        fail("--partitions must be between 1 and 1024")
    try:
        migrate.upgrade(settings.sqlalchemy_url, count)
        revision = migrate.current_revision(settings.sqlalchemy_url)
    except Exception as error:
        fail(f"migration failed: {str(error).splitlines()[0]}")
    typer.echo(f"database at revision {revision}")


@db_app.command("current")
def db_current() -> None:
    """Prints the database's schema revision and the one this code expects."""
    settings = load_settings()
    try:
        found = migrate.current_revision(settings.sqlalchemy_url)
    except Exception as error:
        fail(f"database: {str(error).splitlines()[0]}")
    typer.echo(f"current: {found or 'none'}  expected: {migrate.expected_revision()}")


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Argument(help="Lowercase letters, digits and hyphens.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug).")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the business.")] = "UTC",
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Print the id of an existing tenant, exit 0.")
    ] = False,
) -> None:
    """Registers a tenant and prints its id."""
    with opened_ledger() as ledger:
        tenant_id = tenant_id_for(slug)
        try:
            ledger.app(tenant_id).create_tenant(slug, name, timezone, cli_meta())
        except AlreadyExists:
            if not exist_ok:
                raise
        typer.echo(str(tenant_id))


@tenant_app.command("list")
def tenant_list() -> None:
    """Lists the tenants with their id, time zone and head position."""
    with opened_ledger() as ledger:
        rows = []
        for head in ledger.store.heads():
            try:
                tenant: Tenant = ledger.app(head.tenant_id).load(head.tenant_id, Tenant)
            except NotFound:
                continue
            rows.append(
                (str(tenant.id), tenant.slug, tenant.timezone, str(head.position), tenant.name)
            )
        if not rows:
            typer.echo("no tenants yet; create one with `ledger tenant create SLUG`")
            return
        header = ("ID", "SLUG", "TIMEZONE", "POSITION", "NAME")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for row in [header, *rows]:
            padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            typer.echo("  ".join([*padded, row[4]]))


# Typer keeps the line breaks of a help text's later paragraphs, so each is one line here.
SEED_HELP = (
    "Fills a new or empty tenant with a wholesaler's stock: 6 FEFO food and 6 FIFO hardware SKUs,"
    " two warehouses with zones and bins, and a week of receipts, put-aways, orders, issues,"
    " transfers, counts, damage, holds and write-offs; then verifies the hash chain."
    "\n\nA tenant that has recorded anything besides its creation and settings is refused"
    " (exit 1; with --exist-ok it is left as it is, exit 0): events cannot be deleted, so demo"
    " data must never mix with real records. To seed again, name another --tenant."
)


@demo_app.command("seed", help=SEED_HELP)
def demo_seed(
    tenant: Annotated[str, typer.Option(help="The tenant's slug (created when missing).")] = "demo",
    events: Annotated[int, typer.Option(min=1, help="Append at least this many events.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and --events, same events")] = 7,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Leave a tenant that holds records as it is, exit 0.")
    ] = False,
) -> None:
    """Seeds demo data into a new or empty tenant (see SEED_HELP)."""
    with opened_ledger() as ledger:
        tenant_id = tenant_id_for(tenant)
        inventory = ledger.app(tenant_id)
        try:
            inventory.create_tenant(tenant, "Demo Wholesale", demo.TIMEZONE, cli_meta())
        except AlreadyExists:
            if holds_records(ledger.store, tenant_id):
                if not exist_ok:
                    fail(f"tenant {tenant!r} already holds records; seed a new tenant (--tenant)")
                typer.echo(f"tenant: {tenant} ({tenant_id}) already holds records; nothing seeded")
                verify_chain(ledger.store, tenant_id)
                return
        started = time.perf_counter()
        summary = demo.seed(inventory, events=events, rng_seed=seed, meta=cli_meta())
        typer.echo(f"tenant: {tenant} ({tenant_id})")
        print_summary(summary, time.perf_counter() - started)
        verify_chain(ledger.store, tenant_id)


def print_summary(summary: demo.SeedSummary, seconds: float) -> None:
    first, head = summary.first_position + 1, summary.head_position
    typer.echo(f"appended {summary.events} events (positions {first}-{head}) in {seconds:.1f} s")
    typer.echo(f"commands: {_counts(summary.commands)}")
    typer.echo(f"refused by stock rules, skipped: {_counts(summary.refused) or 'none'}")


def holds_records(store: LedgerStore, tenant_id: UUID) -> bool:
    """Whether the tenant has recorded anything besides its own creation and settings."""
    return any(not e.topic.startswith("domain.tenant:") for e in store.iter_events(tenant_id))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
