"""The projections fed from the relay's topic by a Kafka consumer group, with the same effect as
the in-process runner: each event applied exactly once.

Each polled tenant's events go to each projection in one transaction per (projection, tenant)
that also moves its tracking, under the in-process runner's locks (`projections.runner.Runner`).
Messages are deduplicated by (store id, tenant, position): another store's are skipped, tracked
positions dropped. Tracking moves over contiguous positions only: messages that start past it
(retention, a recreated topic, a late consumer) are preceded by the missing events read from the
event store. A message that is not an envelope is parked (`consumers.parking`) and never blocks
its partition. A projection failing on an event records it and stops for that tenant.

Offsets are committed only once every effect of the batch is committed in the database. When the
database fails, nothing is committed and every partition is sought back to its first unprocessed
message; when a (projection, tenant) must wait (another runner holds it, or `NotYet`), its
partitions are sought back and read again after a short pause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Engine, select

from consumers.envelope import BadEnvelope, Envelope, parse
from consumers.metrics import CONSUMED, CONSUMER_LAG
from consumers.parking import Parked, park
from eventstore.store import LedgerStore
from ledger.following import Retry
from projections.events import LedgerEvent, decode
from projections.runner import (
    TRACKING,
    TRANSIENT,
    NotYet,
    Projection,
    Runner,
    TrackingMoved,
    kind_of,
)

log = logging.getLogger(__name__)
#: Seconds between publications of the consumer's lag.
LAG_SECONDS = 5.0
#: Seconds before messages held back (another runner on the tenant, NotYet) are read again.
HOLD_SECONDS = 0.5
#: The pause after a failed poll: doubling from the first to the longest.
RETRY_FIRST_SECONDS, RETRY_LONGEST_SECONDS = 0.5, 30.0


class Held(Exception):
    """A (projection, tenant) must wait: its messages are read again later."""


class Gap(Exception):
    """The tenant's messages start after the next untracked position: fill up to `last` first."""

    def __init__(self, tracked: int, last: int) -> None:
        super().__init__(f"positions {tracked + 1} to {last} are missing")
        self.tracked, self.last = tracked, last


@dataclass
class Batch:
    """One poll's messages: offsets per partition, envelopes per tenant, outcomes so far."""

    first: dict[Any, int] = field(default_factory=dict)
    last: dict[Any, int] = field(default_factory=dict)
    tenants: dict[UUID, dict[int, tuple[Any, Envelope]]] = field(default_factory=dict)
    parked: list[Parked] = field(default_factory=list)
    outcomes: dict[Any, Counter[str]] = field(default_factory=dict)

    def count(self, tp: Any, outcome: str, n: int = 1) -> None:
        self.outcomes.setdefault(tp, Counter())[outcome] += n

    def add(self, tp: Any, envelope: Envelope) -> None:
        positions = self.tenants.setdefault(envelope.tenant_id, {})
        if envelope.position in positions:
            self.count(tp, "duplicate")  # published twice (a relay resumed mid-batch)
        else:
            positions[envelope.position] = (tp, envelope)

    def envelopes(self, tenant_id: UUID) -> list[Envelope]:
        positions = self.tenants[tenant_id]
        return [positions[p][1] for p in sorted(positions)]


class KafkaFeed:
    """Applies the envelopes of a topic to the projections, exactly once, as a group member."""

    def __init__(
        self,
        store: LedgerStore,
        engine: Engine,
        projections: Sequence[Projection],
        consumer: KafkaConsumer,
        name: str,
        *,
        store_id: UUID,
        batch_size: int = 2000,
    ) -> None:
        self.store = store
        self.engine = engine
        self.projections = list(projections)
        self.consumer = consumer
        self.name = name
        self.store_id = store_id
        self.batch_size = batch_size
        self.runner = Runner(store, engine, self.projections, batch_size=batch_size)
        #: Messages read, by outcome (applied, duplicate, foreign_store, parked), since created.
        self.counts: Counter[str] = Counter()
        self._foreign: set[UUID] = set()
        self._held = False

    def run(self, stop: threading.Event) -> None:
        """Polls and applies until `stop` is set; failures are logged and retried with a
        growing pause, and the lag is published every `LAG_SECONDS`."""
        retry = Retry(RETRY_FIRST_SECONDS, RETRY_LONGEST_SECONDS)
        published = float("-inf")
        while not stop.is_set():
            try:
                self.poll_once()
                if time.monotonic() - published >= LAG_SECONDS:
                    CONSUMER_LAG.labels(self.name).set(self.lag())
                    published = time.monotonic()
            except Exception as error:  # the database or the broker: logged, tried again
                retry.failed(stop, f"consumer {self.name}", error)
                continue
            retry.succeeded()
            if self._held:
                stop.wait(HOLD_SECONDS)

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Reads one batch and applies it; returns the messages applied (new to a projection).

        Raises what the database raised, after seeking every partition of the batch back."""
        self._held = False
        polled: Mapping[Any, list[Any]] = self.consumer.poll(timeout_ms=timeout_ms)
        batch = self._read(polled)
        if not batch.first:
            return 0
        try:
            if batch.parked:
                with self.engine.begin() as conn:
                    park(conn, batch.parked)
            held = self._apply(batch)
        except BaseException:
            self._seek({tp: batch.first[tp] for tp in batch.first})
            raise
        self._held = bool(held)
        self._commit({tp: last for tp, last in batch.last.items() if tp not in held})
        self._seek({tp: batch.first[tp] for tp in held})
        applied = 0
        for tp, outcomes in batch.outcomes.items():
            if tp in held:
                continue  # read again later; counted then
            applied += outcomes["applied"]
            for outcome, n in outcomes.items():
                self.counts[outcome] += n
                CONSUMED.labels(self.name, outcome).inc(n)
        return applied

    def lag(self) -> int:
        """Events recorded but not applied by every projection, summed over the tenants."""
        names = [p.name for p in self.projections]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(TRACKING.c.tenant_id, TRACKING.c.projection, TRACKING.c.position).where(
                    TRACKING.c.projection.in_(names)
                )
            ).all()
        tracked: dict[UUID, dict[str, int]] = {}
        for row in rows:
            tracked.setdefault(row.tenant_id, {})[row.projection] = int(row.position)
        total = 0
        for head in self.store.heads():
            positions = tracked.get(head.tenant_id, {})
            total += max(0, head.position - min(positions.get(n, 0) for n in names))
        return total

    # -- reading ----------------------------------------------------------------------------------

    def _read(self, polled: Mapping[Any, list[Any]]) -> Batch:
        batch = Batch()
        for tp, records in polled.items():
            if not records:
                continue
            batch.first[tp], batch.last[tp] = records[0].offset, records[-1].offset
            for record in records:
                try:
                    envelope = parse(record.value)
                except BadEnvelope as error:
                    batch.parked.append(Parked.of(self.name, tp, record, str(error)))
                    batch.count(tp, "parked")
                    continue
                if envelope.store_id != self.store_id:
                    self._warn_foreign(envelope.store_id)
                    batch.count(tp, "foreign_store")
                    continue
                batch.add(tp, envelope)
        return batch

    def _warn_foreign(self, store_id: UUID) -> None:
        if store_id not in self._foreign:
            self._foreign.add(store_id)
            log.warning(
                "consumer %s: skipping messages of store %s (this database is store %s)",
                self.name,
                store_id,
                self.store_id,
            )

    # -- applying ---------------------------------------------------------------------------------

    def _apply(self, batch: Batch) -> set[Any]:
        """Applies every tenant's envelopes; returns the partitions to read again later."""
        held: set[Any] = set()
        for tenant_id in batch.tenants:
            envelopes = batch.envelopes(tenant_id)
            applied: set[int] = set()
            waiting = False
            for projection in self.projections:
                try:
                    applied |= self._project(projection, tenant_id, envelopes)
                except Held as reason:
                    log.info(
                        "consumer %s: %s of tenant %s waits: %s",
                        self.name,
                        projection.name,
                        tenant_id,
                        reason,
                    )
                    waiting = True
            for tp, envelope in batch.tenants[tenant_id].values():
                if waiting:
                    held.add(tp)
                else:
                    batch.count(tp, "applied" if envelope.position in applied else "duplicate")
        return held

    def _project(
        self, projection: Projection, tenant_id: UUID, envelopes: Sequence[Envelope]
    ) -> set[int]:
        """Applies the envelopes one projection has not tracked yet; returns their positions.

        Like `Runner.catch_up`: when a transaction fails, its envelopes are applied one at a
        time up to the one that fails, which is recorded; the tenant stops exactly before it."""
        applied: set[int] = set()
        limit, filled = self.batch_size, 0
        while True:
            try:
                done = self._step(projection, tenant_id, envelopes, limit)
            except Gap as gap:
                if gap.last <= filled:
                    log.warning(
                        "consumer %s: %s of tenant %s: the event store did not fill up to %s",
                        self.name,
                        projection.name,
                        tenant_id,
                        gap.last,
                    )
                    raise Held(f"positions up to {gap.last} are missing") from None
                filled = gap.last
                self._fill(projection, tenant_id, gap)
                continue
            except (TrackingMoved, NotYet) as reason:
                raise Held(str(reason) or type(reason).__name__) from None
            except TRANSIENT:
                raise  # the database, not the event: nothing is recorded, the batch is retried
            except Exception as error:  # recorded and reported; the other tenants go on
                if limit > 1:
                    limit = 1
                    continue
                self.runner._record_failure(projection, tenant_id, error)
                return applied
            if not done:
                return applied
            applied.update(done)

    def _step(
        self, projection: Projection, tenant_id: UUID, envelopes: Sequence[Envelope], limit: int
    ) -> list[int]:
        """One transaction: the next contiguous envelopes (at most `limit`) applied and tracked;
        returns their positions (none: nothing to do, or a recorded failure)."""
        with self.engine.begin() as conn:
            if not Runner._lock(conn, projection, tenant_id):
                raise Held("another runner is on it")
            if Runner._failed(conn, projection, tenant_id):
                return []
            tracked = Runner.position_on(conn, projection.name, tenant_id)
            run = contiguous(envelopes, tracked)[:limit]
            if not run:
                fresh = [e.position for e in envelopes if e.position > tracked]
                if fresh:
                    raise Gap(tracked, fresh[0] - 1)
                return []
            projection.apply(conn, tenant_id, wanted(run, projection.kinds))
            Runner.track_on(conn, projection.name, tenant_id, tracked, run[-1].position)
            return [e.position for e in run]

    def _fill(self, projection: Projection, tenant_id: UUID, gap: Gap) -> None:
        """Applies the missing positions from the event store, as the in-process runner does
        (in batches no longer than the gap, so it stops at its end unless the gap is long)."""
        log.info(
            "consumer %s: %s of tenant %s: %s; reading them from the event store",
            self.name,
            projection.name,
            tenant_id,
            gap,
        )
        size = max(1, min(self.batch_size, gap.last - gap.tracked))
        filler = Runner(self.store, self.engine, [projection], batch_size=size)
        filler.catch_up(projection, tenant_id, head=gap.last)

    # -- offsets ----------------------------------------------------------------------------------

    def _commit(self, last: Mapping[Any, int]) -> None:
        if not last:
            return
        offsets = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}
        try:
            self.consumer.commit(offsets)
        except (CommitFailedError, RebalanceInProgressError) as error:
            # The partitions moved to another member, which reads them again: duplicates only.
            log.warning("consumer %s: offsets not committed (%s)", self.name, error)

    def _seek(self, offsets: Mapping[Any, int]) -> None:
        assigned = self.consumer.assignment()
        for tp, offset in offsets.items():
            if tp in assigned:  # a revoked partition resumes from its committed offset
                self.consumer.seek(tp, offset)


def contiguous(envelopes: Iterable[Envelope], tracked: int) -> list[Envelope]:
    """The envelopes at tracked+1, tracked+2, … up to the first missing position."""
    run: list[Envelope] = []
    expected = tracked + 1
    for envelope in envelopes:
        if envelope.position < expected:
            continue
        if envelope.position > expected:
            break
        run.append(envelope)
        expected += 1
    return run


def wanted(envelopes: Iterable[Envelope], kinds: frozenset[str] | None) -> list[LedgerEvent]:
    """The envelopes' events of the given kinds (None: all), decoded."""
    events: list[LedgerEvent] = []
    for envelope in envelopes:
        recorded = envelope.recorded
        if kinds is None or kind_of(recorded.topic) in kinds:
            events.append(decode(recorded))
    return events
