"""``ledger relay``, ``ledger consume …`` and ``ledger webhooks …``: the Kafka side of the ledger.

Each runs until SIGTERM or Ctrl-C (which end the batch in hand and return cleanly), or once with
``--once``. ``--metrics-port`` serves the process's Prometheus metrics on 127.0.0.1.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer
from kafka import KafkaConsumer
from prometheus_client import start_http_server
from sqlalchemy import Engine

from consumers.alerts import Alerts, sweep_all
from consumers.clients import consumer, ensure_topic, producer
from consumers.dead_letters import DeadLetters, replay_dead_letters
from consumers.feed import KafkaFeed
from consumers.relay import Relay
from consumers.store_id import new_store_id, store_id
from consumers.webhooks import WebhookOutbox
from eventstore.store import LedgerStore
from ledger import reactions, read_side
from ledger.cli_support import fail, load_settings, opened_ledger
from ledger.reactions import sweeping
from ledger.settings import Settings
from projections.runner import Projection

MetricsPort = Annotated[
    int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1 at this port.")
]
BatchSize = Annotated[int, typer.Option(min=1, help="Events sent per acknowledged batch.")]
ApplyBatch = Annotated[
    int, typer.Option(min=1, max=100_000, help="Events applied per transaction.")
]
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
    """Publishes every tenant's events to LEDGER_KAFKA_TOPIC, keyed by tenant.

    It records what the brokers acknowledged and resumes from there after a restart. Several relays may run: each tenant is published by one of them at a time.
    """  # noqa: E501
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
    """Gives the store a new id (after restoring the database from a backup).

    Run it before the relay starts: consumers then skip the old store's messages and take the restored store's events as new, although their positions were used before.
    """  # noqa: E501
    settings = load_settings()
    with opened_ledger():
        engine = read_side.read_engine(settings)
        try:
            before = store_id(engine)
            after = new_store_id(engine)
        finally:
            engine.dispose()
    typer.echo(f"store id {before} -> {after}")


Group = Annotated[str | None, typer.Option(help="Consumer group (default: ledger-<what>).")]
ReplayGroup = Annotated[str, typer.Option(help="Consumer group of the replay.")]


@dataclass(frozen=True)
class Opened:
    """What a consumer's projections and side work are built from."""

    settings: Settings
    store: LedgerStore
    engine: Engine


def _consume(
    what: str,
    group: str | None,
    once: bool,
    batch_size: int,
    metrics_port: int | None,
    make: Callable[[Opened], tuple[list[Projection], Beside]],
) -> None:
    """Feeds projections from LEDGER_KAFKA_TOPIC as a member of `group`, with the threads
    `make` adds beside the feed (webhook sending, alert sweeps)."""
    settings = load_settings()
    servers = kafka_servers(settings)
    name = group or f"ledger-{what}"
    serve_metrics(metrics_port)
    with opened_ledger() as ledger:
        engine = read_side.read_engine(settings)
        ensure_topic(servers, settings.kafka_topic)
        reader = consumer(
            servers, settings.kafka_topic, name, name, **settings.kafka_group_timeouts
        )
        found, beside = make(Opened(settings, ledger.store, engine))
        feed = KafkaFeed(
            ledger.store,
            engine,
            found,
            reader,
            name,
            store_id=store_id(engine),
            batch_size=batch_size,
        )
        try:
            if once:
                _until_idle(feed, reader)
                beside.once()
            else:
                typer.echo(
                    f"consuming {settings.kafka_topic} as {name}; SIGTERM or Ctrl-C stops", err=True
                )
                with stop_on_signals() as stop:
                    threads = beside.start(stop)
                    feed.run(stop)
                    for thread in threads:
                        thread.join(30)
        finally:
            reader.close()
            beside.close()
            engine.dispose()
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(feed.counts.items()))
        typer.echo(f"{name}: {counts or 'nothing read'}")


def _until_idle(feed: KafkaFeed, reader: KafkaConsumer) -> None:
    """Polls until three polls in a row read nothing once partitions are assigned."""
    idle = 0
    while idle < 3:
        before = sum(feed.counts.values())
        feed.poll_once(1000)
        quiet = bool(reader.assignment()) and sum(feed.counts.values()) == before
        idle = idle + 1 if quiet else 0


def consume_projections(
    group: Group = None,
    once: Once = False,
    batch_size: ApplyBatch = 2000,
    metrics_port: MetricsPort = None,
) -> None:
    """Feeds the read models from LEDGER_KAFKA_TOPIC, each event exactly once.

    The in-process runner may run too (both deduplicate by position), or be turned off with LEDGER_PROJECTIONS=off.
    """  # noqa: E501
    _consume(
        "projections",
        group,
        once,
        batch_size,
        metrics_port,
        lambda _: (read_side.projections(), Beside()),
    )


def consume_alerts(
    group: Group = None,
    once: Once = False,
    batch_size: ApplyBatch = 2000,
    metrics_port: MetricsPort = None,
) -> None:
    """Records alerts from LEDGER_KAFKA_TOPIC: low stock, expiring and expired lots, orders.

    Alerts are judged once the read models have the events; expiry alerts are also swept every 10 minutes.
    """  # noqa: E501

    def make(opened: Opened) -> tuple[list[Projection], Beside]:
        engine = opened.engine
        return [Alerts()], Beside(
            run=lambda stop: sweeping(engine, stop), once=lambda: sweep_all(engine)
        )

    _consume("alerts", group, once, batch_size, metrics_port, make)


def consume_webhooks(
    group: Group = None,
    once: Once = False,
    batch_size: ApplyBatch = 2000,
    metrics_port: MetricsPort = None,
) -> None:
    """Delivers the tenants' subscribed events from LEDGER_KAFKA_TOPIC to their webhooks.

    Each delivery is signed, retried with backoff and jitter, and dead-lettered to LEDGER_KAFKA_DLQ_TOPIC after LEDGER_WEBHOOK_MAX_ATTEMPTS.
    """  # noqa: E501

    def make(opened: Opened) -> tuple[list[Projection], Beside]:
        settings = opened.settings
        letters = DeadLetters.open(
            settings.kafka_servers, settings.kafka_dlq_topic, "ledger-webhooks"
        )
        sender = reactions.dispatcher(settings, opened.engine, letters)

        def close() -> None:
            sender.close()
            letters.close()

        return [WebhookOutbox(opened.store)], Beside(
            run=sender.run, once=sender.run_once, close=close
        )

    _consume("webhooks", group, once, batch_size, metrics_port, make)


def webhooks_replay_dlq(
    group: Annotated[
        str, typer.Option(help="Consumer group of the replay.")
    ] = "ledger-webhooks-replay",
    idle_seconds: Annotated[
        float, typer.Option(min=0.1, help="Stop after this long without a dead letter.")
    ] = 2.0,
) -> None:
    """Sends each dead-lettered delivery of LEDGER_KAFKA_DLQ_TOPIC once more.

    Each is a new attempt in the delivery log; one that fails again goes back to the dead-letter topic, and the command exits 1.
    """  # noqa: E501
    settings = load_settings()
    servers = kafka_servers(settings)
    with opened_ledger():
        engine = read_side.read_engine(settings)
        sender = reactions.dispatcher(settings, engine)
        try:
            result = replay_dead_letters(
                servers,
                settings.kafka_dlq_topic,
                group,
                sender,
                idle_seconds=idle_seconds,
                consumer_options=settings.kafka_group_timeouts,
            )
        finally:
            sender.close()
            engine.dispose()
    typer.echo(
        f"replayed {result.replayed}: delivered {result.delivered}, failed again"
        f" {result.failed}, skipped {result.skipped}"
    )
    if result.failed:
        raise typer.Exit(1)


class Beside:
    """Work a consumer runs beside its feed: `run(stop)` in a thread, or `once()` after a
    one-shot feed; `close()` at the end."""

    def __init__(
        self,
        run: Callable[[threading.Event], object] | None = None,
        once: Callable[[], object] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._run, self._once, self._close = run, once, close

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        if self._run is None:
            return []
        runner = self._run
        thread = threading.Thread(target=lambda: runner(stop), name="ledger-beside", daemon=True)
        thread.start()
        return [thread]

    def once(self) -> None:
        if self._once is not None:
            self._once()

    def close(self) -> None:
        if self._close is not None:
            self._close()


consume_app = typer.Typer(
    no_args_is_help=True, help="Kafka consumers: read models, alerts and webhooks from the relay."
)
consume_app.command("projections")(consume_projections)
consume_app.command("alerts")(consume_alerts)
consume_app.command("webhooks")(consume_webhooks)
webhooks_app = typer.Typer(no_args_is_help=True, help="Webhook deliveries.")
webhooks_app.command("replay-dlq")(webhooks_replay_dlq)
