"""The webhook outbox: which public events each webhook is owed, written as pending deliveries.

`WebhookOutbox` is a projection (`projections.runner.Projection`) fed by the in-process runner or
by the Kafka consumer alike. From the tenant's `WebhookRegistered` and `WebhookDisabled` events it
keeps `webhook_subscriptions` (from which position each webhook subscribes, and from which it is
disabled); for each public event it adds one pending delivery (attempt 1, due now) per webhook
that was registered before the event, was not yet disabled at it, and subscribes to its type (or
to "*"). Events before a webhook's registration are never delivered to it.

A delivery's id is ``uuid5(webhook_id, event_id)`` and rows are inserted only if absent, so
applying the same events again (a replayed Kafka message, a reset tracking) adds nothing. When a
webhook is disabled, its deliveries still pending are marked ``dead`` with the error
`DISABLED_ERROR`: never sent, and not dead-lettered (nothing is owed to a disabled webhook).

The body a delivery sends (`payload`) is the public event exactly as the HTTP feed writes it
(``event_id``, ``position``, ``type``, ``version``, ``stream``, ``recorded_at``,
``effective_at``, ``data``) plus ``tenant_id`` and ``webhook_id``, so one receiver URL can serve
several tenants or webhooks.

The outbox is never rebuilt (its rows record what was sent outside the ledger): it writes no
read-model tables a rebuild would switch, so it is not among `ledger.read_side.projections()`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

import orjson
from sqlalchemy import Connection, select, update

from consumers.delivery_log import insert_absent
from eventstore.store import LedgerStore
from ledger.public_events import SOURCES, Origins, PublicEvent, public_event
from projections.events import LedgerEvent
from projections.webhook_log import DELIVERIES, SUBSCRIPTIONS

REGISTERED = "Tenant.WebhookRegistered"
DISABLED = "Tenant.WebhookDisabled"
ALL = "*"
DISABLED_ERROR = "webhook disabled before this delivery was sent"
#: Tenants whose stream origins are kept between batches.
ORIGINS_KEPT = 256


def delivery_id(webhook_id: str, event_id: str) -> str:
    """The id of the delivery of one event to one webhook (the same however often computed)."""
    return str(uuid5(UUID(webhook_id), event_id))


@dataclass
class Subscription:
    """A webhook as the outbox follows it."""

    webhook_id: str
    events: frozenset[str]
    registered_position: int
    disabled_position: int | None

    def follows(self, position: int) -> bool:
        """Whether this webhook was registered before `position` and not disabled by then."""
        return self.registered_position < position and (
            self.disabled_position is None or position < self.disabled_position
        )

    def wants(self, event: PublicEvent) -> bool:
        """Whether this webhook is owed the event: active at it and subscribed to its type."""
        return self.follows(event.position) and (ALL in self.events or event.type in self.events)


class WebhookOutbox:
    """Pending webhook deliveries and the subscriptions they follow, from a tenant's events."""

    name = "webhooks"
    tables: tuple[str, ...] = ()
    kinds: frozenset[str] | None = frozenset(
        {REGISTERED, DISABLED, *(kind for kinds in SOURCES.values() for kind in kinds)}
    )

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._origins: OrderedDict[UUID, Origins] = OrderedDict()
        self._guard = threading.Lock()

    def apply(self, conn: Connection, tenant_id: UUID, events: Sequence[LedgerEvent]) -> None:
        subscriptions = self._subscriptions(conn, tenant_id)
        origins = self._origins_of(tenant_id)
        now = datetime.now(UTC)
        pending: list[dict[str, Any]] = []
        for event in events:
            origins.learn(event)
            if event.kind == REGISTERED:
                self._registered(conn, tenant_id, event, subscriptions)
            elif event.kind == DISABLED:
                self._disabled(conn, tenant_id, event, subscriptions, pending)
            elif any(sub.follows(event.position) for sub in subscriptions.values()):
                public = public_event(event, origins)
                if public is not None:
                    pending.extend(
                        _delivery(tenant_id, sub, public, now)
                        for sub in subscriptions.values()
                        if sub.wants(public)
                    )
        insert_absent(conn, DELIVERIES, pending)

    def _registered(
        self,
        conn: Connection,
        tenant_id: UUID,
        event: LedgerEvent,
        subscriptions: dict[str, Subscription],
    ) -> None:
        data = event.data
        hook_id = str(data["webhook_id"])
        row = {
            "tenant_id": tenant_id,
            "webhook_id": hook_id,
            "url": str(data["url"]),
            "events": orjson.dumps(list(data["events"])).decode(),
            "sealed_secret": str(data["sealed_secret"]),
            "registered_position": event.position,
            "disabled_position": None,
        }
        insert_absent(conn, SUBSCRIPTIONS, [row])
        subscriptions.setdefault(
            hook_id, Subscription(hook_id, frozenset(data["events"]), event.position, None)
        )

    def _disabled(
        self,
        conn: Connection,
        tenant_id: UUID,
        event: LedgerEvent,
        subscriptions: dict[str, Subscription],
        pending: list[dict[str, Any]],
    ) -> None:
        hook_id = str(event.data["webhook_id"])
        found = subscriptions.get(hook_id)
        if found is None or found.disabled_position is not None:
            return  # applied before (or a webhook this store never registered)
        found.disabled_position = event.position
        # Deliveries of this batch not yet written must be marked dead with the others.
        insert_absent(conn, DELIVERIES, pending)
        pending.clear()
        columns = SUBSCRIPTIONS.c
        conn.execute(
            update(SUBSCRIPTIONS)
            .where(
                columns.tenant_id == tenant_id,
                columns.webhook_id == hook_id,
                columns.disabled_position.is_(None),
            )
            .values(disabled_position=event.position)
        )
        log = DELIVERIES.c
        conn.execute(
            update(DELIVERIES)
            .where(log.tenant_id == tenant_id, log.webhook_id == hook_id, log.status == "pending")
            .values(status="dead", error=DISABLED_ERROR, next_attempt_at=None)
        )

    @staticmethod
    def _subscriptions(conn: Connection, tenant_id: UUID) -> dict[str, Subscription]:
        columns = SUBSCRIPTIONS.c
        rows = conn.execute(
            select(
                columns.webhook_id,
                columns.events,
                columns.registered_position,
                columns.disabled_position,
            ).where(columns.tenant_id == tenant_id)
        )
        return {
            row.webhook_id: Subscription(
                row.webhook_id,
                frozenset(orjson.loads(row.events)),
                row.registered_position,
                row.disabled_position,
            )
            for row in rows
        }

    def _origins_of(self, tenant_id: UUID) -> Origins:
        with self._guard:
            found = self._origins.get(tenant_id)
            if found is None:
                found = self._origins[tenant_id] = Origins(self.store, tenant_id)
                if len(self._origins) > ORIGINS_KEPT:
                    self._origins.popitem(last=False)
            else:
                self._origins.move_to_end(tenant_id)
            return found


def body_of(tenant_id: UUID, webhook_id: str, event: PublicEvent) -> str:
    """The JSON body delivering `event` to a webhook (see the module's docstring)."""
    return orjson.dumps(
        {**event.as_dict(), "tenant_id": str(tenant_id), "webhook_id": webhook_id}
    ).decode()


def _delivery(tenant_id: UUID, sub: Subscription, event: PublicEvent, now: datetime) -> Any:
    """A delivery row: pending, or dead already when the events are applied again after the
    webhook's disabling was (so a re-applied batch never revives what was disabled)."""
    webhook_id = sub.webhook_id
    disabled = sub.disabled_position is not None
    return {
        "tenant_id": tenant_id,
        "webhook_id": webhook_id,
        "delivery_id": delivery_id(webhook_id, event.event_id),
        "attempt": 1,
        "event_position": event.position,
        "event_type": event.type,
        "status": "dead" if disabled else "pending",
        "response_status": None,
        "error": DISABLED_ERROR if disabled else None,
        "attempted_at": None,
        "next_attempt_at": None if disabled else now,
        "payload": body_of(tenant_id, webhook_id, event),
    }
