"""Racing commands for the PostgreSQL concurrency tests: threads released together."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.records import RecordedEvent
from eventstore.store import LedgerStore
from ledger.wiring import Ledger

T = TypeVar("T")

THREADS = 16
SKU = "RACE-1"


def new_tenant(ledger: Ledger, prefix: str) -> LedgerApplication:
    slug = f"{prefix}-{uuid.uuid4().hex[:12]}"
    app = ledger.app(tenant_id_for(slug))
    app.create_tenant(slug, None, "UTC", EventMetadata())
    app.register_product(SKU, "Racing widget", EventMetadata())
    return app


def add_warehouse(app: LedgerApplication, code: str, *bins: str) -> None:
    app.register_warehouse(code, f"Warehouse {code}", "UTC", EventMetadata())
    for bin_code in bins:
        app.add_bin(code, bin_code, EventMetadata())


def race(count: int, command: Callable[[int], T]) -> list[T | Exception]:
    """Runs `command(i)` for every i on its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(count)
    outcomes: list[T | Exception | None] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = command(i)
        except Exception as error:  # every outcome, refusal or not, is checked by the test
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,), name=f"race-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing command did not finish"
    finished = [outcome for outcome in outcomes if outcome is not None]
    assert len(finished) == count
    return finished


def chain_of(store: LedgerStore, tenant_id: UUID) -> list[RecordedEvent]:
    """The tenant's events, checked gap-free from position 1 to the head, hash chain verified."""
    events = list(store.iter_events(tenant_id))
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    assert store.head(tenant_id).position == len(events)
    verification = store.verify(tenant_id)
    assert verification.ok, verification.reason
    return events
