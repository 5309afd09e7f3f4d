"""``ledger projections``: read-model status and the runner."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated
from uuid import UUID

import typer

from domain.errors import NotFound
from domain.tenant import Tenant
from ledger import read_side
from ledger.cli_support import load_settings, opened_ledger
from ledger.reactions import Reactions
from ledger.wiring import Ledger
from projections.runner import Runner

projections_app = typer.Typer(no_args_is_help=True, help="Read models: status and the runner.")


@projections_app.command("status")
def projections_status() -> None:
    """Tracked position, head and lag per projection and tenant; failures named."""
    settings = load_settings()
    with opened_ledger() as ledger:
        engine = read_side.read_engine(settings)
        try:
            rows = read_side.runner(ledger.store, engine, settings=settings).progress()
            failures = read_side.failures(engine)
        finally:
            engine.dispose()
        if not rows:
            typer.echo("no tenants yet")
            return
        slugs = {row.tenant_id: _slug(ledger, row.tenant_id) for row in rows}
        typer.echo(f"{'PROJECTION':<14}{'TENANT':<24}{'POSITION':>10}{'HEAD':>10}{'LAG':>8}  STATE")
        for row in rows:
            failure = failures.get((row.projection, row.tenant_id))
            state = "ok" if failure is None else f"failed at {failure[0]}: {failure[1]}"
            typer.echo(
                f"{row.projection:<14}{slugs[row.tenant_id]:<24}{row.position:>10}"
                f"{row.head:>10}{row.lag:>8}  {state}"
            )


@projections_app.command("run")
def projections_run(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep applying new events until SIGTERM or Ctrl-C.")
    ] = False,
    interval: Annotated[
        float,
        typer.Option(min=0.05, help="Seconds between polls on SQLite (backing off while idle)."),
    ] = 0.5,
    safety_net: Annotated[
        float,
        typer.Option(
            min=0.5, help="Seconds between full passes while listening for events (PostgreSQL)."
        ),
    ] = 30.0,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Events per transaction.")] = 2000,
) -> None:
    """Catches every projection up with every tenant (and, with --follow, keeps doing so)."""
    settings = load_settings()
    with opened_ledger() as ledger:
        engine = read_side.read_engine(settings)
        runner = read_side.runner(ledger.store, engine, batch_size=batch, settings=settings)
        started = time.perf_counter()
        try:
            if follow:
                beside = Reactions(settings, engine)
                beside.start()
                try:
                    applied = _follow(runner, interval=interval, safety_net=safety_net)
                finally:
                    beside.stop()
            else:
                applied = runner.run_once()
        finally:
            engine.dispose()
        seconds = time.perf_counter() - started
        typer.echo(f"processed {applied} events (all projections together) in {seconds:.1f} s")
        failed = [p for p in runner.progress() if p.failed_at is not None]
        for progress in failed:
            typer.echo(
                f"error: {progress.projection} stopped at position {progress.failed_at}"
                f" of tenant {progress.tenant_id}; see `ledger projections status`",
                err=True,
            )
        if failed:
            raise typer.Exit(1)


def _follow(runner: Runner, *, interval: float, safety_net: float) -> int:
    """Follows until SIGTERM or SIGINT, which end the current batch and return cleanly."""
    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in handled}
    try:
        typer.echo("following new events; SIGTERM or Ctrl-C stops", err=True)
        return read_side.follow(runner, stop, interval=interval, safety_net=safety_net)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _slug(ledger: Ledger, tenant_id: UUID) -> str:
    try:
        tenant: Tenant = ledger.app(tenant_id).load(tenant_id, Tenant)
    except NotFound:
        return str(tenant_id)
    return tenant.slug
