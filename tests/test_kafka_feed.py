"""The projections fed from Kafka: the relay's topic read by a consumer group ends with the same
read models as the in-process runner, each event applied exactly once, whatever is delivered
twice, killed, poisoned, missing or another store's.

The in-process result is built in the same database: after the feed, the tenant's read-model rows
and tracking are deleted and the in-process runner builds them again from the event store.

A real Kafka-protocol broker (tansu, `tests.broker`): a topic and a group of each test's own. The
broker's `end_offsets` is wrong, so the tests read until they have seen every message they
produced, counted by the feed itself. A group join costs about 3 s, so the tests that are not
about membership use a consumer assigned every partition, committing as its group.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError
from sqlalchemy import Connection, Engine, Table, delete, select
from sqlalchemy.exc import OperationalError

from consumers import clients
from consumers import feed as feed_module
from consumers.envelope import Envelope, envelope_of_recorded
from consumers.feed import KafkaFeed
from consumers.metrics import CONSUMER_LAG
from consumers.parking import parked
from consumers.relay import Relay
from consumers.store_id import store_id
from eventstore.store import LedgerStore
from ledger import read_side
from ledger.public_events import Origins
from projections.events import LedgerEvent, decode
from projections.runner import FAILURES, TRACKING, Runner
from projections.schema import Base
from projections.stock_levels import StockLevels
from tests.broker import GROUP_TIMEOUTS, kafka_broker, unique
from tests.following import receive, stocked_tenant
from tests.test_projections import Failing, seeded

EVENTS = 120
PARTITIONS = 3
DRAIN_SECONDS = 40.0
ROOT = Path(__file__).resolve().parent.parent
#: For behaviours of the feed alone (no dialect-specific SQL): one dialect keeps the file quick.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[str]]:
    with kafka_broker() as address:
        yield [address]


@pytest.fixture(scope="module")
def producer(servers: list[str]) -> Iterator[KafkaProducer]:
    made = clients.producer(servers, "test-feed")
    yield made
    made.close()


@pytest.fixture
def topic(servers: list[str]) -> str:
    name = unique("feed")
    clients.ensure_topic(servers, name, PARTITIONS)
    return name


def consumer_of(servers: list[str], topic: str, group: str) -> KafkaConsumer:
    """A member of `group` (its first poll joins the group: about 3 s)."""
    return clients.consumer(servers, topic, group, "test-feed", **GROUP_TIMEOUTS)


def assigned(servers: list[str], topic: str, group: str) -> KafkaConsumer:
    """A consumer of every partition, committing as `group` without joining it: for the tests
    that are not about group membership, so they need not wait for a join."""
    consumer = consumer_of(servers, topic, group)
    consumer.unsubscribe()
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    return consumer


def feed_of(
    store: LedgerStore, engine: Engine, consumer: KafkaConsumer, name: str | None = None
) -> KafkaFeed:
    return KafkaFeed(
        store,
        engine,
        read_side.projections(),
        consumer,
        name or unique("projector"),
        store_id=store_id(engine),
    )


def drain(feed: KafkaFeed, messages: int) -> None:
    """Polls until the feed has read `messages` more messages (the group join included)."""
    target = sum(feed.counts.values()) + messages
    deadline = time.monotonic() + DRAIN_SECONDS
    while sum(feed.counts.values()) < target:
        assert time.monotonic() < deadline, f"read {dict(feed.counts)}, expected {messages} more"
        feed.poll_once(timeout_ms=200)
    assert sum(feed.counts.values()) == target


def failure_of(feed: KafkaFeed) -> Exception:
    """What a poll raised, polling until one does."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        try:
            feed.poll_once(timeout_ms=200)
        except Exception as error:
            return error
    raise AssertionError("no poll failed")


def relayed(store: LedgerStore, engine: Engine, producer: KafkaProducer, topic: str) -> UUID:
    """A seeded tenant whose events the relay published to `topic`."""
    tenant = seeded(store, EVENTS).tenant_id
    relay = Relay(store, engine, producer, topic, store_id(engine))
    try:
        assert relay.publish_tenant(tenant, store.head(tenant).position) == head(store, tenant)
    finally:
        relay.close()
    return tenant


def head(store: LedgerStore, tenant: UUID) -> int:
    return store.head(tenant).position


def envelopes(store: LedgerStore, tenant: UUID, store_of: UUID, after: int = 0) -> list[Envelope]:
    origins = Origins(store, tenant)
    return [envelope_of_recorded(store_of, e, origins) for e in store.iter_events(tenant)][after:]


def produce(producer: KafkaProducer, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> None:
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=30)


def tables() -> list[Table]:
    names = sorted({name for p in read_side.projections() for name in p.tables})
    return [Base.metadata.tables[name] for name in names]


def read_models(engine: Engine, tenant: UUID) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row of the tenant, and each projection's tracked position."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in tables():
            rows = conn.execute(select(table).where(table.c.tenant_id == tenant)).all()
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
        tracked = conn.execute(
            select(TRACKING.c.projection, TRACKING.c.position).where(TRACKING.c.tenant_id == tenant)
        ).all()
    found["tracking"] = sorted(tuple(row) for row in tracked)
    return found


def in_process(
    store: LedgerStore, engine: Engine, tenant: UUID
) -> dict[str, list[tuple[Any, ...]]]:
    """The tenant's read models as the in-process runner builds them from the event store."""
    with engine.begin() as conn:
        for table in [*tables(), TRACKING, FAILURES]:
            conn.execute(delete(table).where(table.c.tenant_id == tenant))
    read_side.runner(store, engine).run_tenant(tenant)
    return read_models(engine, tenant)


def assert_caught_up(
    found: dict[str, list[tuple[Any, ...]]], store: LedgerStore, tenant: UUID, *, demo: bool = True
) -> None:
    """Every projection applied every event (and, for a demo tenant, built its main tables)."""
    names = sorted(p.name for p in read_side.projections())
    assert found["tracking"] == [(name, head(store, tenant)) for name in names]
    main = ("rm_stock_levels", "rm_lots", "rm_orders", "rm_audit_log") if demo else ()
    assert all(found[table] for table in main)


def committed(consumer: KafkaConsumer, topic: str) -> dict[int, int | None]:
    return {p: consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}


def test_relay_then_projection_consumer_ends_with_read_models_equal_to_the_in_process_projections(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = relayed(store, engine, producer, topic)
    consumer = consumer_of(servers, topic, unique("group"))
    try:
        feed = feed_of(store, engine, consumer)
        lag = feed.lag()  # other tenants of the database may lag too, unchanged
        drain(feed, head(store, tenant))
        assert dict(feed.counts) == {"applied": head(store, tenant)}
        assert lag - feed.lag() == head(store, tenant)
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant)
        assert fed == in_process(store, engine, tenant)
        partition = next(p for p, offset in committed(consumer, topic).items() if offset)
        assert committed(consumer, topic)[partition] == head(store, tenant)
    finally:
        consumer.close()


def test_feeding_the_same_messages_again_changes_nothing_and_counts_them_as_duplicates(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = relayed(store, engine, producer, topic)
    events = head(store, tenant)
    consumer = assigned(servers, topic, unique("group"))
    try:
        feed = feed_of(store, engine, consumer)
        drain(feed, events)
        once = read_models(engine, tenant)
        assert_caught_up(once, store, tenant)
        # A relay that lost its tracking publishes everything again; the group re-reads it all.
        published = envelopes(store, tenant, store_id(engine))
        produce(producer, topic, ((e.key, e.encode()) for e in published))
        consumer.seek_to_beginning()
        drain(feed, 2 * events)
        assert feed.counts == Counter(applied=events, duplicate=2 * events)
        assert read_models(engine, tenant) == once
    finally:
        consumer.close()


def test_a_consumer_killed_before_committing_re_reads_and_changes_nothing_twice(
    store: LedgerStore,
    engine: Engine,
    database_url: str,
    servers: list[str],
    producer: KafkaProducer,
    topic: str,
) -> None:
    tenant = relayed(store, engine, producer, topic)
    events, group = head(store, tenant), unique("group")
    killed = subprocess.run(
        [sys.executable, "-m", "tests.kafka_kill", database_url, servers[0], topic, group],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    tracked = read_models(engine, tenant)["tracking"]
    applied_before = tracked[0][1]
    assert len(tracked) == len(read_side.projections())
    assert {position for _, position in tracked} == {applied_before}
    assert applied_before > 0  # the killed consumer's batch is in the database

    consumer = consumer_of(servers, topic, group)
    try:
        assert set(committed(consumer, topic).values()) == {None}  # it died before committing
        feed = feed_of(store, engine, consumer)
        drain(feed, events)
        assert feed.counts == Counter(duplicate=applied_before, applied=events - applied_before)
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant)
        assert fed == in_process(store, engine, tenant)
    finally:
        consumer.close()


def test_a_poison_message_is_parked_and_the_events_after_it_are_applied(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = seeded(store, EVENTS).tenant_id
    valid = envelopes(store, tenant, store_id(engine))
    half, poison = len(valid) // 2, b"{not an envelope"
    messages = [(e.key, e.encode()) for e in valid]
    produce(producer, topic, [*messages[:half], (valid[0].key, poison), *messages[half:]])
    consumer = assigned(servers, topic, unique("group"))
    try:
        feed = feed_of(store, engine, consumer)
        drain(feed, len(valid) + 1)
        assert feed.counts == Counter(applied=len(valid), parked=1)
        [found] = parked(engine, feed.name)
        assert (found.topic, found.offset, found.key, found.value) == (
            topic,
            half,
            valid[0].key,
            poison,
        )
        assert found.error.startswith("not JSON")
        assert committed(consumer, topic)[found.partition] == len(valid) + 1
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant)
        assert fed == in_process(store, engine, tenant)
    finally:
        consumer.close()


def test_positions_missing_from_the_topic_are_filled_from_the_event_store(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = seeded(store, EVENTS).tenant_id
    all_envelopes = envelopes(store, tenant, store_id(engine))
    third = len(all_envelopes) // 3
    # The first third is gone (retention, a consumer that started late), and a few in the middle.
    published = all_envelopes[third : 2 * third] + all_envelopes[2 * third + 5 :]
    produce(producer, topic, ((e.key, e.encode()) for e in published))
    consumer = assigned(servers, topic, unique("group"))
    try:
        feed = feed_of(store, engine, consumer)
        drain(feed, len(published))
        assert feed.counts == Counter(applied=len(published))
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant)
        assert fed == in_process(store, engine, tenant)
    finally:
        consumer.close()


@SQLITE_ONLY
def test_messages_of_another_store_are_skipped(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = seeded(store, EVENTS).tenant_id
    events = head(store, tenant)
    # What the store published before it was restored from a backup under a new store id.
    previous = envelopes(store, tenant, uuid.uuid4())
    produce(producer, topic, ((e.key, e.encode()) for e in previous))
    consumer = assigned(servers, topic, unique("group"))
    try:
        feed = feed_of(store, engine, consumer)
        drain(feed, events)
        assert feed.counts == Counter(foreign_store=events)
        assert read_models(engine, tenant)["tracking"] == []
        current = envelopes(store, tenant, store_id(engine))
        produce(producer, topic, ((e.key, e.encode()) for e in current))
        drain(feed, events)
        assert feed.counts == Counter(foreign_store=events, applied=events)
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant)
        assert fed == in_process(store, engine, tenant)
    finally:
        consumer.close()


KINDS = StockLevels().kinds or frozenset()


class Disconnected(StockLevels):
    """Stock levels whose database connection drops while applying, until it is back."""

    down = True

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        if self.down:
            raise OperationalError("UPDATE rm_stock_levels", {}, ConnectionError("server closed"))
        super().apply(conn, tenant_id, events)


@SQLITE_ONLY
def test_a_database_failure_commits_no_offset_and_the_batch_is_read_again(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = seeded(store, EVENTS).tenant_id
    published = envelopes(store, tenant, store_id(engine))
    produce(producer, topic, ((e.key, e.encode()) for e in published))
    consumer = assigned(servers, topic, unique("group"))
    try:
        broken = Disconnected()  # first in line: the batch fails before any projection applies it
        others = [p for p in read_side.projections() if p.name != broken.name]
        feed = KafkaFeed(store, engine, [broken, *others], consumer, "t", store_id=store_id(engine))
        assert isinstance(failure_of(feed), OperationalError)
        assert set(committed(consumer, topic).values()) == {None}
        assert read_models(engine, tenant)["tracking"] == []
        broken.down = False  # the database is back
        drain(feed, len(published))
        assert feed.counts == Counter(applied=len(published))
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant)
        assert fed == in_process(store, engine, tenant)
    finally:
        consumer.close()


def test_a_failing_event_stops_that_projection_of_that_tenant_until_retried(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    app = stocked_tenant(store, "kf")
    for quantity in range(1, 6):
        receive(app, quantity)
    tenant, events = app.tenant_id, head(store, app.tenant_id)
    stocked = [e.position for e in map(decode, store.iter_events(tenant)) if e.kind in KINDS]
    failing = Failing(tenant, position=stocked[-2])
    projections = [failing, *(p for p in read_side.projections() if p.name != failing.name)]
    produce(
        producer, topic, ((e.key, e.encode()) for e in envelopes(store, tenant, store_id(engine)))
    )
    consumer = assigned(servers, topic, unique("group"))
    try:
        feed = KafkaFeed(store, engine, projections, consumer, "t", store_id=store_id(engine))
        drain(feed, events)
        assert feed.counts == Counter(applied=events)
        runner = Runner(store, engine, projections)
        states = {p.projection: p for p in runner.progress() if p.tenant_id == tenant}
        assert (states["stock_levels"].position, states["stock_levels"].failed_at) == (
            stocked[-2] - 1,
            stocked[-2],
        )
        assert all(s.position == events for n, s in states.items() if n != "stock_levels")
        assert next(iter(set(committed(consumer, topic).values()) - {None})) == events

        failing.position = -1  # fixed, and cleared by `ledger projections retry`
        runner.retry("stock_levels", tenant)
        receive(app)  # the tenant's next events arrive: the projection catches up from the store
        later = envelopes(store, tenant, store_id(engine), events)
        produce(producer, topic, ((e.key, e.encode()) for e in later))
        drain(feed, len(later))
        fed = read_models(engine, tenant)
        assert_caught_up(fed, store, tenant, demo=False)
        assert fed["rm_stock_levels"]
        assert fed == in_process(store, engine, tenant)
    finally:
        consumer.close()


@SQLITE_ONLY
def test_a_commit_refused_after_a_rebalance_is_logged_and_the_feed_goes_on(
    store: LedgerStore, engine: Engine, servers: list[str], producer: KafkaProducer, topic: str
) -> None:
    tenant = seeded(store, EVENTS).tenant_id
    published = envelopes(store, tenant, store_id(engine))
    produce(producer, topic, ((e.key, e.encode()) for e in published))
    consumer = assigned(servers, topic, unique("group"))
    try:
        refused: list[object] = []

        def rebalanced(offsets: object) -> None:
            refused.append(offsets)
            raise CommitFailedError()

        consumer.commit = rebalanced
        feed = feed_of(store, engine, consumer)
        drain(feed, len(published))
        assert refused
        assert feed.counts == Counter(applied=len(published))
        assert set(committed(consumer, topic).values()) == {None}
        assert_caught_up(read_models(engine, tenant), store, tenant)
    finally:
        consumer.close()


@SQLITE_ONLY
def test_run_follows_the_topic_until_stopped_and_publishes_the_lag(
    store: LedgerStore,
    engine: Engine,
    servers: list[str],
    producer: KafkaProducer,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed_module, "LAG_SECONDS", 0.0)
    tenant = relayed(store, engine, producer, topic)
    consumer = assigned(servers, topic, unique("group"))
    stop = threading.Event()
    feed = feed_of(store, engine, consumer)
    thread = threading.Thread(target=feed.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + DRAIN_SECONDS
        while feed.counts["applied"] < head(store, tenant):
            assert time.monotonic() < deadline, dict(feed.counts)
            time.sleep(0.05)
        time.sleep(0.6)  # a few more rounds, each publishing the lag
    finally:
        stop.set()
        thread.join(10)
        consumer.close()
    assert not thread.is_alive()
    assert CONSUMER_LAG.labels(feed.name)._value.get() == feed.lag()
    fed = read_models(engine, tenant)
    assert_caught_up(fed, store, tenant)
    assert fed == in_process(store, engine, tenant)
