"""``ledger projections rebuild``: new read-model versions built beside the live ones, switched."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import IO, Annotated

import typer

from domain.ids import tenant_id_for
from ledger import read_side
from ledger.cli_support import fail, load_settings, opened_ledger
from ledger.projections_cli import projections_app
from projections.rebuild import Rebuild, RebuildFailed, RebuildProgress

#: Seconds between progress lines when stderr is not a terminal.
PROGRESS_EVERY_SECONDS = 5.0


@projections_app.command("rebuild")
def projections_rebuild(
    names: Annotated[
        list[str] | None, typer.Argument(help="Projections to rebuild (see `status`).")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Rebuild every projection.")] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (slug); default: all.")
    ] = None,
    batch: Annotated[
        int, typer.Option(min=1, max=200_000, help="Positions per batch (a transaction each).")
    ] = 50_000,
    abandon: Annotated[
        bool,
        typer.Option("--abandon", help="Drop an interrupted rebuild's new tables instead."),
    ] = False,
) -> None:
    """Builds new versions of the read models from position 0 while the current ones keep
    serving, then switches to them in one transaction. An interrupted rebuild resumes."""
    known = {p.name: p for p in read_side.projections()}
    if every == bool(names):
        fail("name the projections to rebuild, or give --all")
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        fail(f"unknown projection {unknown[0]!r}; known: {', '.join(known)}")
    chosen = list(known.values()) if every else [known[n] for n in dict.fromkeys(names or ())]
    settings = load_settings()
    with opened_ledger() as ledger:
        tenants = None
        if tenant is not None:
            tenant_id = tenant_id_for(tenant)
            if ledger.store.head(tenant_id).position == 0:
                fail(f"tenant {tenant!r} has no events")
            tenants = [tenant_id]
        engine = read_side.read_engine(settings)
        try:
            with Rebuild(ledger.store, engine, chosen, batch_size=batch) as rebuild:
                if abandon:
                    rebuild.drop()
                    typer.echo(f"dropped the new tables of {', '.join(p.name for p in chosen)}")
                    return
                with progress_display(sys.stderr) as show:
                    done = rebuild.run(tenants, show)
        except RebuildFailed as error:
            fail(f"{error}; nothing was switched (fix it and run again to resume)")
        finally:
            engine.dispose()
    typer.echo(
        f"rebuilt {', '.join(p.name for p in chosen)}: {done.done} events in"
        f" {done.seconds:.1f} s ({done.rate:,.0f} events/s); switched"
    )


@contextmanager
def progress_display(err: IO[str]) -> Iterator[Callable[[RebuildProgress], None]]:
    """A bar with events/s and ETA on a terminal, else a line every few seconds."""
    if not err.isatty():
        yield _PeriodicLine(err)
        return
    import rich.console  # noqa: PLC0415 (only on a terminal)
    import rich.progress as bars  # noqa: PLC0415

    with bars.Progress(
        bars.TextColumn("rebuilding"),
        bars.BarColumn(),
        bars.MofNCompleteColumn(),
        bars.TextColumn("{task.fields[rate]} events/s"),
        bars.TimeRemainingColumn(),
        console=rich.console.Console(file=err),
        transient=True,
    ) as bar:
        task = bar.add_task("rebuild", total=None, rate="-")

        def update(progress: RebuildProgress) -> None:
            bar.update(
                task, total=progress.total, completed=progress.done, rate=f"{progress.rate:,.0f}"
            )

        yield update


class _PeriodicLine:
    def __init__(self, err: IO[str]) -> None:
        self.err, self.shown = err, monotonic()

    def __call__(self, progress: RebuildProgress) -> None:
        if monotonic() - self.shown < PROGRESS_EVERY_SECONDS and not progress.switched:
            return
        self.shown = monotonic()
        eta = "" if progress.eta is None else f", about {progress.eta:.0f} s left"
        state = "switched" if progress.switched else f"{progress.rate:,.0f} events/s{eta}"
        print(f"rebuilt {progress.done} of {progress.total} events: {state}", file=self.err)
