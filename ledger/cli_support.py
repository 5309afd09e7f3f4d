"""What every ``ledger`` command shares: settings, the opened ledger, one-line errors."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import typer
from eventsourcing.persistence import PersistenceError
from pydantic import ValidationError

from domain.errors import DomainError
from domain.metadata import Actor, EventMetadata
from ledger.settings import Settings
from ledger.wiring import Ledger, check_schema

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"LEDGER_{str(first['loc'][0]).upper()}: {first['msg']}")


def cli_meta() -> EventMetadata:
    return EventMetadata(actor=Actor(kind="cli", id=getpass.getuser(), roles=("admin",)))


@contextmanager
def opened_ledger() -> Iterator[Ledger]:
    """The ledger of the configured database, with errors turned into one-line messages."""
    settings = load_settings()
    with guarded(lambda: check_schema(settings)):
        pass
    ledger = Ledger.from_settings(settings)
    try:
        with guarded(lambda: None):
            yield ledger
    finally:
        ledger.close()


@contextmanager
def guarded(action: Callable[[], T]) -> Iterator[T]:
    try:
        yield action()
    except DomainError as error:
        fail(str(error))
    except PersistenceError as error:
        fail(f"database: {str(error).splitlines()[0]}")
