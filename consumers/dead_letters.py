"""Dead letters: webhook deliveries that ran out of attempts, parked in a Kafka topic, and their
replay once the endpoint is fixed.

Each dead letter is one message keyed by tenant id whose value is a JSON object::

    {"tenant_id": "…", "webhook_id": "…", "delivery_id": "…", "event_position": 42,
     "event_type": "stock.received", "attempts": 8, "last_error": "HTTP 503",
     "payload": "<the JSON body the delivery sends>"}

`replay_dead_letters` reads the topic from the group's committed offsets and makes one fresh
attempt of each letter's delivery, sent at once (a new attempt in the log, numbered after the
delivery's last). Delivered: the letter's offset is committed. Failed: that attempt is `dead`,
the letter is published again (attempts and error updated, so it is not lost) and then the offset
is committed. Letters of a delivery that is no longer dead (delivered since, or being retried by
the dispatcher) or of a webhook that is disabled or unknown here are skipped, as is a message
that is not a dead letter (logged). Offsets are committed only once the outcome is durable. A
replay stops when nothing arrives for `idle_seconds`, or at letters it published itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from kafka import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition
from sqlalchemy.exc import IntegrityError

from consumers import clients
from consumers.delivery import Dispatcher
from consumers.delivery_log import Due, Outcome, finish, last_attempt, pending_row, subscription
from consumers.metrics import WEBHOOK_ATTEMPTS
from projections.webhook_log import DELIVERIES

log = logging.getLogger(__name__)
ACK_TIMEOUT_SECONDS = 30.0
#: Marks the letters a replay published again, so that it stops when it meets them.
HEADER_REPLAY = "ledger-replay"


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that ran out of attempts: whose, what, how often tried, the last error."""

    tenant_id: UUID
    webhook_id: str
    delivery_id: str
    event_position: int
    event_type: str
    attempts: int
    last_error: str | None
    payload: str

    def encode(self) -> bytes:
        return orjson.dumps({**asdict(self), "tenant_id": str(self.tenant_id)})

    @classmethod
    def parse(cls, value: bytes | None) -> DeadLetter:
        """The letter in a message's value (ValueError if it is not one)."""
        try:
            doc = orjson.loads(value or b"")
            return cls(
                tenant_id=UUID(doc["tenant_id"]),
                webhook_id=str(doc["webhook_id"]),
                delivery_id=str(doc["delivery_id"]),
                event_position=int(doc["event_position"]),
                event_type=str(doc["event_type"]),
                attempts=int(doc["attempts"]),
                last_error=None if doc.get("last_error") is None else str(doc["last_error"]),
                payload=str(doc["payload"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a dead letter: {type(error).__name__}: {error}") from None

    @classmethod
    def of(cls, due: Due, outcome: Outcome) -> DeadLetter:
        return cls(
            due.tenant_id,
            due.webhook_id,
            due.delivery_id,
            due.event_position,
            due.event_type,
            due.attempt,
            outcome.error,
            due.payload,
        )


class DeadLetters:
    """Publishes dead letters to `topic`, each acknowledged by the broker before it returns."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    @classmethod
    def open(cls, servers: Sequence[str], topic: str, client_id: str) -> DeadLetters:
        """An idempotent producer to `topic`, created unless it exists."""
        clients.ensure_topic(servers, topic)
        return cls(clients.producer(servers, client_id), topic)

    def publish(self, letter: DeadLetter, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        sent = self.producer.send(
            self.topic,
            key=str(letter.tenant_id).encode(),
            value=letter.encode(),
            headers=list(headers),
        )
        self.producer.flush(timeout=ACK_TIMEOUT_SECONDS)
        sent.get(timeout=ACK_TIMEOUT_SECONDS)

    def publish_due(self, due: Due, outcome: Outcome) -> None:
        """Publishes a claimed attempt that was the delivery's last."""
        self.publish(DeadLetter.of(due, outcome))

    def close(self) -> None:
        self.producer.close()


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: letters read, delivered, failed again (published back), skipped."""

    replayed: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0


def attempt_again(dispatcher: Dispatcher, letter: DeadLetter) -> tuple[int, Outcome] | None:
    """One fresh attempt of a dead delivery, sent now: its number and outcome (`delivered` or
    `dead`), or None when there is nothing to replay (see the module's docstring)."""
    now = datetime.now(UTC)
    with dispatcher.engine.begin() as conn:
        hook = subscription(conn, letter.tenant_id, letter.webhook_id)
        if hook is None or hook.disabled_position is not None:
            return None
        latest = last_attempt(conn, letter.tenant_id, letter.webhook_id, letter.delivery_id)
        if latest is not None and latest[1] != "dead":
            return None
        attempt = (letter.attempts if latest is None else latest[0]) + 1
        lease = now + dispatcher.lease
        due = Due(
            letter.tenant_id,
            letter.webhook_id,
            letter.delivery_id,
            attempt,
            letter.event_position,
            letter.event_type,
            letter.payload,
            hook.url,
            hook.sealed_secret,
            lease,
        )
        try:
            with conn.begin_nested():
                conn.execute(DELIVERIES.insert(), [pending_row(due, attempt, lease)])
        except IntegrityError:
            return None  # another replay of the same delivery is on it
    outcome = dispatcher.send(due)
    if outcome.status != "delivered":
        outcome = replace(outcome, status="dead")
    with dispatcher.engine.begin() as conn:
        finish(conn, due, outcome)
    WEBHOOK_ATTEMPTS.labels(outcome.status).inc()
    return attempt, outcome


def replay_dead_letters(
    servers: Sequence[str],
    topic: str,
    group: str,
    dispatcher: Dispatcher,
    *,
    idle_seconds: float = 2.0,
    join_seconds: float = 60.0,
    client_id: str = "ledger-webhooks-replay",
    consumer_options: Mapping[str, Any] | None = None,
) -> ReplayResult:
    """Replays the dead letters of `topic` that `group` has not committed (see the module's
    docstring); `consumer_options` go to the Kafka consumer (e.g. session timeouts)."""
    clients.ensure_topic(servers, topic)
    consumer = clients.consumer(servers, topic, group, client_id, **(consumer_options or {}))
    letters = DeadLetters(clients.producer(servers, client_id), topic)
    run = uuid4().hex.encode()
    counts = {"replayed": 0, "delivered": 0, "failed": 0, "skipped": 0}
    held: set[TopicPartition] = set()
    try:
        joining_until = time.monotonic() + join_seconds
        idle_since = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=200)
            assigned = consumer.assignment()
            now = time.monotonic()
            if not assigned:
                if now > joining_until:
                    break
                idle_since = now
                continue
            if batch:
                idle_since = now
            elif now - idle_since >= idle_seconds or held >= assigned:
                break
            for partition, records in batch.items():
                for record in records:
                    if (HEADER_REPLAY, run) in list(record.headers or []):
                        held.add(partition)  # published by this replay: for the next one
                        consumer.pause(partition)
                        break
                    counts[_replay(record.value, dispatcher, letters, run)] += 1
                    consumer.commit({partition: OffsetAndMetadata(record.offset + 1, None, -1)})
    finally:
        consumer.close()
        letters.close()
    replayed = counts["delivered"] + counts["failed"] + counts["skipped"]
    return ReplayResult(replayed, counts["delivered"], counts["failed"], counts["skipped"])


def _replay(value: bytes | None, dispatcher: Dispatcher, letters: DeadLetters, run: bytes) -> str:
    """Replays one message: "delivered", "failed" (published back) or "skipped"."""
    try:
        letter = DeadLetter.parse(value)
    except ValueError as error:
        log.error("webhook replay: skipping a message that is not a dead letter: %s", error)
        return "skipped"
    done = attempt_again(dispatcher, letter)
    if done is None:
        return "skipped"
    attempt, outcome = done
    if outcome.status == "delivered":
        return "delivered"
    again = replace(letter, attempts=attempt, last_error=outcome.error)
    letters.publish(again, headers=[(HEADER_REPLAY, run)])
    return "failed"
