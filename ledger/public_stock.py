"""The public data of stock item events: SKU and warehouse by name, decimals as text, and the
order a reference names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.orders import SALES_ORDER_REFERENCE, parse_reservation_reference
from domain.quantities import decimal_text
from projections.events import LedgerEvent

Data = dict[str, Any]
Public = tuple[str, Data]
ZERO = Decimal(0)
PURCHASE_ORDER_REFERENCE = "purchase-order:"


def text(value: Decimal) -> str:
    return decimal_text(value)


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def sales_order(reference: str | None) -> Data | None:
    """`{order_id, line}` of a sales order line's stock reference, else None."""
    named = None if reference is None else parse_reservation_reference(reference)
    return None if named is None else {"order_id": str(named[0]), "line": named[1]}


def purchase_order(reference: str | None) -> Data | None:
    """`{order_id, line}` of a purchase order line's receipt reference, else None."""
    if reference is None or not reference.startswith(PURCHASE_ORDER_REFERENCE):
        return None
    order, _, line = reference.removeprefix(PURCHASE_ORDER_REFERENCE).rpartition(":")
    try:
        return {"order_id": str(UUID(order)), "line": int(line)}
    except ValueError:
        return None


def _pick(pick: Data) -> Data:
    return {
        "lot": pick["lot"],
        "bin": pick["bin"],
        "quantity": text(pick["quantity"]),
        "unit_cost": text(pick["unit_cost"]),
        "expires_on": day(pick.get("expires_on")),
    }


def releases(released: dict[str, list[Data]]) -> list[Data]:
    return [
        {
            "reference": reference,
            "sales_order": sales_order(reference),
            "lot": hold["lot"],
            "bin": hold["bin"],
            "quantity": text(hold["quantity"]),
        }
        for reference, holds in released.items()
        for hold in holds
    ]


def _total(values: Iterable[Decimal]) -> Decimal:
    return sum(values, ZERO)


def received(event: LedgerEvent, names: Data) -> Public:
    """A receipt, a transfer's arrival, a return, or stock added by an adjustment or a count."""
    data = event.data
    layer = data["layer"]
    reason, reference = data["reason"], data["reference"]
    stock = {"sku": names["sku"], "warehouse": names["warehouse"]}
    if reason not in ("receipt", "transfer", "return"):
        change = {
            "lot": layer["lot"],
            "bin": layer["bin"],
            "quantity": text(layer["quantity"]),
            "unit_cost": text(layer["unit_cost"]),
        }
        adjusted = {"reason": reason, "quantity": change["quantity"], "changes": [change]}
        return "stock.adjusted", stock | adjusted | {"released": []}
    arrival = stock | {
        "lot": layer["lot"],
        "bin": layer["bin"],
        "quantity": text(layer["quantity"]),
        "unit_cost": text(layer["unit_cost"]),
        "expires_on": day(data["expires_on"]),
        "received_at": instant(layer["received_at"]),
    }
    if reason == "transfer":
        return "stock.transferred_in", arrival | {"from_warehouse": reference}
    if reason == "return":
        return "stock.returned", arrival | {
            "reference": reference,
            "sales_order": sales_order(reference),
        }
    return "stock.received", arrival | {
        "reference": reference,
        "purchase_order": purchase_order(reference),
    }


def removed(event: LedgerEvent, names: Data) -> Public:
    """An issue, a shipment, a transfer's departure, or stock taken away by a count.

    A negative adjustment and an expiry write-off are recorded like an issue with their
    reason, so they are `stock.issued` too.
    """
    data = event.data
    picks = data["picks"]
    reason, reference = data["reason"], data["reference"]
    stock = {"sku": names["sku"], "warehouse": names["warehouse"]}
    freed = releases(data["released"])
    if reason == "count":
        changes = [
            {
                "lot": p["lot"],
                "bin": p["bin"],
                "quantity": text(-p["quantity"]),
                "unit_cost": text(p["unit_cost"]),
            }
            for p in picks
        ]
        total = text(-_total(p["quantity"] for p in picks))
        adjusted = {"reason": reason, "quantity": total, "changes": changes, "released": freed}
        return "stock.adjusted", stock | adjusted
    removal = stock | {
        "reference": reference,
        "quantity": text(_total(p["quantity"] for p in picks)),
        "cost": text(_total(p["quantity"] * p["unit_cost"] for p in picks)),
        "picks": [_pick(p) for p in picks],
        "released": freed,
    }
    if reason == "transfer":
        is_order = reference is not None and reference.startswith(SALES_ORDER_REFERENCE)
        return "stock.transferred_out", removal | {"to_warehouse": None if is_order else reference}
    if reason == "sale" and sales_order(reference) is not None:
        return "stock.shipped", removal | {"sales_order": sales_order(reference)}
    return "stock.issued", removal | {"reason": reason}


def moved(event: LedgerEvent, names: Data) -> Public:
    """Stock moved between bins of one warehouse (reserved stock with its reservations)."""
    data = event.data
    moves = [
        {
            "lot": pick["lot"],
            "from_bin": pick["bin"],
            "to_bin": arrival["bin"],
            "quantity": text(pick["quantity"]),
            "unit_cost": text(pick["unit_cost"]),
        }
        for pick, arrival in zip(data["picks"], data["arrivals"], strict=True)
    ]
    return "stock.moved", {
        "sku": names["sku"],
        "warehouse": names["warehouse"],
        "quantity": text(_total(p["quantity"] for p in data["picks"])),
        "moves": moves,
        "reservations": sorted(data["held"]),
    }


def reserved(event: LedgerEvent, names: Data) -> Public:
    data = event.data
    holds = data["holds"]
    return "stock.reserved", {
        "sku": names["sku"],
        "warehouse": names["warehouse"],
        "reference": data["reference"],
        "sales_order": sales_order(data["reference"]),
        "quantity": text(_total(h["quantity"] for h in holds)),
        "shortage": text(data["shortage"]),
        "holds": [
            {"lot": h["lot"], "bin": h["bin"], "quantity": text(h["quantity"])} for h in holds
        ],
    }


def released(event: LedgerEvent, names: Data) -> Public:
    data = event.data
    freed = data["released"]
    return "stock.reservation_released", {
        "sku": names["sku"],
        "warehouse": names["warehouse"],
        "reason": data["reason"],
        "quantity": text(_total(h["quantity"] for holds in freed.values() for h in holds)),
        "releases": releases(freed),
    }


def counted(event: LedgerEvent, names: Data) -> Public:
    data = event.data
    return "stock.counted", {
        "sku": names["sku"],
        "warehouse": names["warehouse"],
        "lot": data["lot"],
        "bin": data["bin"],
        "counted_quantity": text(data["counted"]),
        "ledger_quantity": text(data["ledger"]),
        "difference": text(data["counted"] - data["ledger"]),
    }


STOCK_CONVERTERS: dict[str, Callable[[LedgerEvent, Data], Public]] = {
    "StockItem.Received": received,
    "StockItem.Removed": removed,
    "StockItem.Moved": moved,
    "StockItem.Reserved": reserved,
    "StockItem.ReservationReleased": released,
    "StockItem.Counted": counted,
}
