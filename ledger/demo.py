"""Demo data: a wholesaler's catalogue, two warehouses and a week of stock activity, seeded."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from domain.allocation import LotStatus
from domain.errors import DomainError, ValidationFailed
from domain.inventory import CONFIGURATION, InventoryApplication, StockResult
from domain.metadata import EventMetadata
from domain.quantities import ZERO
from domain.stock import StockItem

TIMEZONE = "Europe/Berlin"
DAYS = 7  # the activity is spread over the last week of business time
DOCK, QUARANTINE = "IN-01", "QA-01"
STALL_LIMIT = 500  # activities in a row that append nothing before the seed gives up
CENT = Decimal("0.01")


class Sku(NamedTuple):
    """A demo product: FEFO food when it has a shelf life, FIFO hardware otherwise."""

    sku: str
    name: str
    category: str
    uom: str
    decimals: int
    cost: str
    pack: int  # units per case, drum or box: what receipts and orders come in
    shelf_life: int | None = None


CATALOG = (
    Sku("MILK-1L", "Whole milk 3.5%, 1 l", "dairy", "each", 0, "0.89", 12, 12),
    Sku("YOG-500", "Natural yoghurt, 500 g", "dairy", "each", 0, "1.15", 6, 24),
    Sku("BUT-250", "Butter, 250 g", "dairy", "each", 0, "1.79", 20, 60),
    Sku("GOUDA-1KG", "Gouda, young, 1 kg", "cheese", "each", 0, "7.40", 4, 90),
    Sku("EGG-10", "Free-range eggs, box of 10", "eggs", "box", 0, "2.35", 10, 28),
    Sku("OJ-1L", "Orange juice, chilled, 1 l", "beverages", "each", 0, "1.49", 6, 21),
    Sku("SCR-4X40", "Wood screws 4x40, box of 200", "fasteners", "box", 0, "4.20", 10),
    Sku("BLT-M8X50", "Hex bolts M8x50, pack of 25", "fasteners", "pack", 0, "3.10", 10),
    Sku("NYM-3X1.5", "Installation cable NYM-J 3x1.5", "electrical", "m", 2, "0.62", 50),
    Sku("HOSE-19", "Garden hose 19 mm", "garden", "m", 2, "1.05", 25),
    Sku("PAINT-W10", "Interior wall paint, white, 10 l", "paint", "each", 0, "29.90", 2),
    Sku("GLOVE-L", "Work gloves, size L", "safety", "pair", 0, "1.95", 12),
)
SKUS = {item.sku: item for item in CATALOG}
# code, name, pick bins, bulk bins
WAREHOUSES = (("BER1", "Berlin Central DC", 4, 2), ("HAM1", "Hamburg Branch", 3, 1))


def layout(pick: int, bulk: int) -> list[tuple[str, str, bool]]:
    """A warehouse's bins: (code, zone, pickable)."""
    return [
        (DOCK, "inbound", False),
        (QUARANTINE, "quarantine", False),
        *[(f"P-{i:02d}", "pick", True) for i in range(1, pick + 1)],
        *[(f"BK-{i:02d}", "bulk", True) for i in range(1, bulk + 1)],
    ]


PICKABLE = {
    code: [b for b, _, pickable in layout(p, k) if pickable] for code, _, p, k in WAREHOUSES
}


def product_fields(item: Sku) -> dict[str, Any]:
    """Hardware is FIFO; food is lot and expiry tracked, FEFO, with a shelf life."""
    fields = {"uom": item.uom, "decimals": item.decimals, "removal_policy": "fifo"}
    fields |= {"reorder_point": item.pack * 4, "reorder_quantity": item.pack * 12}
    if item.shelf_life is None:
        return {**fields, "attributes": {"category": item.category}}
    fields |= {"lot_tracked": True, "expiry_tracked": True, "removal_policy": "fefo"}
    fields |= {"shelf_life_days": item.shelf_life, "expiry_alert_days": item.shelf_life // 4}
    return {**fields, "attributes": {"category": item.category, "storage": "chilled"}}


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
    app: InventoryApplication, *, events: int, rng_seed: int = 7, meta: EventMetadata
) -> SeedSummary:
    """Seeds the catalogue, the warehouses, one of each activity, then activity to `events`.

    The same `rng_seed` and `events` on an empty tenant give the same commands and events.
    Expiry dates are relative to the application clock's today; effective times spread over
    the last week. `meta` gives the actor; each command gets its own idempotency key.
    """
    if events < 1:
        raise ValidationFailed("events", "must be at least 1")
    seeder = Seeder(app, random.Random(rng_seed), meta, events)  # noqa: S311
    seeder.setup()
    seeder.opening()
    seeder.trade()
    return SeedSummary(seeder.start, seeder.head, dict(seeder.commands), dict(seeder.refused))


class Seeder:
    """Issues the demo's commands one by one, choosing them from the ledger's current stock."""

    def __init__(
        self, app: InventoryApplication, rng: random.Random, meta: EventMetadata, events: int
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
        self.orders: list[tuple[str, str, str]] = []

    def run(self, command: Callable[..., StockResult], *args: Any, **kwargs: Any) -> bool:
        """Runs one command at the next effective time; a domain refusal is counted, not raised."""
        self.tick += 1
        at = min(self.began + self.step * self.tick, self.app.clock())
        configures = command.__name__ in CONFIGURATION  # takes effect when recorded
        meta = replace(self.meta, idempotency_key=None, effective_at=None if configures else at)
        try:
            result = command(*args, meta, **kwargs)
        except DomainError as error:
            self.refused[error.code] += 1
            return False
        self.head = max(self.head, result.position)
        self.commands[command.__name__] += 1
        return True

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
            self.receive(item.sku, "BER1", {1: "expired", 2: "short"}.get(i, "fresh"))
        if not self.stocked:
            raise SeedStalled(f"every receipt was refused: {dict(self.refused)}")
        while self.docked:
            self.putaway()
        ship, recount = partial(self.ship, cancels=0.0), partial(self.count, differ=1.0)
        for activity in (self.order, ship, self.issue, self.transfer, recount, self.damage):
            any(activity() for _ in range(30))
        any(self.hold() for _ in range(30))
        self.write_off()

    def trade(self) -> None:
        """Random activity, weighted like a wholesaler's day, until the target is reached."""
        activities = (self.receive, self.putaway, self.order, self.ship, self.issue, self.transfer)
        more = (self.count, self.damage, self.hold, self.write_off)
        weights = (12, 14, 20, 19, 8, 6, 8, 2, 2, 2)
        idle = 0
        while self.head < self.target:
            before = self.head
            self.rng.choices((*activities, *more), weights)[0]()
            idle = 0 if self.head > before else idle + 1
            if idle > STALL_LIMIT:
                raise SeedStalled(f"{idle} activities in a row were refused: {dict(self.refused)}")

    # -- activities: each returns whether its command was recorded --------------------------------

    def receive(self, sku: str = "", warehouse: str = "", dating: str = "") -> bool:
        """A supplier delivery to the dock; food lots carry the supplier's lot id and expiry."""
        item = SKUS[sku] if sku else self.rng.choice(CATALOG)
        warehouse = warehouse or ("BER1" if self.rng.random() < 0.75 else "HAM1")
        self.serial += 1
        cost = (Decimal(item.cost) * self.rng.randint(95, 105) / 100).quantize(Decimal("0.0001"))
        expires_on = None
        if item.shelf_life is not None:
            dating = dating or self.rng.choices(("fresh", "short", "expired"), (88, 8, 4))[0]
            expires_on = self.expiry(item.shelf_life, dating)
            cost = (cost * Decimal("0.6")).quantize(CENT) if dating == "short" else cost
        lot = f"{'B' if item.shelf_life else 'GR'}{self.serial:05d}"
        receipt = (item.sku, warehouse, DOCK, item.pack * self.rng.randint(3, 10), cost)
        po = f"PO-{self.serial:05d}"
        if not self.run(self.app.receive, *receipt, lot=lot, expires_on=expires_on, reference=po):
            return False
        self.stocked[item.sku, warehouse] = self.docked[item.sku, warehouse] = None
        if dating == "expired":
            self.expired[item.sku, warehouse] = None
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
        """A customer order reserves stock by policy; some accept a partial allocation."""
        sku, warehouse = self.rng.choice(list(self.stocked))
        self.serial += 1
        reference, qty = f"SO-{self.serial:05d}", self.amount(SKUS[sku], 4)
        partly = self.rng.random() < 0.3
        if not self.run(self.app.reserve, sku, warehouse, qty, reference, allow_partial=partly):
            return False
        self.orders.append((sku, warehouse, reference))
        return True

    def ship(self, cancels: float = 0.1) -> bool:
        """The oldest open order ships, or is cancelled (by its customer, or when blocked by an
        expired or held lot): its reservation is released."""
        if not self.orders:
            return False
        order = self.orders.pop(0)
        if self.rng.random() < cancels:
            return self.run(self.app.release, *order)
        return self.run(self.app.issue_reserved, *order) or self.run(self.app.release, *order)

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
        held = [lot for lot, status in stock.status.items() if status == LotStatus.HOLD.value]
        if held and self.rng.random() < 0.6:
            return self.run(self.app.set_lot_status, stock.sku, held[0], "released")
        lots = [lot for lot, _, _ in self.free(stock)]
        return bool(lots) and self.run(self.app.set_lot_status, stock.sku, lots[0], "hold")

    def write_off(self) -> bool:
        """Expired stock is written off, reason `expiry`."""
        if not self.expired:
            return False
        return self.run(self.app.write_off_expired, *self.expired.popitem()[0])

    # -- choices ----------------------------------------------------------------------------------

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
