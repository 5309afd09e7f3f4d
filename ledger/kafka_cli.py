"""``ledger relay``, ``ledger consume …`` and ``ledger webhooks …``: the Kafka side of the ledger.

Each runs until SIGTERM or Ctrl-C (which end the batch in hand and return cleanly), or once with
``--once``. ``--metrics-port`` serves the process's Prometheus metrics on 127.0.0.1.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from prometheus_client import start_http_server

from consumers.clients import ensure_topic, producer
from consumers.relay import Relay
from consumers.store_id import new_store_id, store_id
from ledger import read_side
from ledger.cli_support import fail, load_settings, opened_ledger
from ledger.settings import Settings

MetricsPort = Annotated[
    int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1 at this port.")
]
BatchSize = Annotated[int, typer.Option(min=1, help="Events sent per acknowledged batch.")]
Once = Annotated[bool, typer.Option("--once", help="Do what is pending, then exit.")]


def kafka_servers(settings: Settings) -> list[str]:
    servers = settings.kafka_servers
    if not servers:
        fail("LEDGER_KAFKA_BOOTSTRAP_SERVERS is not set (comma-separated host:port of the brokers)")
    return servers


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs."""
    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in handled}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve_metrics(port: int | None) -> None:
    if port is not None:
        start_http_server(port, addr="127.0.0.1")


def relay(
    once: Once = False,
    batch_size: BatchSize = 2000,
    metrics_port: MetricsPort = None,
) -> None:
    """Publishes every tenant's events to LEDGER_KAFKA_TOPIC, keyed by tenant, recording what
    the brokers acknowledged; resumes from there after a restart. Several relays may run: each
    tenant is published by one of them at a time."""
    settings = load_settings()
    servers = kafka_servers(settings)
    serve_metrics(metrics_port)
    with opened_ledger() as ledger:
        engine = read_side.read_engine(settings)
        ensure_topic(servers, settings.kafka_topic)
        sender = producer(servers, "ledger-relay")
        publisher = Relay(
            ledger.store,
            engine,
            sender,
            settings.kafka_topic,
            store_id(engine),
            batch_size=batch_size,
        )
        try:
            if once:
                count = publisher.run_once()
            else:
                typer.echo(f"relaying to {settings.kafka_topic}; SIGTERM or Ctrl-C stops", err=True)
                with stop_on_signals() as stop:
                    count = publisher.follow(stop)
        finally:
            publisher.close()
            sender.close()
            engine.dispose()
        typer.echo(f"published {count} events to {settings.kafka_topic}")


def db_new_store_id() -> None:
    """Gives the store a new id. Run it after restoring the database from a backup, before the
    relay starts: consumers then skip the old store's messages and take the restored store's
    events as new, although their positions were used before."""
    settings = load_settings()
    with opened_ledger():
        engine = read_side.read_engine(settings)
        try:
            before = store_id(engine)
            after = new_store_id(engine)
        finally:
            engine.dispose()
    typer.echo(f"store id {before} -> {after}")
