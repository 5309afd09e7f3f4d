"""The command side of one tenant, on the `eventsourcing` library's Application."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.domain import BaseAggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    Recording,
)
from eventsourcing.utils import Environment

from domain.catalog import Product, Warehouse
from domain.errors import AlreadyExists, ConcurrencyConflict, NotFound
from domain.lots import Lot
from domain.metadata import EventMetadata
from domain.orders import register_order_transcodings
from domain.stock import StockItem
from domain.tenant import Tenant
from domain.values import register_value_transcodings

#: Aggregates whose long streams are snapshotted.
SNAPSHOTTED: tuple[type[MutableOrImmutableAggregate[UUID]], ...] = (
    Tenant,
    Product,
    Warehouse,
    Lot,
    StockItem,
)


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its runtime Protocol check on every event."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class TenantRepository(Repository[UUID]):
    """The library's repository, replaying with `replay` unless told otherwise."""

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = replay,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        return super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=deepcopy_from_cache,
        )


class TenantApplication(Application[UUID]):
    """Loads and saves the aggregates of one tenant; persistence comes from the injected factory.

    The factory is owned by the composition root and shared by every tenant's application, so
    closing this application leaves it open.
    """

    name = "Ledger"

    def __init__(
        self,
        tenant_id: UUID,
        factory: InfrastructureFactory,
        *,
        snapshot_interval: int = 20,
        snapshotted: tuple[type[MutableOrImmutableAggregate[UUID]], ...] = SNAPSHOTTED,
    ) -> None:
        self.tenant_id = tenant_id
        self._shared_factory = factory
        # Per instance: the interval is a setting, not a constant of the class.
        self.snapshotting_intervals = (  # type: ignore[misc]
            dict.fromkeys(snapshotted, snapshot_interval) if snapshot_interval > 0 else {}
        )
        super().__init__(env={"IS_SNAPSHOTTING_ENABLED": "y" if snapshot_interval > 0 else "n"})

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        return self._shared_factory

    def construct_repository(self) -> Repository[UUID]:
        return TenantRepository(event_store=self.events, snapshot_store=self.snapshots)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_value_transcodings(transcoder)
        register_order_transcodings(transcoder)

    def close(self) -> None:
        self.closing.set()

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """The library's save, collecting from aggregates without runtime Protocol checks.

        On Python 3.11 those checks cost about a sixth of a save's client CPU.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif obj is not None:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def record(
        self, *aggregates: MutableOrImmutableAggregate[UUID], meta: EventMetadata
    ) -> list[Recording[UUID]]:
        """Saves the pending events of the aggregates atomically, with their metadata."""
        try:
            return self.save(*aggregates, meta=meta)
        except IntegrityError as error:
            raise ConcurrencyConflict(
                "another writer changed the same stream first; retry the command"
            ) from error

    def load(self, aggregate_id: UUID, kind: type[Any]) -> Any:
        """The aggregate of this tenant with this id, or `NotFound`."""
        try:
            aggregate: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{kind.__name__} {aggregate_id} not found") from None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{kind.__name__} {aggregate_id} not found")
        return aggregate

    def create_tenant(
        self, slug: str, name: str | None, timezone: str, meta: EventMetadata
    ) -> Tenant:
        """Registers this application's tenant; a second registration of the slug is refused."""
        tenant = Tenant.register(slug, name, timezone)
        if tenant.id != self.tenant_id:
            raise ValueError("the slug does not name this application's tenant")
        try:
            self.save(tenant, meta=meta)
        except IntegrityError:
            raise AlreadyExists(f"tenant {slug!r} already exists") from None
        return tenant
