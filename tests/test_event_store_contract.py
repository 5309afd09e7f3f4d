"""The event store's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.errors import ConcurrencyConflict
from domain.idempotency import IdempotencyKeyTaken, IdempotencyRecord
from domain.metadata import Actor, EventMetadata
from eventstore.envelope import ZERO_HASH
from eventstore.store import LedgerStore
from ledger.wiring import Ledger
from tests.aggregates import Counter

META = EventMetadata()


def new_counter(ledger: Ledger, tenant: UUID, name: str = "c") -> Counter:
    counter = Counter(name=name)
    ledger.app(tenant).save(counter, meta=META)
    return counter


def test_positions_of_a_tenant_start_at_one_and_follow_each_save(
    ledger: Ledger, tenant: UUID
) -> None:
    counter = new_counter(ledger, tenant)
    counter.increment()
    counter.increment()
    recordings = ledger.app(tenant).save(counter, meta=META)

    assert [r.notification.id for r in recordings] == [2, 3]
    assert [e.position for e in ledger.store.read(tenant)] == [1, 2, 3]
    assert ledger.store.head(tenant).position == 3


def test_concurrent_writers_on_several_tenants_leave_gap_free_positions_per_tenant(
    ledger: Ledger,
) -> None:
    tenants = [uuid4() for _ in range(3)]
    saves_per_writer, writers_per_tenant = 15, 3
    errors: list[BaseException] = []

    def write(tenant: UUID) -> None:
        try:
            counter = new_counter(ledger, tenant)
            for _ in range(saves_per_writer):
                counter.increment()
                ledger.app(tenant).save(counter, meta=META)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(t,))
        for t in tenants
        for _ in range(writers_per_tenant)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    expected = writers_per_tenant * (saves_per_writer + 1)
    for tenant in tenants:
        events = list(ledger.store.iter_events(tenant, page_size=7))
        assert [e.position for e in events] == list(range(1, expected + 1))
        versions_by_stream: dict[UUID, list[int]] = defaultdict(list)
        for event in events:
            versions_by_stream[event.stream_id].append(event.version)
        assert all(v == list(range(1, len(v) + 1)) for v in versions_by_stream.values())
        assert ledger.store.verify(tenant).ok


def test_a_follower_reading_while_writers_commit_never_skips_a_position(
    ledger: Ledger, tenant: UUID
) -> None:
    """Positions are given in commit order: a reader that follows them sees every event."""
    done = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            page = ledger.store.read(tenant, after=after, limit=50)
            seen.extend(e.position for e in page)
            after = page[-1].position if page else after
            if finished and not page:
                return

    def write() -> None:
        counter = new_counter(ledger, tenant)
        for _ in range(20):
            counter.increment()
            ledger.app(tenant).save(counter, meta=META)

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write) for _ in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    follower.join()

    assert seen == list(range(1, 4 * 21 + 1))


def test_a_stale_write_raises_the_librarys_concurrency_error(ledger: Ledger, tenant: UUID) -> None:
    app = ledger.app(tenant)
    counter = new_counter(ledger, tenant)
    first: Counter = app.repository.get(counter.id)
    second: Counter = app.repository.get(counter.id)
    first.increment()
    second.increment(5)
    app.save(first, meta=META)

    with pytest.raises(IntegrityError):
        app.save(second, meta=META)
    assert app.repository.get(counter.id).total == 1
    assert ledger.store.head(tenant).position == 2


def test_a_stale_write_through_record_is_a_typed_concurrency_conflict(
    ledger: Ledger, tenant: UUID
) -> None:
    app = ledger.app(tenant)
    counter = new_counter(ledger, tenant)
    stale: Counter = app.repository.get(counter.id)
    counter.increment()
    app.record(counter, meta=META)
    stale.increment()

    with pytest.raises(ConcurrencyConflict):
        app.record(stale, meta=META)


def test_a_save_of_several_aggregates_is_all_or_nothing(ledger: Ledger, tenant: UUID) -> None:
    app = ledger.app(tenant)
    stale_target = new_counter(ledger, tenant, "stale")
    stale: Counter = app.repository.get(stale_target.id)
    stale_target.increment()
    app.save(stale_target, meta=META)
    fresh = Counter(name="fresh")
    fresh.increment()
    stale.increment()
    head_before = ledger.store.head(tenant)

    with pytest.raises(IntegrityError):
        app.save(fresh, stale, meta=META)

    assert ledger.store.head(tenant) == head_before
    assert fresh.id not in app.repository
    assert [e.position for e in ledger.store.read(tenant)] == [1, 2]


def test_a_save_of_several_aggregates_gets_consecutive_positions(
    ledger: Ledger, tenant: UUID
) -> None:
    app = ledger.app(tenant)
    one, two = Counter(name="one"), Counter(name="two")
    one.increment()
    two.increment()
    recordings = app.save(one, two, meta=META)

    assert [r.notification.id for r in recordings] == [1, 2, 3, 4]
    assert app.repository.get(one.id).total == 1
    assert app.repository.get(two.id).total == 1
    assert ledger.store.verify(tenant).ok


def test_reading_tenant_a_never_returns_an_event_of_tenant_b(ledger: Ledger) -> None:
    tenant_a, tenant_b = uuid4(), uuid4()
    counter = new_counter(ledger, tenant_a, "a")
    twin = Counter(name="b")  # the same stream id in another tenant
    object.__setattr__(twin, "_id", counter.id)
    for event in twin.collect_events():
        object.__setattr__(event, "originator_id", counter.id)
        ledger.app(tenant_b).save(event, meta=META)
    counter.increment(3)
    ledger.app(tenant_a).save(counter, meta=META)

    assert ledger.app(tenant_a).repository.get(counter.id).name == "a"
    assert ledger.app(tenant_b).repository.get(counter.id).name == "b"
    assert ledger.app(tenant_b).repository.get(counter.id).total == 0
    assert {e.tenant_id for e in ledger.store.read(tenant_a)} == {tenant_a}
    assert [e.position for e in ledger.store.read(tenant_b)] == [1]
    notifications = ledger.app(tenant_b).recorder.select_notifications(start=1, limit=10)
    assert [n.id for n in notifications] == [1]
    assert ledger.app(tenant_b).recorder.max_notification_id() == 1


def test_every_event_carries_its_metadata(ledger: Ledger, tenant: UUID) -> None:
    cause = uuid4()
    effective = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    meta = EventMetadata(
        actor=Actor(kind="api_key", id="key-7", roles=("warehouse_operator",)),
        request_id="req-1",
        idempotency_key="idem-1",
        causation_id=cause,
        effective_at=effective,
    )
    before = datetime.now(UTC)
    ledger.app(tenant).save(Counter(name="m"), meta=meta)
    ledger.app(tenant).save(Counter(name="n"), meta=EventMetadata())

    first, second = ledger.store.read(tenant)
    assert first.header["actor"] == {
        "kind": "api_key",
        "id": "key-7",
        "roles": ["warehouse_operator"],
    }
    assert first.header["request_id"] == "req-1"
    assert first.header["idempotency_key"] == "idem-1"
    assert first.header["causation_id"] == str(cause)
    assert first.header["effective_at"] == "2026-11-01T08:30:00Z"
    recorded = datetime.fromisoformat(first.header["recorded_at"])
    assert recorded.utcoffset() == timedelta(0)
    assert before <= recorded <= datetime.now(UTC)
    assert second.header["actor"]["kind"] == "system"
    assert second.header["effective_at"] == second.header["recorded_at"]


def test_the_hash_chain_can_be_recomputed_from_the_payloads_alone(
    ledger: Ledger, tenant: UUID
) -> None:
    counter = new_counter(ledger, tenant)
    for by in range(5):
        counter.increment(by)
    ledger.app(tenant).save(counter, meta=META)

    previous = bytes(32)
    for event in ledger.store.read(tenant):
        previous = hashlib.sha256(previous + event.payload).digest()
        assert event.hash == previous
    assert ledger.store.head(tenant).hash == previous
    assert ledger.store.verify(tenant).head_hash == previous


def test_reading_in_pages_returns_every_event_once_in_order(ledger: Ledger, tenant: UUID) -> None:
    counter = new_counter(ledger, tenant)
    for _ in range(9):
        counter.increment()
        ledger.app(tenant).save(counter, meta=META)

    assert [e.position for e in ledger.store.read(tenant, after=3, limit=4)] == [4, 5, 6, 7]
    assert [e.position for e in ledger.store.iter_events(tenant, after=2, page_size=3)] == list(
        range(3, 11)
    )


def test_a_range_read_returns_the_positions_in_it_of_the_kinds_asked(
    ledger: Ledger, tenant: UUID
) -> None:
    counter = new_counter(ledger, tenant)  # position 1: Counter.Created
    for _ in range(6):
        counter.increment()
        ledger.app(tenant).save(counter, meta=META)  # positions 2..7: Counter.Incremented
    new_counter(ledger, tenant, "d")  # position 8
    new_counter(ledger, uuid4(), "other tenant")
    store = ledger.store

    assert [e.position for e in store.read_range(tenant, 2, 5)] == [3, 4, 5]
    assert [e.position for e in store.read_range(tenant, 0, 100, {"Counter.Created"})] == [1, 8]
    assert [e.position for e in store.read_range(tenant, 0, 7, {"Counter.Created"})] == [1]
    assert [e.position for e in store.read_range(tenant, 6, 100, {"Counter.Incremented"})] == [7]
    assert store.read_range(tenant, 0, 100, set()) == []
    assert store.read_range(tenant, 8, 100) == []
    whole = store.read_range(tenant, 0, 8)
    assert whole == store.read(tenant)
    # the generic implementation agrees with the store's own
    generic = LedgerStore.read_range(store, tenant, 1, 6, {"Counter.Incremented", "Nope"})
    assert generic == store.read_range(tenant, 1, 6, {"Counter.Incremented", "Nope"})
    assert [e.position for e in generic] == [2, 3, 4, 5, 6]


def test_a_tenant_without_events_is_at_position_zero(store: LedgerStore, tenant: UUID) -> None:
    head = store.head(tenant)
    assert (head.position, head.hash) == (0, ZERO_HASH)
    assert store.read(tenant) == []
    assert store.verify(tenant).ok


def test_tenants_ahead_of_a_tracker_are_those_with_unprocessed_positions(ledger: Ledger) -> None:
    behind, caught_up, untracked = uuid4(), uuid4(), uuid4()
    for tenant in (behind, caught_up, untracked):
        new_counter(ledger, tenant)
        new_counter(ledger, tenant)
    tracker = f"projection-{uuid4().hex}"
    ledger.store.record_tracking(tracker, behind, 1)
    ledger.store.record_tracking(tracker, caught_up, 2)
    ledger.store.record_tracking(tracker, caught_up, 1)  # never moves back

    lags = {lag.tenant_id: lag for lag in ledger.store.tenants_ahead_of(tracker)}

    assert caught_up not in lags
    assert (lags[behind].head, lags[behind].tracked, lags[behind].lag) == (2, 1, 1)
    assert (lags[untracked].tracked, lags[untracked].lag) == (0, 2)
    assert ledger.store.tracked_position(tracker, caught_up) == 2


def test_loading_a_long_stream_starts_from_its_latest_snapshot(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = uuid4()
    ledger = Ledger(store, snapshot_interval=10, snapshotted=(Counter,))
    app = ledger.app(tenant)
    counter = Counter(name="long")
    app.save(counter, meta=META)
    for _ in range(94):
        counter.increment(2)
        app.save(counter, meta=META)

    read_back: list[int] = []
    select = app.recorder.select_events

    def counting_select(
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        events = select(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        read_back.append(len(events))
        return events

    monkeypatch.setattr(app.recorder, "select_events", counting_select)
    loaded: Counter = app.repository.get(counter.id)

    assert (loaded.version, loaded.total) == (95, 188)
    assert read_back == [5]  # events after the snapshot at version 90
    assert app.snapshots is not None
    assert [s.originator_version for s in app.snapshots.get(counter.id)] == list(range(10, 91, 10))


def test_an_idempotency_key_is_recorded_with_the_events_it_caused(
    ledger: Ledger, tenant: UUID
) -> None:
    app = ledger.app(tenant)
    record = IdempotencyRecord("key-1", b"f" * 32, b'{"ok":true}')
    app.save(Counter(name="a"), Counter(name="b"), meta=META, idempotency=record)

    found = app.recorder.select_idempotency("key-1")  # type: ignore[attr-defined]
    assert found == IdempotencyRecord("key-1", b"f" * 32, b'{"ok":true}', position=2)
    assert app.recorder.select_idempotency("other") is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("events", [1, 2])
def test_a_second_save_under_a_recorded_key_writes_nothing(
    ledger: Ledger, tenant: UUID, events: int
) -> None:
    app = ledger.app(tenant)
    app.save(Counter(name="first"), meta=META, idempotency=IdempotencyRecord("k", b"1", b"{}"))
    head = ledger.store.head(tenant)

    with pytest.raises(IdempotencyKeyTaken):
        app.save(
            *[Counter(name=f"again-{i}") for i in range(events)],
            meta=META,
            idempotency=IdempotencyRecord("k", b"2", b"{}"),
        )
    assert ledger.store.head(tenant) == head
    assert app.recorder.select_idempotency("k").fingerprint == b"1"  # type: ignore[attr-defined]


def test_idempotency_keys_are_scoped_to_the_tenant(ledger: Ledger) -> None:
    one, two = uuid4(), uuid4()
    ledger.app(one).save(
        Counter(name="x"), meta=META, idempotency=IdempotencyRecord("k", b"1", b"")
    )
    ledger.app(two).save(
        Counter(name="y"), meta=META, idempotency=IdempotencyRecord("k", b"2", b"")
    )
    assert ledger.app(two).recorder.select_idempotency("k").fingerprint == b"2"  # type: ignore[attr-defined]
