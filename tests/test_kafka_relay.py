"""The relay on a real Kafka-protocol broker (tests/broker.py): every event of every tenant, in
position order, keyed by tenant, readable by a plain Kafka client; what the broker acknowledged
is recorded, a killed relay resumes without loss, and relays sharing tenants never publish one
tenant twice at once."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaConsumer
from sqlalchemy import Engine, create_engine

from consumers.clients import ensure_topic, producer
from consumers.relay import Relay, tracker
from consumers.store_id import new_store_id, store_id
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger import migrate
from ledger.public_events import public_events
from ledger.settings import Settings
from tests.broker import GROUP_TIMEOUTS, kafka_broker, unique
from tests.conftest import open_store
from tests.pgserver import fresh_database
from tests.test_projections import seeded

LEDGER = str(Path(sys.executable).with_name("ledger"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kafka_broker(tmp_path_factory.mktemp("broker") / "tansu.log") as address:
        yield address


@pytest.fixture
def own_pg(pg_server: str) -> Iterator[str]:
    """A database of this test's own: the relay publishes every tenant of its store."""
    with fresh_database(pg_server, f"ledger_relay_{uuid.uuid4().hex[:12]}") as url:
        migrate.upgrade(Settings(database_url=url).sqlalchemy_url, partitions=4)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "own_pg")
    return found


@pytest.fixture
def opened(url: str) -> Iterator[tuple[LedgerStore, Engine]]:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    with open_store(url) as store:
        yield store, engine
    engine.dispose()


def receive_more(app: LedgerApplication, lot: str) -> None:
    app.receive("SCR-4X40", "BER1", "P-01", 3, "4.20", EventMetadata(), lot=lot)


def relay_to(broker: str, store: LedgerStore, engine: Engine, topic: str, **kw: Any) -> Relay:
    ensure_topic([broker], topic, partitions=4)
    return Relay(store, engine, producer([broker], "test-relay"), topic, store_id(engine), **kw)


def plain_messages(broker: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Every message of the topic as a plain client sees it (json and base64, nothing of the
    ledger's), until `expected` have arrived."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker,
        group_id=unique("reader"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **GROUP_TIMEOUTS,
    )
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found += records
        for records in consumer.poll(timeout_ms=1000).values():  # anything beyond: duplicates
            found += records
    finally:
        consumer.close()
    return found


def decoded(record: Any) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(record.value)
    return value


def test_every_event_published_in_order_keyed_by_tenant(
    broker: str, opened: tuple[LedgerStore, Engine]
) -> None:
    store, engine = opened
    apps = [seeded(store, 150, rng_seed=seed) for seed in (3, 4)]
    topic = unique("ledger.events")
    relay = relay_to(broker, store, engine, topic, batch_size=64)
    heads = {app.tenant_id: store.head(app.tenant_id).position for app in apps}
    assert relay.run_once() == sum(heads.values())
    assert all(store.tracked_position(tracker(topic), t) == h for t, h in heads.items())
    assert relay.run_once() == 0  # nothing new: nothing sent again

    records = plain_messages(broker, topic, sum(heads.values()))
    assert len(records) == sum(heads.values())
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    partitions: dict[str, set[int]] = {}
    for record in records:
        value = decoded(record)
        assert record.key.decode() == value["tenant_id"]
        by_tenant.setdefault(value["tenant_id"], []).append(value)
        partitions.setdefault(value["tenant_id"], set()).add(record.partition)
    sid = str(store_id(engine))
    for app in apps:
        tenant = str(app.tenant_id)
        assert len(partitions[tenant]) == 1  # one partition: the tenant's order is kept
        values = by_tenant[tenant]
        assert [v["position"] for v in values] == list(range(1, heads[app.tenant_id] + 1))
        assert {v["store_id"] for v in values} == {sid}
        previous = bytes(32)
        for value in values:  # the hash chain, recomputed from the messages alone
            previous = hashlib.sha256(previous + base64.b64decode(value["payload"])).digest()
            assert previous.hex() == value["hash"]
        assert previous == store.head(app.tenant_id).hash
        public = {
            e.position: e.as_dict()
            for e in public_events(store, app.tenant_id, 0, heads[app.tenant_id])
        }
        published = {v["position"]: v for v in values if v["type"] is not None}
        assert published.keys() == public.keys()
        for position, value in published.items():
            event = public[position]
            assert (value["event_id"], value["type"], value["type_version"]) == (
                event["event_id"],
                event["type"],
                event["version"],
            )
            assert value["data"] == json.loads(json.dumps(event["data"], default=str))
            assert value["actor"]["kind"] == "system"
        internal = [v for v in values if v["type"] is None]
        assert internal
        assert all(v["data"] is None for v in internal)


def test_only_new_events_follow(broker: str, opened: tuple[LedgerStore, Engine]) -> None:
    store, engine = opened
    app = seeded(store, 60)
    topic = unique("ledger.events")
    relay = relay_to(broker, store, engine, topic)
    first = relay.run_once()
    receive_more(app, "L-NEW")
    head = store.head(app.tenant_id).position
    assert relay.run_once() == head - first
    records = plain_messages(broker, topic, head)
    assert sorted(decoded(r)["position"] for r in records) == list(range(1, head + 1))


def test_follow_publishes_as_events_arrive(broker: str, opened: tuple[LedgerStore, Engine]) -> None:
    store, engine = opened
    app = seeded(store, 40)
    topic = unique("ledger.events")
    relay = relay_to(broker, store, engine, topic)
    stop = threading.Event()
    worker = threading.Thread(target=relay.follow, args=(stop,), kwargs={"interval": 0.05})
    worker.start()
    try:
        receive_more(app, "L-LATE")
        head = store.head(app.tenant_id).position
        deadline = time.monotonic() + 20
        while store.tracked_position(tracker(topic), app.tenant_id) < head:
            assert time.monotonic() < deadline, "the relay did not follow"
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


@pytest.mark.postgres
def test_relays_share_tenants_without_publishing_one_twice(broker: str, own_pg: str) -> None:
    engine = create_engine(Settings(database_url=own_pg).sqlalchemy_url)
    with open_store(own_pg) as store:
        apps = [seeded(store, 80, rng_seed=seed) for seed in range(4)]
        topic = unique("ledger.events")
        first = relay_to(broker, store, engine, topic, batch_size=16)
        second = relay_to(broker, store, engine, topic, batch_size=16)
        held = apps[0].tenant_id
        with first.locks.hold(held) as holding:
            assert holding
            second.run_once()  # every tenant but the one the first relay holds
            assert store.tracked_position(tracker(topic), held) == 0
        assert all(store.tracked_position(tracker(topic), a.tenant_id) > 0 for a in apps[1:])
        for app in apps:  # more events, then both relays at once
            receive_more(app, "L-RACE")
        threads = [threading.Thread(target=r.run_once) for r in (first, second, first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        total = sum(store.head(a.tenant_id).position for a in apps)
        records = plain_messages(broker, topic, total)
        published = Counter((decoded(r)["tenant_id"], decoded(r)["position"]) for r in records)
        assert len(published) == total
        assert max(published.values()) == 1  # no tenant was published by two relays at once
        first.close()
        second.close()
    engine.dispose()


@pytest.mark.postgres
def test_relay_killed_mid_stream_resumes_without_loss(broker: str, own_pg: str) -> None:
    engine = create_engine(Settings(database_url=own_pg).sqlalchemy_url)
    topic = unique("ledger.events")
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": own_pg,
        "LEDGER_KAFKA_BOOTSTRAP_SERVERS": broker,
        "LEDGER_KAFKA_TOPIC": topic,
    }
    with open_store(own_pg) as store:
        app = seeded(store, 3000)
        head = store.head(app.tenant_id).position
        relay = subprocess.Popen(
            [LEDGER, "relay", "--batch-size", "50"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while store.tracked_position(tracker(topic), app.tenant_id) < 200:
            assert relay.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.01)
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        acknowledged = store.tracked_position(tracker(topic), app.tenant_id)
        assert 0 < acknowledged < head  # killed mid-stream
        done = subprocess.run(
            [LEDGER, "relay", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert store.tracked_position(tracker(topic), app.tenant_id) == head
        records = plain_messages(broker, topic, head)
        positions = Counter(decoded(r)["position"] for r in records)
        assert set(positions) == set(range(1, head + 1))  # nothing lost (duplicates may be)
    engine.dispose()


def test_a_new_store_id_marks_the_messages_after_it(
    broker: str, opened: tuple[LedgerStore, Engine]
) -> None:
    store, engine = opened
    before = store_id(engine)
    after = new_store_id(engine)
    assert after != before
    assert store_id(engine) == after
    app = seeded(store, 20)
    topic = unique("ledger.events")
    relay_to(broker, store, engine, topic).run_once()
    head = store.head(app.tenant_id).position
    assert {decoded(r)["store_id"] for r in plain_messages(broker, topic, head)} == {str(after)}


def test_relay_without_kafka_settings_says_so(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_KAFKA")}
    env["LEDGER_DATABASE_URL"] = sqlite_url
    done = subprocess.run(
        [LEDGER, "relay", "--once"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "LEDGER_KAFKA_BOOTSTRAP_SERVERS" in done.stderr
    assert UUID(str(store_id(create_engine(Settings(database_url=sqlite_url).sqlalchemy_url))))
