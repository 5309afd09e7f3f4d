"""The relay: every tenant's events, in position order, published to a Kafka topic.

Each message is keyed by tenant id (a tenant's events stay in order in one partition) and holds
the event's envelope (`consumers.envelope`). The relay sends a batch, waits until the broker has
acknowledged all of it, then records the batch's last position as the tenant's tracked position
(`relay:<topic>` in the store's tracking table). After a crash it resumes from the last recorded
position: the unrecorded tail of a batch is published again (consumers deduplicate by store id,
tenant and position), never skipped. Several relays share the tenants: a relay publishes a tenant
only while it holds that tenant's lock (`consumers.locks`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from uuid import UUID

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata
from sqlalchemy import Engine

from consumers.envelope import envelope_of_recorded
from consumers.locks import TenantLocks
from consumers.metrics import RELAY_LAG, RELAY_PUBLISHED
from eventstore.store import LedgerStore
from ledger.following import Retry
from ledger.public_events import Origins

log = logging.getLogger(__name__)
#: How long a batch may wait for the broker's acknowledgements.
ACK_TIMEOUT_SECONDS = 60.0


def tracker(topic: str) -> str:
    """The store tracker of the relay to `topic`."""
    return f"relay:{topic}"


class Relay:
    """Publishes the tenants' new events to `topic`, recording what the broker acknowledged."""

    def __init__(
        self,
        store: LedgerStore,
        engine: Engine,
        producer: KafkaProducer,
        topic: str,
        store_id: UUID,
        *,
        batch_size: int = 2000,
    ) -> None:
        self.store = store
        self.producer = producer
        self.topic = topic
        self.store_id = store_id
        self.batch_size = batch_size
        self.tracker = tracker(topic)
        self.locks = TenantLocks(engine, self.tracker)
        self._origins: dict[UUID, Origins] = {}

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Publishes every tenant's events up to its current head; returns how many."""
        published, behind = 0, 0
        for lag in self.store.tenants_ahead_of(self.tracker):
            if stop is not None and stop.is_set():
                break
            with self.locks.hold(lag.tenant_id) as held:
                if held:
                    published += self.publish_tenant(lag.tenant_id, lag.head, stop)
            behind += lag.lag
        RELAY_LAG.labels(self.topic).set(max(0, behind - published))
        return published

    def publish_tenant(
        self, tenant_id: UUID, head: int, stop: threading.Event | None = None
    ) -> int:
        """Publishes one tenant's events after its tracked position up to `head`."""
        after = self.store.tracked_position(self.tracker, tenant_id)  # read under the lock
        origins = self._origins.setdefault(tenant_id, Origins(self.store, tenant_id))
        published = 0
        while after < head and (stop is None or not stop.is_set()):
            recorded = self.store.read(tenant_id, after=after, limit=self.batch_size)
            if not recorded:
                break
            sent: list[FutureRecordMetadata] = []
            for event in recorded:
                envelope = envelope_of_recorded(self.store_id, event, origins)
                sent.append(
                    self.producer.send(
                        self.topic,
                        key=envelope.key,
                        value=envelope.encode(),
                        headers=envelope.headers(),
                    )
                )
            self._acknowledged(sent)
            after = recorded[-1].position
            self.store.record_tracking(self.tracker, tenant_id, after)
            published += len(recorded)
            RELAY_PUBLISHED.labels(self.topic).inc(len(recorded))
        if len(self._origins) > 1024:
            self._origins.clear()
        return published

    def _acknowledged(self, sent: Sequence[FutureRecordMetadata]) -> None:
        """Waits until the broker has acknowledged every message (raises if one failed)."""
        self.producer.flush(timeout=ACK_TIMEOUT_SECONDS)
        for future in sent:
            future.get(timeout=ACK_TIMEOUT_SECONDS)

    def follow(self, stop: threading.Event, *, interval: float = 0.1, idle_max: float = 1.0) -> int:
        """Publishes new events until `stop` is set, polling the store's heads (quickly while
        there is work, backing off to `idle_max` while there is none); errors are logged and
        retried with a growing pause."""
        total, wait, retry = 0, interval, Retry(interval, 30.0)
        while not stop.is_set():
            started = time.monotonic()
            try:
                done = self.run_once(stop)
            except Exception as error:  # the broker or the database: logged, tried again
                retry.failed(stop, "relaying events", error)
                continue
            retry.succeeded()
            total += done
            wait = interval if done else min(wait * 2, idle_max)
            if not done:
                stop.wait(max(0.0, wait - (time.monotonic() - started)))
        return total

    def close(self) -> None:
        self.locks.close()
