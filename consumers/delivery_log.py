"""The dispatcher's reads and writes of the webhook delivery log (`projections.webhook_log`).

A dispatcher claims a pending attempt by moving its `next_attempt_at` forward to the end of a
lease, on the condition that it still holds the value it read (`claim`); its outcome is recorded
on the condition that the lease is still its own (`finish`). So several dispatcher processes never
send the same attempt at once, and one that dies mid-attempt leaves it due again when the lease
ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from projections.webhook_log import DELIVERIES, SUBSCRIPTIONS, DeliveryStatus


def insert_absent(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts the rows whose primary key is not taken yet (the others are left as they are)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))


@dataclass(frozen=True)
class Due:
    """A pending attempt as the dispatcher sends it: the webhook's URL and sealed secret, the
    body, and `next_attempt_at` as read (after `claim`: the end of the lease)."""

    tenant_id: UUID
    webhook_id: str
    delivery_id: str
    attempt: int
    event_position: int
    event_type: str
    payload: str
    url: str
    sealed_secret: str
    next_attempt_at: datetime


def due_heads(conn: Connection, now: datetime, limit: int) -> list[Due]:
    """Up to `limit` attempts due by `now`, at most one per webhook: each active webhook's
    pending attempt of its earliest event, if that one is due (a later event waits for it),
    the longest-waiting first, so one webhook's backlog never holds back another's.

    It is driven by the active webhooks (one index lookup each for its earliest pending
    event), so its cost does not grow with a backlog of pending deliveries."""
    head, earlier, subs = DELIVERIES.alias("head"), DELIVERIES.alias("earlier"), SUBSCRIPTIONS
    first_pending = (
        select(func.min(earlier.c.event_position))
        .where(
            earlier.c.tenant_id == subs.c.tenant_id,
            earlier.c.webhook_id == subs.c.webhook_id,
            earlier.c.status == "pending",
        )
        .scalar_subquery()
    )
    # OFFSET 0 keeps the planner from merging this into the join (which would look up the
    # earliest pending event once per pending delivery instead of once per webhook).
    hooks = (
        select(
            subs.c.tenant_id,
            subs.c.webhook_id,
            subs.c.url,
            subs.c.sealed_secret,
            first_pending.label("first_pending"),
        )
        .where(subs.c.disabled_position.is_(None))
        .offset(0)
        .subquery("hooks")
    )
    query = (
        select(
            head.c.tenant_id,
            head.c.webhook_id,
            head.c.delivery_id,
            head.c.attempt,
            head.c.event_position,
            head.c.event_type,
            head.c.payload,
            hooks.c.url,
            hooks.c.sealed_secret,
            head.c.next_attempt_at,
        )
        .select_from(hooks)
        .join(
            head,
            and_(
                head.c.tenant_id == hooks.c.tenant_id,
                head.c.webhook_id == hooks.c.webhook_id,
                head.c.event_position == hooks.c.first_pending,
            ),
        )
        .where(head.c.status == "pending", head.c.next_attempt_at <= now)
        .order_by(head.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":  # claimers skip, never wait on, each other's rows
        query = query.with_for_update(skip_locked=True, of=head)
    return [Due(**row._mapping) for row in conn.execute(query)]


def _attempt_row(due: Due) -> Any:
    columns = DELIVERIES.c
    return and_(
        columns.tenant_id == due.tenant_id,
        columns.webhook_id == due.webhook_id,
        columns.delivery_id == due.delivery_id,
        columns.attempt == due.attempt,
        columns.status == "pending",
        columns.next_attempt_at == due.next_attempt_at,
    )


def claim(conn: Connection, due: Due, lease_until: datetime) -> Due | None:
    """The attempt leased to the caller until `lease_until`, or None if another took it first."""
    moved = conn.execute(
        update(DELIVERIES).where(_attempt_row(due)).values(next_attempt_at=lease_until)
    )
    return replace(due, next_attempt_at=lease_until) if moved.rowcount == 1 else None


@dataclass(frozen=True)
class Outcome:
    """What an attempt came to."""

    status: DeliveryStatus
    attempted_at: datetime
    response_status: int | None = None
    error: str | None = None


def finish(conn: Connection, due: Due, outcome: Outcome, retry_at: datetime | None = None) -> bool:
    """Records a claimed attempt's outcome (and, given `retry_at`, adds the next attempt, due
    then); False, recording nothing, when the lease is no longer the caller's."""
    if outcome.status == "pending":
        raise ValueError("an outcome is not pending")
    done = conn.execute(
        update(DELIVERIES)
        .where(_attempt_row(due))
        .values(
            status=outcome.status,
            response_status=outcome.response_status,
            error=outcome.error,
            attempted_at=outcome.attempted_at,
            next_attempt_at=retry_at,
            payload=due.payload if outcome.status == "dead" else None,
        )
    )
    if done.rowcount != 1:
        return False
    if retry_at is not None:
        conn.execute(DELIVERIES.insert(), [pending_row(due, due.attempt + 1, retry_at)])
    return True


def pending_row(due: Due, attempt: int, next_attempt_at: datetime) -> dict[str, Any]:
    """A pending attempt of the delivery `due` names."""
    return {
        "tenant_id": due.tenant_id,
        "webhook_id": due.webhook_id,
        "delivery_id": due.delivery_id,
        "attempt": attempt,
        "event_position": due.event_position,
        "event_type": due.event_type,
        "status": "pending",
        "response_status": None,
        "error": None,
        "attempted_at": None,
        "next_attempt_at": next_attempt_at,
        "payload": due.payload,
    }


@dataclass(frozen=True)
class Subscribed:
    """A webhook as the delivery side knows it."""

    url: str
    sealed_secret: str
    disabled_position: int | None


def subscription(conn: Connection, tenant_id: UUID, webhook_id: str) -> Subscribed | None:
    """A webhook's URL, sealed secret and disabling (None: this store does not know it)."""
    columns = SUBSCRIPTIONS.c
    found = conn.execute(
        select(columns.url, columns.sealed_secret, columns.disabled_position).where(
            columns.tenant_id == tenant_id, columns.webhook_id == webhook_id
        )
    ).first()
    return None if found is None else Subscribed(*found)


def last_attempt(
    conn: Connection, tenant_id: UUID, webhook_id: str, delivery_id: str
) -> tuple[int, str] | None:
    """The number and status of a delivery's latest attempt (None: it has none)."""
    columns = DELIVERIES.c
    found = conn.execute(
        select(columns.attempt, columns.status)
        .where(
            columns.tenant_id == tenant_id,
            columns.webhook_id == webhook_id,
            columns.delivery_id == delivery_id,
        )
        .order_by(columns.attempt.desc())
        .limit(1)
    ).first()
    return None if found is None else (int(found[0]), str(found[1]))
