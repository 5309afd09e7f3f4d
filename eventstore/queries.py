"""SQL shared by the PostgreSQL and SQLite stores, written once with a placeholder mark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EVENTS = "ledger_events"
HEADS = "ledger_tenant_heads"
SNAPSHOTS = "ledger_snapshots"
TRACKING = "ledger_tracking"
IDEMPOTENCY = "ledger_idempotency"


def stream_query(
    table: str,
    column: str,
    mark: str,
    tenant_key: object,
    originator_id: object,
    gt: int | None,
    lte: int | None,
    desc: bool,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """One stream of one tenant, between versions: the library's `select_events` arguments."""
    statement = (
        f"SELECT originator_version, topic, {column} FROM {table}"  # noqa: S608
        f" WHERE tenant_id = {mark} AND originator_id = {mark}"
    )
    params: list[Any] = [tenant_key, originator_id]
    if gt is not None:
        statement += f" AND originator_version > {mark}"
        params.append(gt)
    if lte is not None:
        statement += f" AND originator_version <= {mark}"
        params.append(lte)
    statement += " ORDER BY originator_version" + (" DESC" if desc else "")
    if limit is not None:
        statement += f" LIMIT {mark}"
        params.append(limit)
    return statement, params


def notifications_query(
    mark: str,
    tenant_key: object,
    start: int | None,
    limit: int,
    stop: int | None,
    topics: Sequence[str],
    inclusive_of_start: bool,
) -> tuple[str, list[Any]]:
    """A tenant's events by position: the library's `select_notifications` arguments."""
    statement = (
        "SELECT position, originator_id, originator_version, topic, payload"  # noqa: S608
        f" FROM {EVENTS} WHERE tenant_id = {mark}"
    )
    params: list[Any] = [tenant_key]
    if start is not None:
        statement += f" AND position {'>=' if inclusive_of_start else '>'} {mark}"
        params.append(start)
    if stop is not None:
        statement += f" AND position <= {mark}"
        params.append(stop)
    if topics:
        statement += f" AND topic IN ({', '.join([mark] * len(topics))})"
        params.extend(topics)
    statement += f" ORDER BY position LIMIT {mark}"
    params.append(limit)
    return statement, params


def read_query(mark: str) -> str:
    """A page of a tenant's events after a position (tenant, after, limit)."""
    return (
        "SELECT position, originator_id, originator_version, topic, payload, hash"  # noqa: S608
        f" FROM {EVENTS} WHERE tenant_id = {mark} AND position > {mark}"
        f" ORDER BY position LIMIT {mark}"
    )


def range_query(mark: str, kinds: str | None = None, locate: str = "strpos") -> str:
    """A tenant's events at positions after..last (tenant, after, last[, kinds]).

    `kinds`, when given, is the SQL test of the event's kind, the part of its topic
    (`module:Class.Event`) after the colon, e.g. `= ANY(%s)` or `IN (?, ?)`; `locate` is the
    dialect's function finding the colon (`strpos`, SQLite's `instr`).
    """
    where = f"tenant_id = {mark} AND position > {mark} AND position <= {mark}"
    if kinds is not None:
        where += f" AND substr(topic, {locate}(topic, ':') + 1) {kinds}"
    return (
        "SELECT position, originator_id, originator_version, topic, payload, hash"  # noqa: S608
        f" FROM {EVENTS} WHERE {where} ORDER BY position"
    )


def chain_query(mark: str) -> str:
    """A tenant's (position, payload, hash) in a range of positions (tenant, after, last).

    Bounded above, not by LIMIT: the work per page stays the page's even under a poor plan (a
    freshly loaded partition without statistics gets a bitmap scan and a sort, which under
    LIMIT alone would take every later row of the tenant, page after page).
    """
    return (
        f"SELECT position, payload, hash FROM {EVENTS}"  # noqa: S608
        f" WHERE tenant_id = {mark} AND position > {mark} AND position <= {mark}"
        " ORDER BY position"
    )


def head_query(mark: str) -> str:
    return f"SELECT position, hash FROM {HEADS} WHERE tenant_id = {mark}"  # noqa: S608


HEADS_QUERY = f"SELECT tenant_id, position, hash FROM {HEADS} WHERE position > 0 ORDER BY tenant_id"  # noqa: S608


def ahead_query(mark: str) -> str:
    """Tenants whose head is beyond a tracker's position (tracker)."""
    return (
        "SELECT h.tenant_id, h.position AS head, COALESCE(t.position, 0) AS tracked"  # noqa: S608
        f" FROM {HEADS} h LEFT JOIN {TRACKING} t"
        f" ON t.tenant_id = h.tenant_id AND t.tracker = {mark}"
        " WHERE h.position > COALESCE(t.position, 0) ORDER BY h.tenant_id"
    )


def tracked_query(mark: str) -> str:
    return f"SELECT position FROM {TRACKING} WHERE tenant_id = {mark} AND tracker = {mark}"  # noqa: S608


def record_tracking_query(mark: str) -> str:
    """Moves a tracker forward, never back (tenant, tracker, position)."""
    return (
        f"INSERT INTO {TRACKING} AS t (tenant_id, tracker, position)"  # noqa: S608
        f" VALUES ({mark}, {mark}, {mark}) ON CONFLICT (tenant_id, tracker)"
        " DO UPDATE SET position = excluded.position WHERE t.position < excluded.position"
    )


def idempotency_query(mark: str) -> str:
    """What a key recorded (tenant, key)."""
    return (
        f"SELECT fingerprint, outcome, position FROM {IDEMPOTENCY}"  # noqa: S608
        f" WHERE tenant_id = {mark} AND key = {mark}"
    )
