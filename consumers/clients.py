"""Kafka clients as the ledger configures them: an idempotent producer, manual-commit consumers.

Nothing here depends on a particular broker: the same settings serve Apache Kafka, Redpanda or a
managed Kafka (and the test broker).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

#: Partitions of a topic the ledger creates (tenants spread over them by key).
PARTITIONS = 12


def producer(servers: Sequence[str], client_id: str, **options: Any) -> KafkaProducer:
    """An idempotent producer: every send acknowledged by all in-sync replicas, retried
    without duplicates within its session, in order per partition."""
    settings: dict[str, Any] = {
        "bootstrap_servers": list(servers),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_in_flight_requests_per_connection": 5,
        "retries": 2**31 - 1,
        "compression_type": None,
    }
    settings.update(options)
    return KafkaProducer(**settings)


def consumer(
    servers: Sequence[str], topic: str, group: str, client_id: str, **options: Any
) -> KafkaConsumer:
    """A member of `group` reading `topic` from its committed offsets (from the earliest
    message when the group has none), committing only when told to."""
    settings: dict[str, Any] = {
        "bootstrap_servers": list(servers),
        "group_id": group,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
    }
    settings.update(options)
    return KafkaConsumer(topic, **settings)


def ensure_topic(servers: Sequence[str], topic: str, partitions: int = PARTITIONS) -> None:
    """Creates the topic unless it exists (a cluster may also create topics on first use)."""
    admin = KafkaAdminClient(bootstrap_servers=list(servers), client_id="ledger-admin")
    try:
        if topic in set(admin.list_topics()):
            return
        with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
            admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
