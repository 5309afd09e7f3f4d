"""A projection consumer that dies by SIGKILL right before its first offset commit, after the
database effects of its first batch are committed.

Usage: python -m tests.kafka_kill DATABASE_URL BOOTSTRAP_SERVER TOPIC GROUP
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from consumers import clients
from consumers.feed import KafkaFeed
from consumers.store_id import store_id
from ledger import read_side
from tests.broker import GROUP_TIMEOUTS
from tests.following import open_engine, open_store

#: The group forgets this member soon after its death, so the next member joins sooner.
DYING_TIMEOUTS = {**GROUP_TIMEOUTS, "session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


def die(*args: Any, **kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(url: str, server: str, topic: str, group: str) -> int:
    store, engine = open_store(url), open_engine(url)
    consumer = clients.consumer([server], topic, group, "killed-feed", **DYING_TIMEOUTS)
    consumer.commit = die
    feed = KafkaFeed(
        store,
        engine,
        read_side.projections(),
        consumer,
        "killed-feed",
        store_id=store_id(engine),
    )
    feed.run(threading.Event())  # returns only if it is stopped, which nothing does
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
