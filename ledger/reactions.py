"""What reacts to events besides the read models: recorded alerts and webhook deliveries.

Without Kafka settings they run in the process that runs the projections (the service, or
`ledger projections run --follow`): the alerts projection and the webhook outbox join its
runner, and threads send due deliveries and sweep expiry alerts. With Kafka settings they are
left to `ledger consume alerts` and `ledger consume webhooks`, which apply the same code to the
relay's messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from consumers.alerts import Alerts, sweep_all
from consumers.dead_letters import DeadLetters
from consumers.delivery import Dispatcher
from consumers.webhooks import WebhookOutbox
from eventstore.store import LedgerStore
from ledger.sealing import unseal
from ledger.settings import Settings
from projections.runner import Projection

log = logging.getLogger(__name__)
#: Seconds between two sweeps of expiry alerts (lots expire as time passes, not by events).
SWEEP_SECONDS = 600.0
#: Seconds from a process's start to its first sweep (restarts of many replicas do not all
#: sweep every tenant at once; events raise and clear alerts meanwhile).
FIRST_SWEEP_SECONDS = 60.0


def reactors(settings: Settings, store: LedgerStore) -> list[Projection]:
    """The projections that react to events in this process: none when Kafka is configured
    (the consumers run them), else alerts and the webhook outbox (after the read models)."""
    if settings.kafka_servers:
        return []
    return [Alerts(), WebhookOutbox(store)]


def dispatcher(
    settings: Settings, engine: Engine, dead_letters: DeadLetters | None = None
) -> Dispatcher:
    """The webhook dispatcher as the settings configure it."""
    return Dispatcher(
        engine,
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_backoff_seconds,
        backoff_max=settings.webhook_backoff_max_seconds,
        timeout=settings.webhook_timeout_seconds,
        workers=settings.webhook_workers,
        allow_private=settings.webhook_allow_private,
        unseal=lambda sealed: unseal(settings, sealed),
        dead_letters=dead_letters,
    )


def sweeping(
    engine: Engine,
    stop: threading.Event,
    every: float = SWEEP_SECONDS,
    first: float = FIRST_SWEEP_SECONDS,
) -> None:
    """Sweeps expiry alerts after `first` seconds and then every `every` seconds until `stop`
    is set; a sweep that fails is logged and the next one tries again."""
    stop.wait(first)
    while not stop.is_set():
        try:
            sweep_all(engine)
        except Exception:  # the database: logged, the next sweep tries again
            log.exception("alerts sweep failed")
        stop.wait(every)


class Reactions:
    """The delivery and sweep threads of one process (started only beside in-process alerts
    and webhooks: without Kafka settings)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.enabled = not settings.kafka_servers
        self.settings = settings
        self.engine = engine
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dispatcher: Dispatcher | None = None

    def start(self) -> None:
        if not self.enabled or self._threads:
            return
        self._stop.clear()
        self._dispatcher = dispatcher(self.settings, self.engine)
        jobs: dict[str, Callable[[], object]] = {
            "ledger-webhooks": lambda: self._dispatcher and self._dispatcher.run(self._stop),
            "ledger-alerts-sweep": lambda: sweeping(self.engine, self._stop),
        }
        for name, job in jobs.items():
            thread = threading.Thread(target=job, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None
