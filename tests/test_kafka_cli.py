"""The Kafka commands end to end, as an operator runs them: `ledger relay`, `ledger consume
projections|alerts|webhooks` and `ledger webhooks replay-dlq` as processes against a real
Kafka-protocol broker (tests/broker.py) and a local webhook receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, select

from domain.metadata import EventMetadata
from domain.tenant import Tenant
from ledger import read_side
from ledger.public_events import TYPES
from ledger.sealing import new_key, sealer
from ledger.settings import Settings
from projections.schema import ProjectionTracking
from projections.webhook_log import DELIVERIES
from tests.broker import kafka_broker, unique
from tests.conftest import open_store
from tests.test_projections import seeded
from tests.webhook_receiver import Receiver, webhook_receiver

LEDGER = str(Path(sys.executable).with_name("ledger"))
SECRET_KEY = new_key()


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with kafka_broker() as address:
        yield address


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


def ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LEDGER, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_relay_consumers_and_dead_letter_replay_as_processes(
    broker: str, sqlite_url: str, receiver: Receiver
) -> None:
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": sqlite_url,
        "LEDGER_KAFKA_BOOTSTRAP_SERVERS": broker,
        "LEDGER_KAFKA_TOPIC": unique("ledger.events"),
        "LEDGER_KAFKA_DLQ_TOPIC": unique("ledger.webhooks.dlq"),
        "LEDGER_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LEDGER_SECRET_KEY": SECRET_KEY,
        "LEDGER_WEBHOOK_ALLOW_PRIVATE": "true",
        "LEDGER_WEBHOOK_MAX_ATTEMPTS": "1",
    }
    settings = Settings(database_url=sqlite_url, secret_key=SecretStr(SECRET_KEY))
    engine = create_engine(settings.sqlalchemy_url)
    with open_store(sqlite_url) as store:
        app = seeded(store, 10)
        tenant = app.load(app.tenant_id, Tenant)
        tenant.register_webhook(
            receiver.url,
            ["lot.registered"],
            "whsec-0123456789abcdef",
            sealer(settings),
            frozenset(TYPES),
        )
        app.record(tenant, meta=EventMetadata())
        app.receive("SCR-4X40", "BER1", "P-01", 3, "4.20", EventMetadata(), lot="L-CLI")
        head = store.head(app.tenant_id).position

    relayed = ledger(env, "relay", "--once")
    assert relayed.returncode == 0, relayed.stderr
    assert f"published {head} events" in relayed.stdout

    projected = ledger(env, "consume", "projections", "--once")
    assert projected.returncode == 0, projected.stderr
    assert f"{head} applied" in projected.stdout
    alerted = ledger(env, "consume", "alerts", "--once")
    assert alerted.returncode == 0, alerted.stderr
    with engine.connect() as conn:
        tracked = {
            row.projection: row.position
            for row in conn.execute(
                select(ProjectionTracking).where(ProjectionTracking.tenant_id == app.tenant_id)
            )
        }
    names = [p.name for p in read_side.projections()]
    assert {name: tracked.get(name) for name in [*names, "alerts"]} == dict.fromkeys(
        [*names, "alerts"], head
    )

    receiver.always_fail = True
    delivered = ledger(env, "consume", "webhooks", "--once")
    assert delivered.returncode == 0, delivered.stderr
    with engine.connect() as conn:
        statuses = [row.status for row in conn.execute(select(DELIVERIES.c.status))]
    assert statuses == ["dead"]  # one lot registered after the webhook; one attempt allowed
    assert len(receiver.received) == 1
    assert receiver.delivered() == []

    still_failing = ledger(env, "webhooks", "replay-dlq")
    assert still_failing.returncode == 1
    assert "delivered 0, failed again 1" in still_failing.stdout
    receiver.always_fail = False
    replayed = ledger(env, "webhooks", "replay-dlq")
    assert replayed.returncode == 0, replayed.stderr
    assert "delivered 1, failed again 0" in replayed.stdout
    assert len(receiver.delivered()) == 1
    assert receiver.delivered()[0].json["type"] == "lot.registered"
    engine.dispose()
