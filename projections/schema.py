"""Read-model tables (SQLAlchemy 2.0): `tenant_id` leads every key; decimals stay exact."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine, Uuid


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC on PostgreSQL; text on SQLite, whose NUMERIC would round through a float."""

    impl = Numeric(38, 12)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 12))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp: timestamptz on PostgreSQL, ISO 8601 text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return value.astimezone(UTC).isoformat()

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        found = datetime.fromisoformat(value) if isinstance(value, str) else value
        return found.astimezone(UTC)


TenantId = Annotated[UUID, mapped_column(Uuid, primary_key=True)]
Code = Annotated[str, mapped_column(String(64), primary_key=True)]
Quantity = Annotated[Decimal, mapped_column(ExactDecimal, nullable=False)]
Position = Annotated[int, mapped_column(BigInteger, nullable=False)]


class Base(DeclarativeBase):
    """The read models' tables."""


class ProjectionTracking(Base):
    """How far each projection has applied each tenant's events (written with its rows)."""

    __tablename__ = "projection_tracking"

    tenant_id: Mapped[TenantId]
    projection: Mapped[Code]
    position: Mapped[Position]
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ProjectionFailure(Base):
    """A projection stopped at an event it could not apply, for this tenant only."""

    __tablename__ = "projection_failures"

    tenant_id: Mapped[TenantId]
    projection: Mapped[Code]
    position: Mapped[Position]
    error: Mapped[str] = mapped_column(Text, nullable=False)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class StockLevelRow(Base):
    """Stock of one SKU in one warehouse: on hand, reserved, incoming, its value."""

    __tablename__ = "rm_stock_levels"

    tenant_id: Mapped[TenantId]
    sku: Mapped[Code]
    warehouse: Mapped[Code]
    stream_id: Mapped[UUID | None] = mapped_column(Uuid, nullable=True)  # None: incoming only
    on_hand: Mapped[Quantity]
    reserved: Mapped[Quantity]
    value: Mapped[Quantity]
    incoming: Mapped[Quantity]
    last_position: Mapped[Position]


class LotStreamRow(Base):
    """The stock items the lots projection has seen, with the position it applied last."""

    __tablename__ = "rm_lot_streams"

    tenant_id: Mapped[TenantId]
    stream_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)
    last_position: Mapped[Position]


class LotRow(Base):
    """A lot in a bin: on hand, reserved, value, expiry, first receipt time, status."""

    __tablename__ = "rm_lots"

    tenant_id: Mapped[TenantId]
    sku: Mapped[Code]
    warehouse: Mapped[Code]
    lot: Mapped[Code]
    bin: Mapped[Code]
    stream_id: Mapped[UUID] = mapped_column(Uuid, nullable=False)
    on_hand: Mapped[Quantity]
    reserved: Mapped[Quantity]
    value: Mapped[Quantity]
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    layers: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: [[id, received_at, qty]]
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    last_position: Mapped[Position]


class MovementStreamRow(Base):
    """The stock items the movements projection knows: their SKU and warehouse."""

    __tablename__ = "rm_movement_streams"

    tenant_id: Mapped[TenantId]
    stream_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)


class MovementRow(Base):
    """A change of on-hand in one lot and bin: who, when (business, recorded), why, what cost."""

    __tablename__ = "rm_movements"

    tenant_id: Mapped[TenantId]
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)
    lot: Mapped[str] = mapped_column(String(64), nullable=False)
    bin: Mapped[str] = mapped_column(String(64), nullable=False)
    quantity: Mapped[Quantity]
    unit_cost: Mapped[Quantity]
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class OrderRow(Base):
    """A purchase or sales order: its partner, warehouse, ids, status and last change."""

    __tablename__ = "rm_orders"

    tenant_id: Mapped[TenantId]
    order_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # purchase | sales
    partner: Mapped[str] = mapped_column(String(200), nullable=False)  # supplier | customer
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expected_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_position: Mapped[Position]


class OrderLineRow(Base):
    """An order line and where its quantity stands."""

    __tablename__ = "rm_order_lines"

    tenant_id: Mapped[TenantId]
    order_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    ordered: Mapped[Quantity]
    unit_cost: Mapped[Decimal | None] = mapped_column(ExactDecimal, nullable=True)
    received: Mapped[Quantity]  # purchase
    allocated: Mapped[Quantity]  # sales: reserved, not shipped
    shipped: Mapped[Quantity]
    returned: Mapped[Quantity]
    cancelled: Mapped[Quantity]  # short-closed (purchase) or cancelled (sales)


class AuditRow(Base):
    """Every event of a tenant with its metadata and chained hash, in position order."""

    __tablename__ = "rm_audit_log"

    tenant_id: Mapped[TenantId]
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stream_id: Mapped[UUID] = mapped_column(Uuid, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class StockLevelOrderLineRow(Base):
    """A purchase order line as the stock levels projection follows it, for incoming stock."""

    __tablename__ = "rm_stock_level_orders"

    tenant_id: Mapped[TenantId]
    order_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)
    ordered: Mapped[Quantity]
    received: Mapped[Quantity]
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    last_position: Mapped[Position]


class ProductRow(Base):
    """A product of the catalog with the rules its stock follows."""

    __tablename__ = "rm_products"

    tenant_id: Mapped[TenantId]
    sku: Mapped[Code]
    stream_id: Mapped[UUID] = mapped_column(Uuid, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    uom: Mapped[str] = mapped_column(String(64), nullable=False)
    decimals: Mapped[int] = mapped_column(Integer, nullable=False)
    lot_tracked: Mapped[bool] = mapped_column(Boolean, nullable=False)
    expiry_tracked: Mapped[bool] = mapped_column(Boolean, nullable=False)
    removal_policy: Mapped[str] = mapped_column(String(16), nullable=False)
    shelf_life_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expiry_alert_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reorder_point: Mapped[Decimal | None] = mapped_column(ExactDecimal, nullable=True)
    reorder_quantity: Mapped[Decimal | None] = mapped_column(ExactDecimal, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    barcodes: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list
    attributes: Mapped[str] = mapped_column(Text, nullable=False)  # JSON object
    last_position: Mapped[Position]


class WarehouseRow(Base):
    """A warehouse and the time zone its business date follows."""

    __tablename__ = "rm_warehouses"

    tenant_id: Mapped[TenantId]
    code: Mapped[Code]
    stream_id: Mapped[UUID] = mapped_column(Uuid, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    last_position: Mapped[Position]


class BinRow(Base):
    """A bin of a warehouse; stock in a non-pickable bin is never available."""

    __tablename__ = "rm_bins"

    tenant_id: Mapped[TenantId]
    warehouse: Mapped[Code]
    code: Mapped[Code]
    zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pickable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    last_position: Mapped[Position]


class KpiTenantRow(Base):
    """The time zone the KPI facts of a tenant take their business days in."""

    __tablename__ = "rm_kpi_tenants"

    tenant_id: Mapped[TenantId]
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    last_position: Mapped[Position]


class KpiStockItemRow(Base):
    """A stock item as the KPI facts need it: its warehouse, on hand and reserved."""

    __tablename__ = "rm_kpi_stock_items"

    tenant_id: Mapped[TenantId]
    stream_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)
    on_hand: Mapped[Quantity]
    reserved: Mapped[Quantity]
    last_position: Mapped[Position]


class KpiOrderRow(Base):
    """An order as the KPI facts need it: warehouse, business day created, sales line quantities."""

    __tablename__ = "rm_kpi_orders"

    tenant_id: Mapped[TenantId]
    order_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # purchase | sales
    warehouse: Mapped[str] = mapped_column(String(64), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    lines: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: {line: [ordered, shipped]}
    last_position: Mapped[Position]


class KpiDayRow(Base):
    """What happened in a warehouse on a business day (in the tenant's time zone): KPI facts."""

    __tablename__ = "rm_kpi_days"

    tenant_id: Mapped[TenantId]
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    warehouse: Mapped[Code]
    value_change: Mapped[Quantity]
    sold_cost: Mapped[Quantity]
    returned_cost: Mapped[Quantity]
    expired_quantity: Mapped[Quantity]
    expired_value: Mapped[Quantity]
    stockouts: Mapped[int] = mapped_column(Integer, nullable=False)
    counts: Mapped[int] = mapped_column(Integer, nullable=False)
    accurate_counts: Mapped[int] = mapped_column(Integer, nullable=False)
    ordered_units: Mapped[Quantity]
    shipped_units: Mapped[Quantity]
    order_lines: Mapped[int] = mapped_column(Integer, nullable=False)
    filled_lines: Mapped[int] = mapped_column(Integer, nullable=False)
    received_units: Mapped[Quantity]
    on_time_units: Mapped[Quantity]
