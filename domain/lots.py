"""A lot: one per (tenant, SKU, lot id), with one expiry and one status wherever it is stored."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.allocation import LotStatus
from domain.errors import LotConflict
from domain.ids import stream_id


def lot_id(tenant_id: UUID, sku: str, lot: str) -> UUID:
    return stream_id(tenant_id, "lot", sku, lot)


class Lot(Aggregate):
    """The registry entry of a lot: its expiry, status and the warehouses holding it."""

    class Registered(Aggregate.Created):
        """A lot was first received."""

        sku: str
        lot: str
        expires_on: date | None
        warehouse: str

    class StockedIn(Aggregate.Event):
        """The lot arrived in another warehouse."""

        warehouse: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Lot)
            aggregate.warehouses = [*aggregate.warehouses, self.warehouse]

    class StatusChanged(Aggregate.Event):
        """The lot was released, put on hold or quarantined."""

        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Lot)
            aggregate.status = self.status

    def __init__(self, sku: str, lot: str, expires_on: date | None, warehouse: str) -> None:
        self.sku = sku
        self.lot = lot
        self.expires_on = expires_on
        self.warehouses: list[str] = [warehouse]  # a list: what a snapshot gives back
        self.status = LotStatus.RELEASED.value

    @classmethod
    def register(
        cls, tenant_id: UUID, sku: str, lot: str, expires_on: date | None, warehouse: str
    ) -> Lot:
        created: Lot = cls._create(
            cls.Registered,
            id=lot_id(tenant_id, sku, lot),
            sku=sku,
            lot=lot,
            expires_on=expires_on,
            warehouse=warehouse,
        )
        return created

    def check_expiry(self, expires_on: date | None) -> None:
        """A lot has one expiry: a receipt naming another is refused."""
        if expires_on is not None and expires_on != self.expires_on:
            raise LotConflict(
                f"lot {self.lot!r} of {self.sku} expires on {self.expires_on}, not {expires_on}"
            )

    def stock_in(self, warehouse: str) -> None:
        if warehouse not in self.warehouses:
            self.trigger_event(self.StockedIn, warehouse=warehouse)

    def set_status(self, status: LotStatus) -> None:
        if status.value != self.status:
            self.trigger_event(self.StatusChanged, status=status.value)
