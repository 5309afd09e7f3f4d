"""Altering or deleting stored rows is refused, and if forced, verification names the position."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from uuid import UUID

import psycopg
import pytest

from domain.metadata import EventMetadata
from ledger.wiring import Ledger
from tests.aggregates import Counter
from tests.tamper import plain_update, tamper

TAMPERING = {
    "payload altered": (
        "UPDATE ledger_events SET payload = payload || %s WHERE tenant_id = %s AND position = %s",
        (b" ",),
    ),
    "hash replaced": (
        "UPDATE ledger_events SET hash = %s WHERE tenant_id = %s AND position = %s",
        (bytes(32),),
    ),
    "topic column altered": (
        "UPDATE ledger_events SET topic = %s WHERE tenant_id = %s AND position = %s",
        ("tests.aggregates:Other",),
    ),
    "row deleted": ("DELETE FROM ledger_events WHERE tenant_id = %s AND position = %s", ()),
}


def six_events(ledger: Ledger, tenant: UUID) -> None:
    counter = Counter(name="audited")
    ledger.app(tenant).save(counter, meta=EventMetadata())
    for _ in range(5):
        counter.increment()
        ledger.app(tenant).save(counter, meta=EventMetadata())


@pytest.mark.parametrize("kind", sorted(TAMPERING))
@pytest.mark.parametrize("position", [1, 4, 6])
def test_verification_fails_at_the_tampered_position(
    ledger: Ledger, tenant: UUID, database_url: str, kind: str, position: int
) -> None:
    six_events(ledger, tenant)
    assert ledger.store.verify(tenant).ok
    statement, extra = TAMPERING[kind]

    assert tamper(database_url, statement, tenant, position, *extra) == 1
    result = ledger.store.verify(tenant)

    assert not result.ok
    assert result.first_bad_position == position
    assert result.checked_to_position == position - 1


def test_another_tenants_chain_is_unaffected_by_tampering(
    ledger: Ledger, tenant: UUID, database_url: str
) -> None:
    other = UUID(int=tenant.int ^ 1)
    six_events(ledger, tenant)
    six_events(ledger, other)
    tamper(database_url, *TAMPERING["row deleted"][:1], tenant, 3)

    assert ledger.store.verify(other).ok
    assert ledger.store.verify(tenant).first_bad_position == 3


def test_stored_events_cannot_be_updated_or_deleted_through_plain_sql(
    ledger: Ledger, tenant: UUID, database_url: str
) -> None:
    six_events(ledger, tenant)

    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.InsufficientPrivilege)):
        plain_update(database_url, tenant)
    assert ledger.store.verify(tenant).ok


def test_events_appended_while_verifying_are_not_a_break(
    ledger: Ledger, tenant: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    six_events(ledger, tenant)
    store = ledger.store
    before = store.head(tenant)
    counter: Counter = ledger.app(tenant).repository.get(next(iter_streams(ledger, tenant)))
    counter.increment()
    ledger.app(tenant).save(counter, meta=EventMetadata())  # lands after the head was read
    heads = iter([before])
    real_head = type(store).head
    monkeypatch.setattr(store, "head", lambda t: next(heads, None) or real_head(store, t))
    result = store.verify(tenant)
    assert (result.ok, result.checked_to_position) == (True, 6)


def test_a_stored_event_beyond_the_head_is_a_break(
    ledger: Ledger, tenant: UUID, database_url: str
) -> None:
    six_events(ledger, tenant)
    copied = (
        "INSERT INTO ledger_events (tenant_id, originator_id, originator_version, position,"
        " topic, payload, hash) SELECT tenant_id, originator_id, originator_version + 100,"
        " position + 1, topic, payload, hash FROM ledger_events"
        " WHERE tenant_id = %s AND position = %s"
    )
    assert tamper(database_url, copied, tenant, 6) == 1
    result = ledger.store.verify(tenant)
    assert (result.ok, result.first_bad_position) == (False, 7)
    assert result.reason is not None
    assert "beyond the head" in result.reason


def iter_streams(ledger: Ledger, tenant: UUID) -> Iterator[UUID]:
    for event in ledger.store.iter_events(tenant):
        yield event.stream_id
