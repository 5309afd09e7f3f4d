"""The relay: every tenant's events, in position order, published to a Kafka topic.

Each message is keyed by tenant id (a tenant's events stay in order in one partition) and holds
the event's envelope (`consumers.envelope`). The relay records a batch's last position as the
tenant's tracked position (`relay:<topic>` in the store's tracking table) once the broker has
acknowledged that batch and every one before it (the next batch is read and sent meanwhile).
After a crash it resumes from the last recorded position: what was sent but not recorded is
published again (consumers deduplicate by store id,
tenant and position), never skipped. Several relays share the tenants: a relay publishes a tenant
only while it holds that tenant's lock (`consumers.locks`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import UUID

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from kafka.producer.future import FutureRecordMetadata
from sqlalchemy import Engine

from consumers.envelope import envelope_of_recorded
from consumers.locks import TenantLocks
from consumers.metrics import RELAY_LAG, RELAY_PUBLISHED
from eventstore.records import RecordedEvent
from eventstore.store import LedgerStore
from ledger.following import Retry
from ledger.public_events import Origins

log = logging.getLogger(__name__)
#: How long a batch may wait for the broker's acknowledgements.
ACK_TIMEOUT_SECONDS = 60.0
#: Batches sent ahead of the oldest one not yet acknowledged.
AHEAD = 1


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
        """Publishes one tenant's events after its tracked position up to `head`.

        Batches are pipelined: while the broker acknowledges one batch, the next is read (in a
        thread) and sent; a batch's last position is recorded once it and every batch before it
        are acknowledged, so what is recorded was always received. All of a tenant's messages go
        to the partition its key hashes to (as a producer's default partitioner would choose),
        computed once."""
        after = self.store.tracked_position(self.tracker, tenant_id)  # read under the lock
        origins = self._origins.setdefault(tenant_id, Origins(self.store, tenant_id))
        partition = self._partition(str(tenant_id).encode())
        published = 0
        unacknowledged: deque[tuple[int, list[FutureRecordMetadata]]] = deque()
        with ThreadPoolExecutor(1, thread_name_prefix="relay-read") as reader:
            reading: Future[list[RecordedEvent]] | None = self._read(reader, tenant_id, after, head)
            try:
                while reading is not None:
                    recorded = reading.result()
                    if not recorded or (stop is not None and stop.is_set()):
                        break
                    last = recorded[-1].position
                    reading = self._read(reader, tenant_id, last, head)
                    unacknowledged.append((last, self._send(recorded, origins, partition)))
                    while len(unacknowledged) > AHEAD:
                        published += self._record(tenant_id, *unacknowledged.popleft())
            finally:
                if reading is not None:
                    reading.cancel()
            self.producer.flush(timeout=ACK_TIMEOUT_SECONDS)
            while unacknowledged:
                published += self._record(tenant_id, *unacknowledged.popleft())
        if len(self._origins) > 1024:
            self._origins.clear()
        return published

    def _read(
        self, reader: ThreadPoolExecutor, tenant_id: UUID, after: int, head: int
    ) -> Future[list[RecordedEvent]] | None:
        if after >= head:
            return None
        return reader.submit(self.store.read, tenant_id, after, self.batch_size)

    def _send(
        self, recorded: Sequence[RecordedEvent], origins: Origins, partition: int
    ) -> list[FutureRecordMetadata]:
        send, topic, store_id = self.producer.send, self.topic, self.store_id
        sent = []
        for event in recorded:
            envelope = envelope_of_recorded(store_id, event, origins)
            sent.append(
                send(
                    topic,
                    key=envelope.key,
                    value=envelope.encode(),
                    headers=envelope.headers(),
                    partition=partition,
                )
            )
        return sent

    def _record(self, tenant_id: UUID, last: int, sent: Sequence[FutureRecordMetadata]) -> int:
        """Waits until the broker has acknowledged a batch (raises if a send failed), then
        records its last position; returns the batch's size."""
        for future in sent:
            future.get(timeout=ACK_TIMEOUT_SECONDS)
        self.store.record_tracking(self.tracker, tenant_id, last)
        RELAY_PUBLISHED.labels(self.topic).inc(len(sent))
        return len(sent)

    def _partition(self, key: bytes) -> int:
        """The partition a producer's default partitioner gives `key` (murmur2, as the Java
        client), so consumers of other producers' keyed messages see the same placement."""
        partitions = sorted(self.producer.partitions_for(self.topic))
        return int(partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)])

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
