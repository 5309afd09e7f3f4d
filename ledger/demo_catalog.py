"""The demo wholesaler's catalogue, suppliers, warehouses and bin layout."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

#: Each demo command's idempotency key is this and its number: new in the tenant it fills.
KEY_PREFIX = "demo-"
TIMEZONE = "Europe/Berlin"
DAYS = 7  # the activity is spread over the last week of business time
DOCK, QUARANTINE = "IN-01", "QA-01"
STALL_LIMIT = 500  # activities in a row that append nothing before the seed gives up
OVERSTOCK_CASES = 60  # a SKU a warehouse has this many cases to sell of is not ordered again
QUARANTINE_BACKLOG = 8  # stock items with returns in quarantine before quality inspects one
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


#: Who supplies each category.
SUPPLIERS = {
    "dairy": "Elbe Dairy Cooperative",
    "cheese": "Elbe Dairy Cooperative",
    "eggs": "Havelland Farms",
    "beverages": "Havelland Farms",
    "fasteners": "Hansa Fasteners GmbH",
    "electrical": "Spree Electrical Supply",
    "garden": "Spree Electrical Supply",
    "paint": "Nordlicht Paints",
    "safety": "Hansa Fasteners GmbH",
}
CUSTOMERS = (
    "Café Kranzler",
    "Bäckerei Wiese",
    "Hotel am Kanal",
    "Bau & Werk Köpenick",
    "Hausmeisterdienst Mitte",
    "Kita Sonnenschein",
    "Eisenwaren Krause",
)
