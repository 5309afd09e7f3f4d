"""Webhook delivery: the outbox owes each webhook the public events recorded after it was
registered; the dispatcher sends them signed, retries with back-off, gives up into the log and the
dead-letter topic, and never lets one endpoint hold back another tenant's deliveries.

The Kafka test broker is tansu (tests/broker.py): its group joins take about half the session
timeout and its end offsets are wrong, so the dead-letter topic is read from the beginning by
explicitly assigned partitions, and replays stop on an idle poll.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Connection, Engine, delete, func, select

from consumers import clients
from consumers.dead_letters import DeadLetter, DeadLetters, ReplayResult, replay_dead_letters
from consumers.delivery import Dispatcher, pause
from consumers.feed import KafkaFeed
from consumers.relay import Relay
from consumers.signing import signature, signed_headers, verify
from consumers.store_id import store_id
from consumers.webhooks import DISABLED_ERROR, WebhookOutbox
from domain.sales_orders import LedgerApplication
from domain.tenant import Tenant
from eventstore.store import LedgerStore
from ledger.public_events import TYPES
from ledger.sealing import new_key, sealer, unseal
from ledger.settings import Settings
from projections.events import LedgerEvent, decode
from projections.runner import Runner, kind_of
from projections.webhook_log import DELIVERIES, SUBSCRIPTIONS, Delivery, deliveries
from tests.broker import GROUP_TIMEOUTS, kafka_broker, unique
from tests.conftest import open_store
from tests.following import M, open_engine, own_postgres, receive, stocked_tenant
from tests.webhook_receiver import Receiver, webhook_receiver

HOOK_SECRET = "whsec-test-0123456789abcdef"
SEALING = Settings(secret_key=new_key())  # type: ignore[arg-type]
SEAL = sealer(SEALING)


def open_secret(sealed: str) -> str:
    return unseal(SEALING, sealed)


@pytest.fixture(scope="module")
def own_pg(pg_server: str) -> Iterator[str]:
    """A PostgreSQL database of this module alone: no other module's deliveries are due in it."""
    with own_postgres(pg_server) as url:
        yield url


@pytest.fixture
def webhook_pg(own_pg: str) -> str:
    """This module's PostgreSQL database, with no deliveries or webhooks of earlier tests."""
    engine = open_engine(own_pg)
    with engine.begin() as conn:
        conn.execute(delete(DELIVERIES))
        conn.execute(delete(SUBSCRIPTIONS))
    engine.dispose()
    return own_pg


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "webhook_pg"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with kafka_broker() as address:
        yield address


@pytest.fixture
def dispatcher(engine: Engine) -> Iterator[Dispatcher]:
    running = make_dispatcher(engine)
    yield running
    running.close()


def make_dispatcher(engine: Engine, **changes: Any) -> Dispatcher:
    """A dispatcher retrying almost at once, allowed to send to the tests' loopback."""
    options: dict[str, Any] = {
        "max_attempts": 5,
        "backoff": 0.01,
        "backoff_max": 0.05,
        "timeout": 5.0,
        "workers": 4,
        "allow_private": True,
        "unseal": open_secret,
    }
    return Dispatcher(engine, **(options | changes))


def register(app: LedgerApplication, url: str, events: list[str]) -> str:
    tenant = app.load(app.tenant_id, Tenant)
    hook_id = tenant.register_webhook(url, events, HOOK_SECRET, SEAL, frozenset(TYPES))
    app.record(tenant, meta=M)
    return str(hook_id)


def disable(app: LedgerApplication, hook_id: str) -> None:
    tenant = app.load(app.tenant_id, Tenant)
    tenant.disable_webhook(hook_id)
    app.record(tenant, meta=M)


def outbox(store: LedgerStore, engine: Engine, tenant_id: UUID) -> None:
    Runner(store, engine, [WebhookOutbox(store)]).run_tenant(tenant_id)


def log_of(engine: Engine, tenant_id: UUID, hook_id: str) -> list[Delivery]:
    with engine.connect() as conn:
        return deliveries(conn, tenant_id, hook_id)


def drain(dispatcher: Dispatcher, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Runs the dispatcher until `done` holds (failing the test if it does not in time)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail("the deliveries did not settle in time")
        if dispatcher.run_once() == 0:
            time.sleep(0.01)


def settled(engine: Engine, tenant_id: UUID, hook_id: str) -> Callable[[], bool]:
    def check() -> bool:
        found = log_of(engine, tenant_id, hook_id)
        return bool(found) and all(row.status != "pending" for row in found)

    return check


def test_events_after_registration_are_delivered_signed_and_no_others(
    store: LedgerStore, engine: Engine, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    app = stocked_tenant(store, "wh")
    receive(app)  # before the webhook: never delivered to it
    hook_id = register(app, receiver.url, ["stock.received"])
    registered_at = store.head(app.tenant_id).position
    receive(app, 3)
    app.register_product("NUT", "Nut", M)  # product.registered: not subscribed
    outbox(store, engine, app.tenant_id)
    drain(dispatcher, settled(engine, app.tenant_id, hook_id))

    [got] = receiver.received
    body = got.json
    assert set(body) == {
        "event_id", "position", "type", "version", "stream", "recorded_at", "effective_at",
        "data", "tenant_id", "webhook_id",
    }  # fmt: skip
    assert (body["type"], body["tenant_id"], body["webhook_id"]) == (
        "stock.received",
        str(app.tenant_id),
        hook_id,
    )
    assert isinstance(body["position"], int)
    assert body["position"] > registered_at
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Ledger-Event-Id"] == body["event_id"]
    assert got.headers["X-Ledger-Delivery-Id"] == str(uuid5(UUID(hook_id), str(body["event_id"])))
    stamp = got.headers["X-Ledger-Timestamp"]
    assert abs(time.time() - int(stamp)) < 60
    expected = hmac.new(HOOK_SECRET.encode(), f"{stamp}.".encode() + got.body, hashlib.sha256)
    assert got.headers["X-Ledger-Signature"] == f"sha256={expected.hexdigest()}"
    assert [(row.attempt, row.status, row.response_status) for row in log_of(
        engine, app.tenant_id, hook_id
    )] == [(1, "delivered", 200)]  # fmt: skip


def test_a_receiver_verifies_a_delivery_by_the_documented_scheme() -> None:
    body = b'{"event_id":"e-1","type":"stock.received"}'
    headers = signed_headers(
        HOOK_SECRET, body, event_id="e-1", delivery_id="d-1", timestamp=1_800_000_000
    )
    mac = hmac.new(HOOK_SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Ledger-Signature"] == f"sha256={mac}"
    lowered = {name.lower(): value for name, value in headers.items()}
    assert verify(HOOK_SECRET, lowered, body, now=1_800_000_100)
    assert not verify(HOOK_SECRET, headers, body + b" ", now=1_800_000_100)  # body changed
    assert not verify("another-secret-0123456789", headers, body, now=1_800_000_100)
    assert not verify(HOOK_SECRET, headers, body, now=1_800_000_000 + 301)  # too old
    forged = headers | {"X-Ledger-Timestamp": "1800000200"}  # a newer stamp, the old signature
    assert not verify(HOOK_SECRET, forged, body, now=1_800_000_200)
    assert signature(HOOK_SECRET, 1_800_000_200, body) != headers["X-Ledger-Signature"]


def test_a_receiver_failing_three_times_gets_one_successful_delivery_on_the_fourth_attempt(
    store: LedgerStore, engine: Engine, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    app = stocked_tenant(store, "wh")
    hook_id = register(app, receiver.url, ["stock.received"])
    receive(app)
    receiver.fail(3)
    outbox(store, engine, app.tenant_id)
    drain(dispatcher, settled(engine, app.tenant_id, hook_id))

    rows = log_of(engine, app.tenant_id, hook_id)
    assert [(r.attempt, r.status, r.response_status) for r in rows] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
        (4, "delivered", 200),
    ]
    assert len({r.delivery_id for r in rows}) == 1
    assert all(r.error == "HTTP 500" and r.next_attempt_at is not None for r in rows[:3])
    assert [got.answered for got in receiver.received] == [500, 500, 500, 200]
    assert len({got.headers["X-Ledger-Delivery-Id"] for got in receiver.received}) == 1


def test_a_webhooks_deliveries_arrive_in_event_order_even_across_retries(
    store: LedgerStore, engine: Engine, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    app = stocked_tenant(store, "wh")
    hook_id = register(app, receiver.url, ["stock.received"])
    for quantity in (1, 2, 3):
        receive(app, quantity)
    receiver.fail(2)
    outbox(store, engine, app.tenant_id)
    drain(dispatcher, settled(engine, app.tenant_id, hook_id))

    positions = [int(str(got.json["position"])) for got in receiver.received]
    assert positions[:3] == [positions[0]] * 3  # the first event, until it is delivered
    assert positions[2:] == sorted(set(positions))  # then the others, one by one, in order
    assert len(receiver.delivered()) == 3


def test_reapplying_the_outbox_to_the_same_events_adds_no_deliveries(
    store: LedgerStore, engine: Engine, receiver: Receiver
) -> None:
    app = stocked_tenant(store, "wh")
    register(app, receiver.url, ["*"])
    register(app, receiver.url, ["stock.received"])
    receive(app, 2)
    receive(app, 5)
    outbox(store, engine, app.tenant_id)
    first = count_deliveries(engine, app.tenant_id)
    projection = WebhookOutbox(store)
    events = outbox_events(store, app.tenant_id)
    for _ in range(2):
        with engine.begin() as conn:
            projection.apply(conn, app.tenant_id, events)
    assert count_deliveries(engine, app.tenant_id) == first
    assert first > 2  # both webhooks are owed both receipts (and "*" the lots too)


def outbox_events(store: LedgerStore, tenant_id: UUID) -> list[LedgerEvent]:
    """The tenant's events the outbox applies, decoded, as the runner would give them."""
    wanted = WebhookOutbox.kinds or frozenset()
    stored = store.read(tenant_id, after=0, limit=1000)
    return [decode(e) for e in stored if kind_of(e.topic) in wanted]


def count_deliveries(engine: Engine, tenant_id: UUID) -> int:
    with engine.connect() as conn:
        found = conn.scalar(
            select(func.count()).select_from(DELIVERIES).where(DELIVERIES.c.tenant_id == tenant_id)
        )
    return int(found or 0)


def test_a_disabled_webhook_gets_nothing_more(
    store: LedgerStore, engine: Engine, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    app = stocked_tenant(store, "wh")
    hook_id = register(app, receiver.url, ["stock.received"])
    receive(app)
    outbox(store, engine, app.tenant_id)
    drain(dispatcher, settled(engine, app.tenant_id, hook_id))
    receive(app)  # owed, but the webhook is disabled before it is sent
    outbox(store, engine, app.tenant_id)
    disable(app, hook_id)
    receive(app)  # after the disabling: not owed at all
    outbox(store, engine, app.tenant_id)
    assert dispatcher.run_once() == 0

    assert len(receiver.received) == 1
    rows = log_of(engine, app.tenant_id, hook_id)
    assert [(r.attempt, r.status, r.error) for r in rows] == [
        (1, "delivered", None),
        (1, "dead", DISABLED_ERROR),
    ]


def test_a_hanging_endpoint_does_not_delay_another_tenants_deliveries(
    store: LedgerStore, engine: Engine
) -> None:
    slow_app, fast_app = stocked_tenant(store, "slow"), stocked_tenant(store, "fast")
    dispatcher = make_dispatcher(engine, timeout=20.0)
    stop = threading.Event()
    loop = threading.Thread(target=dispatcher.run, args=(stop,))
    with webhook_receiver() as slow, webhook_receiver() as fast:
        slow.hold()  # answers only when released: long after the other tenant is served
        slow_hook = register(slow_app, slow.url, ["*"])
        fast_hook = register(fast_app, fast.url, ["stock.received"])
        receive(slow_app)
        outbox(store, engine, slow_app.tenant_id)
        loop.start()
        try:
            assert slow.arrived.wait(10), "the slow endpoint was never called"
            receive(fast_app)
            outbox(store, engine, fast_app.tenant_id)
            fast.wait_for(1)
            assert slow.received == []  # still hanging when the other tenant got its event
            slow_log = log_of(engine, slow_app.tenant_id, slow_hook)
            assert {attempt.status for attempt in slow_log} == {"pending"}
            deadline = time.monotonic() + 10
            while log_of(engine, fast_app.tenant_id, fast_hook)[0].status != "delivered":
                assert time.monotonic() < deadline, "the fast delivery was not recorded"
                time.sleep(0.02)
        finally:
            slow.release.set()
            stop.set()
            loop.join(30)
            dispatcher.close()
    assert len(fast.delivered()) == 1


def test_a_target_resolving_to_a_private_address_is_refused_unless_allowed(
    sqlite_url: str, receiver: Receiver
) -> None:
    engine = open_engine(sqlite_url)
    with open_store(sqlite_url) as store:
        app = stocked_tenant(store, "wh")
        hook_id = register(app, receiver.url, ["stock.received"])
        receive(app)
        outbox(store, engine, app.tenant_id)
    dispatcher = make_dispatcher(engine, allow_private=False, max_attempts=2)
    try:
        drain(dispatcher, settled(engine, app.tenant_id, hook_id))
    finally:
        dispatcher.close()
    rows = log_of(engine, app.tenant_id, hook_id)
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "dead")]
    assert all((r.error or "").startswith("target refused") for r in rows)
    assert receiver.received == []


@pytest.mark.postgres
def test_two_dispatchers_never_send_one_attempt_twice(webhook_pg: str) -> None:
    engine = open_engine(webhook_pg)
    with open_store(webhook_pg) as store, webhook_receiver() as receiver:
        apps = [stocked_tenant(store, "race") for _ in range(6)]
        for app in apps:
            register(app, receiver.url, ["stock.received"])
            receive(app)
            outbox(store, engine, app.tenant_id)
        pair = [make_dispatcher(engine), make_dispatcher(engine)]
        try:
            start = threading.Barrier(len(pair))

            def race(dispatcher: Dispatcher) -> None:
                start.wait(10)  # both claim the same due deliveries at once
                dispatcher.run_once()

            threads = [threading.Thread(target=race, args=(d,)) for d in pair]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        finally:
            for one in pair:
                one.close()
        ids = [got.headers["X-Ledger-Delivery-Id"] for got in receiver.received]
    assert len(ids) == len(set(ids)) == len(apps)


def test_the_pause_doubles_with_upward_jitter_up_to_its_maximum() -> None:
    assert pause(1, 2.0, 600.0, jitter=0.0) == 2.0
    assert pause(3, 2.0, 600.0, jitter=0.25) == 10.0
    assert pause(12, 2.0, 600.0, jitter=0.49) == 600.0
    assert all(2.0 <= pause(1, 2.0, 600.0) < 3.0 for _ in range(200))


@pytest.mark.postgres
def test_a_dead_delivery_is_dead_lettered_and_replayed_once_the_receiver_recovers(
    webhook_pg: str, broker: str, receiver: Receiver
) -> None:
    topic, group = unique("dlq"), unique("replay")
    engine = open_engine(webhook_pg)
    letters = DeadLetters.open([broker], topic, "test-dead-letters")
    dispatcher = make_dispatcher(engine, max_attempts=3, dead_letters=letters)
    receiver.always_fail = True
    try:
        with open_store(webhook_pg) as store:
            app = stocked_tenant(store, "dlq")
            hook_id = register(app, receiver.url, ["stock.received"])
            receive(app)
            outbox(store, engine, app.tenant_id)
        drain(dispatcher, settled(engine, app.tenant_id, hook_id))
        rows = log_of(engine, app.tenant_id, hook_id)
        assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "failed"), (3, "dead")]

        [(key, letter)] = read_topic(broker, topic, 1)
        assert key == str(app.tenant_id).encode()
        assert (letter.tenant_id, letter.webhook_id, letter.attempts) == (
            app.tenant_id,
            hook_id,
            3,
        )
        assert (letter.delivery_id, letter.last_error) == (rows[0].delivery_id, "HTTP 500")
        assert letter.event_position == rows[0].event_position

        still = replay(broker, topic, group, dispatcher)
        assert (still.replayed, still.delivered, still.failed) == (1, 0, 1)
        assert [letter.attempts for _, letter in read_topic(broker, topic, 2)] == [3, 4]

        receiver.always_fail = False
        recovered = replay(broker, topic, group, dispatcher)
        assert (recovered.replayed, recovered.delivered, recovered.failed) == (1, 1, 0)
        assert len(receiver.delivered()) == 1
        statuses = [(r.attempt, r.status) for r in log_of(engine, app.tenant_id, hook_id)]
        assert statuses[3:] == [(4, "dead"), (5, "delivered")]
    finally:
        dispatcher.close()
        letters.close()


def replay(broker: str, topic: str, group: str, dispatcher: Dispatcher) -> ReplayResult:
    return replay_dead_letters(
        [broker], topic, group, dispatcher, idle_seconds=1.5, consumer_options=GROUP_TIMEOUTS
    )


def read_topic(broker: str, topic: str, count: int) -> list[tuple[bytes, DeadLetter]]:
    """The first `count` messages of the topic, from its start (no group: no join to wait for)."""
    consumer = KafkaConsumer(bootstrap_servers=[broker], enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[tuple[bytes, DeadLetter]] = []
        deadline = datetime.now(UTC) + timedelta(seconds=15)
        while len(found) < count and datetime.now(UTC) < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found.extend((r.key, DeadLetter.parse(r.value)) for r in records)
        assert len(found) == count, f"{len(found)} dead letters, not {count}"
        return found
    finally:
        consumer.close()


def test_one_webhooks_backlog_does_not_hold_back_another_webhook(
    store: LedgerStore, engine: Engine, dispatcher: Dispatcher
) -> None:
    app = stocked_tenant(store, "wh")
    with webhook_receiver() as busy, webhook_receiver() as quiet:
        register(app, busy.url, ["*"])
        for quantity in range(1, 6):
            receive(app, quantity)
        register(app, quiet.url, ["stock.received"])
        receive(app, 9)
        outbox(store, engine, app.tenant_id)
        assert dispatcher.run_once() == 2  # one delivery of each webhook, however long its queue
        assert (len(busy.received), len(quiet.received)) == (1, 1)


def test_the_outbox_fed_from_kafka_owes_what_it_owes_fed_from_the_store(
    sqlite_url: str, broker: str, receiver: Receiver
) -> None:
    topic, engine = unique("events"), open_engine(sqlite_url)
    clients.ensure_topic([broker], topic, 1)
    with open_store(sqlite_url) as store:
        app = stocked_tenant(store, "kafka")
        register(app, receiver.url, ["*"])
        receive(app, 2)
        app.register_product("NUT", "Nut", M)
        head = store.head(app.tenant_id).position
        projection = WebhookOutbox(store)
        with engine.connect() as conn, conn.begin() as transaction:  # from the store, undone
            projection.apply(conn, app.tenant_id, outbox_events(store, app.tenant_id))
            expected = owed(conn, app.tenant_id)
            transaction.rollback()
        assert tracked_outbox(engine, app.tenant_id) == 0
        producer = clients.producer([broker], "test-webhooks")
        relay = Relay(store, engine, producer, topic, store_id(engine))
        consumer = clients.consumer([broker], topic, unique("webhooks"), "test", **GROUP_TIMEOUTS)
        consumer.unsubscribe()
        consumer.assign([TopicPartition(topic, 0)])  # no group join to wait for
        feed = KafkaFeed(
            store, engine, [projection], consumer, "webhooks", store_id=store_id(engine)
        )
        try:
            relay.run_once()
            deadline = time.monotonic() + 20
            while tracked_outbox(engine, app.tenant_id) < head:
                assert time.monotonic() < deadline, "the Kafka feed did not apply the outbox"
                feed.poll_once(timeout_ms=200)
        finally:
            consumer.close()
            relay.close()
            producer.close()
    with engine.connect() as conn:
        assert owed(conn, app.tenant_id) == expected
    assert len(expected) > 2  # the receipt's stock and lot events, the new product


def owed(conn: Connection, tenant_id: UUID) -> list[tuple[Any, ...]]:
    """The deliveries the outbox wrote for a tenant (without when they were written)."""
    columns = DELIVERIES.c
    rows = conn.execute(
        select(
            columns.webhook_id,
            columns.delivery_id,
            columns.attempt,
            columns.event_position,
            columns.event_type,
            columns.status,
            columns.payload,
        )
        .where(columns.tenant_id == tenant_id)
        .order_by(columns.event_position)
    )
    return [tuple(row) for row in rows]


def tracked_outbox(engine: Engine, tenant_id: UUID) -> int:
    with engine.connect() as conn:
        return Runner.position_on(conn, WebhookOutbox.name, tenant_id)
