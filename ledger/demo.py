"""Demo data: a wholesaler's catalogue, two warehouses and a week of stock activity, seeded."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import partial
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.allocation import LotStatus
from domain.errors import DomainError, ValidationFailed
from domain.inventory import CONFIGURATION, StockResult
from domain.metadata import EventMetadata
from domain.ordering import OrderResult
from domain.orders import ReceiveLine, ReturnLine, ShipLine
from domain.purchasing import PurchaseOrder
from domain.quantities import ZERO
from domain.sales import SalesOrder
from domain.sales_orders import LedgerApplication
from domain.stock import StockItem
from ledger.demo_bulk import bulk_application
from ledger.demo_catalog import (
    CATALOG,
    CUSTOMERS,
    DAYS,
    DOCK,
    KEY_PREFIX,
    OVERSTOCK_CASES,
    PICKABLE,
    QUARANTINE,
    QUARANTINE_BACKLOG,
    SKUS,
    STALL_LIMIT,
    SUPPLIERS,
    TIMEZONE,
    WAREHOUSES,
    Sku,
    layout,
    product_fields,
)

__all__ = ["CATALOG", "SKUS", "TIMEZONE", "WAREHOUSES", "SeedSummary", "seed"]

R = TypeVar("R", bound=StockResult | OrderResult)
#: From this many events on, a seed runs in bulk (see `seed`).
BULK_EVENTS = 5_000


class SeedStalled(DomainError):
    """The activity stopped appending events: every command was refused."""

    code = "seed-stalled"


@dataclass(frozen=True)
class SeedSummary:
    """What a seed did: the positions it appended, commands by name, refusals by error code."""

    first_position: int
    head_position: int
    commands: dict[str, int]
    refused: dict[str, int]

    @property
    def events(self) -> int:
        return self.head_position - self.first_position


def seed(
    app: LedgerApplication,
    *,
    events: int,
    rng_seed: int = 7,
    meta: EventMetadata,
    bulk: bool | None = None,
) -> SeedSummary:
    """Seeds the catalogue, the warehouses, one of each activity, then activity to `events`.

    The same `rng_seed` and `events` on an empty tenant give the same commands and events.
    Expiry dates are relative to the application clock's today; effective times spread over
    the last week. `meta` gives the actor; each command gets its own idempotency key.

    `bulk` (by default: from BULK_EVENTS events on) runs the same commands against aggregates
    held in memory and writes them thousands of events per transaction (`ledger.demo_bulk`);
    the seeder must then be the tenant's only writer.
    """
    if events < 1:
        raise ValidationFailed("events", "must be at least 1")
    if bulk is None:
        bulk = events >= BULK_EVENTS
    if not bulk:
        return _seed(app, events, rng_seed, meta)
    with bulk_application(app) as bulk_app:
        return _seed(bulk_app, events, rng_seed, meta)


def _seed(app: LedgerApplication, events: int, rng_seed: int, meta: EventMetadata) -> SeedSummary:
    seeder = Seeder(app, random.Random(rng_seed), meta, events)  # noqa: S311
    seeder.setup()
    seeder.opening()
    seeder.trade()
    return SeedSummary(seeder.start, seeder.head, dict(seeder.commands), dict(seeder.refused))


class Seeder:
    """Issues the demo's commands one by one, choosing them from the ledger's current stock."""

    def __init__(
        self, app: LedgerApplication, rng: random.Random, meta: EventMetadata, events: int
    ) -> None:
        self.app, self.rng, self.meta = app, rng, meta
        self.start = self.head = app.recorder.max_notification_id() or 0
        self.target = self.start + events
        now = app.clock()
        self.today = now.astimezone(ZoneInfo(TIMEZONE)).date()
        self.began = now - timedelta(days=DAYS)
        self.step = timedelta(days=DAYS) / (40 + events * 7 // 8)  # about a command per event
        self.tick = self.serial = 0
        self.commands: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        # Dicts and lists, never sets: the choices must not depend on string hashing.
        self.stocked: dict[tuple[str, str], None] = {}
        self.docked: dict[tuple[str, str], None] = {}
        self.expired: dict[tuple[str, str], None] = {}
        self.purchases: list[UUID] = []  # partly received purchase orders
        self.sales: list[UUID] = []  # sales orders not yet shipped in full
        self.shipped: list[UUID] = []  # sales orders with shipments, for returns
        self.waits: Counter[UUID] = Counter()
        self.quarantined: dict[tuple[str, str], None] = {}  # returns waiting for inspection

    def call(self, command: Callable[..., R], *args: Any, **kwargs: Any) -> R | None:
        """Runs one command at the next effective time; a domain refusal is counted, not raised."""
        self.tick += 1
        at = min(self.began + self.step * self.tick, self.app.clock())
        configures = command.__name__ in CONFIGURATION  # takes effect when recorded
        meta = replace(
            self.meta,
            idempotency_key=f"{KEY_PREFIX}{self.tick}",  # as a careful client sends them
            effective_at=None if configures else at,
        )
        try:
            result = command(*args, meta, **kwargs)
        except DomainError as error:
            self.refused[error.code] += 1
            return None
        self.head = max(self.head, result.position)
        self.commands[command.__name__] += 1
        return result

    def run(
        self, command: Callable[..., StockResult | OrderResult], *args: Any, **kwargs: Any
    ) -> bool:
        """Whether the command was recorded."""
        return self.call(command, *args, **kwargs) is not None

    def business_date(self) -> date:
        at = min(self.began + self.step * self.tick, self.app.clock())
        return at.astimezone(ZoneInfo(TIMEZONE)).date()

    # -- the catalogue, the warehouses, one of each activity, then random activity ---------------

    def setup(self) -> None:
        for item in CATALOG:
            self.run(self.app.register_product, item.sku, item.name, **product_fields(item))
        for code, name, pick, bulk in WAREHOUSES:
            self.run(self.app.register_warehouse, code, name, TIMEZONE)
            for bin_code, zone, pickable in layout(pick, bulk):
                self.run(self.app.add_bin, code, bin_code, zone=zone, pickable=pickable)

    def opening(self) -> None:
        """Every SKU arrives at the main warehouse (one lot expired, one short-dated) and is put
        away; then every other kind of activity happens at least once."""
        for i, item in enumerate(CATALOG):
            self.purchase(item.sku, "BER1", {1: "expired", 2: "short"}.get(i, "fresh"))
        if not self.stocked:
            raise SeedStalled(f"every receipt was refused: {dict(self.refused)}")
        while self.docked:
            self.putaway()
        ship, recount = partial(self.ship, cancels=0.0), partial(self.count, differ=1.0)
        partly, cancel = partial(self.purchase, part=True), partial(self.ship, cancels=1.0)
        close, rest = partial(self.deliver, closes=1.0), partial(self.deliver, closes=0.0)
        activities: tuple[Callable[[], bool], ...] = (self.order, ship, self.give_back, partly)
        activities += (close, partly, rest, self.order, cancel, self.issue, self.transfer)
        activities += (recount, self.damage)
        for activity in activities:
            any(activity() for _ in range(30))
        any(self.hold() for _ in range(30))
        self.write_off()

    def trade(self) -> None:
        """Random activity, weighted like a wholesaler's day, until the target is reached."""
        activities: tuple[Callable[[], bool], ...] = (
            *(self.purchase, self.deliver, self.putaway, self.order, self.ship, self.issue),
            *(self.transfer, self.count, self.damage, self.hold, self.write_off, self.give_back),
        )
        weights = (12, 4, 14, 16, 24, 6, 6, 8, 2, 2, 2, 2)
        idle = 0
        while self.head < self.target:
            before = self.head
            self.rng.choices(activities, weights)[0]()
            idle = 0 if self.head > before else idle + 1
            if idle > STALL_LIMIT:
                raise SeedStalled(f"{idle} activities in a row were refused: {dict(self.refused)}")

    # -- activities: each returns whether its command was recorded --------------------------------

    def purchase(
        self, sku: str = "", warehouse: str = "", dating: str = "", *, part: bool = False
    ) -> bool:
        """A purchase order to a supplier for one to three of its SKUs, delivered to the dock
        whole, or in part with the rest to follow (or never: then it is closed short)."""
        first = SKUS[sku] if sku else self.rng.choice(CATALOG)
        warehouse = warehouse or ("BER1" if self.rng.random() < 0.75 else "HAM1")
        if not sku and self.overstocked(first, warehouse):
            return False
        supplier = SUPPLIERS[first.category]
        items = [first]
        if not sku:
            others = [
                i
                for i in CATALOG
                if SUPPLIERS[i.category] == supplier
                and i != first
                and not self.overstocked(i, warehouse)
            ]
            items += self.rng.sample(others, min(len(others), self.rng.randint(0, 2)))
        lines = [(i.sku, i.pack * self.rng.randint(3, 10), self.unit_cost(i)) for i in items]
        self.serial += 1
        expected = self.business_date() + timedelta(days=self.rng.randint(-1, 2))
        created = self.call(
            self.app.create_purchase_order,
            supplier,
            warehouse,
            lines,
            expected_on=expected,
            external_id=f"PO-{self.serial:05d}",
        )
        if created is None or not self.run(self.app.submit_purchase_order, created.order_id):
            return False
        return self.deliver(created.order_id, dating, part=part or self.rng.random() < 0.25)

    def deliver(
        self,
        order_id: UUID | None = None,
        dating: str = "",
        *,
        part: bool = False,
        closes: float = 0.25,
    ) -> bool:
        """A delivery against a purchase order: what is still open, or part of it; an order
        partly delivered for a while is closed short."""
        if order_id is None:
            if not self.purchases:
                return False
            order_id = self.purchases.pop(0)
            if self.rng.random() < closes:
                return self.run(self.app.close_purchase_order, order_id)
        order: object = self.app.repository.get(order_id)
        assert isinstance(order, PurchaseOrder)
        receipts, datings = [], {}
        for line in order.lines:
            item = SKUS[line.sku]
            if line.open <= ZERO:
                continue
            quantity = self.part_of(line.open, item) if part else line.open
            self.serial += 1
            lot = f"{'B' if item.shelf_life else 'GR'}{self.serial:05d}"
            expires_on = None
            if item.shelf_life is not None:
                datings[line.sku] = (
                    dating or self.rng.choices(("fresh", "short", "expired"), (88, 8, 4))[0]
                )
                expires_on = self.expiry(item.shelf_life, datings[line.sku])
            receipts.append(ReceiveLine(line.line, quantity, DOCK, lot=lot, expires_on=expires_on))
        received = self.call(self.app.receive_purchase_order, order_id, receipts)
        if received is None:
            return False
        for receipt in received.receipts:
            self.stocked[receipt.sku, order.warehouse] = None
            self.docked[receipt.sku, order.warehouse] = None
            if datings.get(receipt.sku) == "expired":
                self.expired[receipt.sku, order.warehouse] = None
        if received.status == "partially_received":
            self.purchases.append(order_id)
        return True

    def putaway(self) -> bool:
        """Moves the usable lots waiting on a dock to pick or bulk bins."""
        if not self.docked:
            return False
        sku, warehouse = self.docked.popitem()[0]
        stock, moved = self.app.stock_item(sku, warehouse), False
        for lot, _, free in self.free(stock, DOCK) if stock else []:
            to_bin = self.rng.choice(PICKABLE[warehouse])
            moved = self.run(self.app.move, sku, warehouse, DOCK, to_bin, free, lot=lot) or moved
        return moved

    def order(self) -> bool:
        """A customer orders one to three stocked SKUs from one warehouse; the order is
        allocated at once, and what cannot be reserved stays backordered."""
        warehouse = "BER1" if self.rng.random() < 0.75 else "HAM1"
        skus = [sku for sku, place in self.stocked if place == warehouse]
        if not skus:
            return False
        chosen = self.rng.sample(skus, min(len(skus), self.rng.randint(1, 3)))
        lines = [(sku, self.amount(SKUS[sku], 4)) for sku in chosen]
        self.serial += 1
        customer = self.rng.choice(CUSTOMERS)
        external = f"SO-{self.serial:05d}"
        created = self.call(
            self.app.create_sales_order, customer, warehouse, lines, external_id=external
        )
        if created is None:
            return False
        self.run(self.app.allocate_sales_order, created.order_id)
        self.sales.append(created.order_id)
        return True

    def ship(self, cancels: float = 0.08) -> bool:
        """The oldest open order ships what is allocated (now and then one line only), or is
        cancelled by its customer; a backorder is allocated again, and cancelled after waiting
        too long; a reservation blocked by an expired or held lot is allocated again."""
        if not self.sales:
            return False
        order_id = self.sales.pop(0)
        self.waits[order_id] += 1
        if self.rng.random() < cancels or self.waits[order_id] > 4:
            return self.run(self.app.cancel_sales_order, order_id)
        order: object = self.app.repository.get(order_id)
        assert isinstance(order, SalesOrder)
        if order.reserved_quantity <= ZERO:
            self.sales.append(order_id)
            return self.run(self.app.allocate_sales_order, order_id)
        first = [ShipLine(line.line, line.allocated) for line in order.lines if line.allocated]
        shipped = self.call(
            self.app.ship_sales_order,
            order_id,
            lines=first[:1] if len(first) > 1 and self.rng.random() < 0.2 else None,
        )
        if shipped is None or shipped.status != "shipped":
            self.run(self.app.allocate_sales_order, order_id)
            self.sales.append(order_id)
        if shipped is not None:
            self.shipped.append(order_id)
        return shipped is not None

    def give_back(self) -> bool:
        """A customer returns part of a shipment: restocked, quarantined or scrapped."""
        if not self.shipped:
            return False
        order: object = self.app.repository.get(self.rng.choice(self.shipped))
        assert isinstance(order, SalesOrder)
        lines = [line for line in order.lines if line.shipped > line.returned]
        if not lines:
            return False
        line = self.rng.choice(lines)
        quantity = min(line.shipped - line.returned, Decimal(self.rng.randint(1, 3)))
        disposition = self.rng.choices(("restock", "quarantine", "scrap"), (6, 3, 2))[0]
        place = {"restock": DOCK, "quarantine": QUARANTINE}.get(disposition)
        back = [ReturnLine(line.line, quantity, disposition, bin=place)]
        if not self.run(self.app.return_sales_order, order.id, back):
            return False
        if disposition == "restock":
            self.docked[line.sku, order.warehouse] = None
        elif disposition == "quarantine":
            self.quarantined[line.sku, order.warehouse] = None
        return True

    def issue(self) -> bool:
        """A counter sale, a sample or the warehouse's own consumption, by policy."""
        sku, warehouse = self.rng.choice(list(self.stocked))
        reason = self.rng.choices(("sale", "sample", "consumption"), (7, 2, 1))[0]
        self.serial += 1
        qty, reference = self.amount(SKUS[sku], 2), f"CS-{self.serial:05d}"
        return self.run(self.app.issue, sku, warehouse, qty, reason, reference=reference)

    def transfer(self) -> bool:
        """The branch is restocked from the central warehouse (now and then the other way)."""
        source, destination = ("BER1", "HAM1") if self.rng.random() < 0.85 else ("HAM1", "BER1")
        skus = [sku for sku, warehouse in self.stocked if warehouse == source]
        sku = self.rng.choice(skus) if skus else ""
        if not sku or not self.run(
            self.app.transfer, sku, source, destination, DOCK, self.amount(SKUS[sku], 4)
        ):
            return False
        self.stocked[sku, destination] = self.docked[sku, destination] = None
        return True

    def count(self, differ: float = 0.4) -> bool:
        """A cycle count of one lot in one bin, against the quantity the scanner expects."""
        stock = self.some_stock()
        if stock is None or not stock.layers:
            return False
        lot, bin_code = self.rng.choice(stock.places())
        expected = counted = stock.on_hand(lot, bin_code)
        if self.rng.random() < differ:
            counted = max(ZERO, expected + self.rng.choice((-3, -2, -1, 1, 2)))
        place = (stock.sku, stock.warehouse, bin_code)
        return self.run(self.app.count, *place, counted, lot=lot, expected=expected)

    def damage(self) -> bool:
        """Damage found in a bin: written off there, or first set aside in quarantine."""
        stock = self.some_stock()
        found = [f for f in self.free(stock) if f[1] != QUARANTINE] if stock else []
        if stock is None or not found:
            return False
        lot, bin_code, free = self.rng.choice(found)
        qty, sku, warehouse = min(free, Decimal(self.rng.randint(1, 3))), stock.sku, stock.warehouse
        aside = (sku, warehouse, bin_code, QUARANTINE, qty)
        if self.rng.random() < 0.5 and self.run(self.app.move, *aside, lot=lot):
            bin_code = QUARANTINE
        return self.run(self.app.adjust, sku, warehouse, bin_code, -qty, "damage", lot=lot)

    def hold(self) -> bool:
        """Quality puts a food lot on hold (a cold-chain alarm), or releases a held one."""
        stock = self.some_stock()
        if stock is None or SKUS[stock.sku].shelf_life is None:
            return False
        held = [lot for lot, status in stock.status.items() if status != LotStatus.RELEASED.value]
        if held and self.rng.random() < 0.6:
            return self.run(self.app.set_lot_status, stock.sku, held[0], "released")
        lots = [lot for lot, _, _ in self.free(stock)]
        return bool(lots) and self.run(self.app.set_lot_status, stock.sku, lots[0], "hold")

    def write_off(self) -> bool:
        """Expired stock is written off, reason `expiry`; with none waiting, quality inspects
        the quarantine once returns wait there in QUARANTINE_BACKLOG stock items."""
        if not self.expired:
            return len(self.quarantined) >= QUARANTINE_BACKLOG and self.inspect()
        return self.run(self.app.write_off_expired, *self.expired.popitem()[0])

    def inspect(self) -> bool:
        """The stock item whose returns wait longest in quarantine: its quarantined lots are
        released, and the goods in the quarantine bin go back to a pick bin."""
        sku, warehouse = next(iter(self.quarantined))
        del self.quarantined[sku, warehouse]
        stock, done = self.app.stock_item(sku, warehouse), False
        statuses = stock.status.items() if stock else ()
        for lot in [lot for lot, status in statuses if status == LotStatus.QUARANTINE.value]:
            done = self.run(self.app.set_lot_status, sku, lot, LotStatus.RELEASED.value) or done
        stock, to_bin = self.app.stock_item(sku, warehouse), PICKABLE[warehouse][0]
        for lot, _, free in self.free(stock, QUARANTINE) if stock else []:
            moved = self.run(self.app.move, sku, warehouse, QUARANTINE, to_bin, free, lot=lot)
            done = moved or done
        return done

    # -- choices ----------------------------------------------------------------------------------

    def overstocked(self, item: Sku, warehouse: str) -> bool:
        """The buyer orders nothing of which the warehouse has OVERSTOCK_CASES cases to sell."""
        if (item.sku, warehouse) not in self.stocked:
            return False
        stock, enough = self.app.stock_item(item.sku, warehouse), item.pack * OVERSTOCK_CASES
        if stock is None or stock.on_hand() < enough:  # what is for sale is part of on hand
            return False
        sellable = sum((free for _, place, free in self.free(stock) if place != QUARANTINE), ZERO)
        return sellable >= enough

    def some_stock(self) -> StockItem | None:
        return self.app.stock_item(*self.rng.choice(list(self.stocked)))

    def free(self, stock: StockItem, bin_code: str | None = None) -> list[tuple[str, str, Decimal]]:
        """Unreserved stock of released, unexpired lots per (lot, bin): in one bin, or in all."""
        return [
            (lot, place, stock.on_hand(lot, place) - stock.reserved(lot, place))
            for lot, place in stock.places()
            if bin_code in (None, place)
            and stock.status[lot] == LotStatus.RELEASED.value
            and not stock.is_expired(lot, self.today)
            and stock.on_hand(lot, place) > stock.reserved(lot, place)
        ]

    def unit_cost(self, item: Sku) -> Decimal:
        """The supplier's price of the day, around the list cost."""
        return (Decimal(item.cost) * self.rng.randint(95, 105) / 100).quantize(Decimal("0.0001"))

    def part_of(self, open_quantity: Decimal, item: Sku) -> Decimal:
        """A part delivery: half to nine tenths of what is open, in the product's unit."""
        step = Decimal(1).scaleb(-item.decimals)
        part = (open_quantity * self.rng.randint(5, 9) / 10).quantize(step, rounding=ROUND_DOWN)
        return max(part, step)

    def amount(self, item: Sku, cases: int) -> Decimal:
        """An order's quantity: whole cases, or any length of cable or hose."""
        if item.decimals:
            return Decimal(self.rng.randint(100, item.pack * cases * 100)) / 100
        return Decimal(item.pack * self.rng.randint(1, cases))

    def expiry(self, shelf_life: int, dating: str) -> date:
        """Fresh: the shelf life less some days at the supplier; else just past or just ahead."""
        if dating != "fresh":
            days = self.rng.randint(1, 3)
            return self.today + timedelta(days=days if dating == "short" else -days)
        elapsed = timedelta(days=(self.step * self.tick) // timedelta(days=1))
        received = self.today - timedelta(days=DAYS) + elapsed
        return received + timedelta(days=shelf_life - self.rng.randint(0, shelf_life // 3))
