"""Parked messages: what a consumer could not read (poison), kept so it can move on.

A parked message is stored with where it came from and why it could not be read; the partition
goes on past it. Parking the same message again (it was read again after a restart) changes
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from projections.schema import UtcDateTime

log = logging.getLogger(__name__)

PARKED = Table(
    "consumer_parked",
    MetaData(),
    Column("consumer", String(200), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    Column("error", Text, nullable=False),
    Column("parked_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class Parked:
    """A message a consumer could not read, and why."""

    consumer: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: str

    @classmethod
    def of(cls, consumer: str, tp: Any, record: Any, error: str) -> Parked:
        """The parked form of a Kafka `record` read from the partition `tp`."""
        return cls(consumer, tp.topic, tp.partition, record.offset, record.key, record.value, error)


def park(conn: Connection, messages: Sequence[Parked]) -> None:
    """Stores the messages (in the caller's transaction); one already parked stays as it was."""
    if not messages:
        return
    for m in messages:
        log.error(
            "consumer %s parked %s[%s]@%s: %s", m.consumer, m.topic, m.partition, m.offset, m.error
        )
    now = datetime.now(UTC)
    rows = [
        {
            "consumer": m.consumer,
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "key": m.key,
            "value": m.value,
            "error": m.error[:4000],
            "parked_at": now,
        }
        for m in messages
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(PARKED).on_conflict_do_nothing(), rows)


def parked(engine: Engine, consumer: str) -> list[Parked]:
    """The messages a consumer parked, by topic, partition and offset."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(PARKED)
            .where(PARKED.c.consumer == consumer)
            .order_by(PARKED.c.topic, PARKED.c.partition, PARKED.c.offset)
        ).all()
    return [
        Parked(r.consumer, r.topic, r.partition, r.offset, r.key, r.value, r.error) for r in rows
    ]
