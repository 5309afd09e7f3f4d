"""A wholesaler's week over HTTP against a real server: products, bins, a purchase order received
in parts with lots and expiries, sales orders allocated by FEFO, shipped, one returned, a count,
then stock, lots, movements, orders, KPIs and the audit feed read back."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.http_server import register_tenant, served
from tests.test_api_foundation import bearer, token

Json = dict[str, Any]

MILK, BOLT, WH = "MILK-1L", "BOLT-M8", "HAM1"
DOCK, MILK_BIN, BOLT_BIN = "DOCK", "A-01", "A-02"
SOON, LATE = "MLK-SOON", "MLK-LATE"  # the later delivery brings the earlier expiry
MILK_COST, BOLT_COST, WALK_IN_COST = Decimal("0.80"), Decimal("0.12"), Decimal("0.15")
MILK_ORDERED, BOLT_ORDERED = 100, 500
FIRST = {MILK: 60, BOLT: 300}  # the first delivery: MILK as lot LATE
SECOND = {MILK: 40, BOLT: 200}  # the second: MILK as lot SOON
BOLT_PUT_AWAY, WALK_IN = 450, 100
SO1 = {MILK: 50, BOLT: 400}
SO2 = {BOLT: 100, MILK: 30}
SO2_MILK_SHIPPED, RETURNED = 20, 5
COUNTED = 48  # of the 50 bolts left on the dock
ROLES = {
    "admin": "manager@hanse",
    "purchasing_agent": "buyer@hanse",
    "warehouse_operator": "forklift@hanse",
    "sales": "desk@hanse",
    "auditor": "auditor@hanse",
}


@dataclass(frozen=True)
class Command:
    """A command the week sent: who, which request, which key, the position it reached."""

    role: str
    request_id: str
    key: str | None
    position: int


@dataclass
class Week:
    """The client side of the week: every command sent and what came back."""

    client: httpx.Client
    tenant: UUID
    today: date
    commands: list[Command] = field(default_factory=list)
    done: dict[str, Json] = field(default_factory=dict)
    replay: httpx.Response | None = None
    heads: tuple[int, int] = (0, 0)
    early: dict[str, Json] = field(default_factory=dict)

    @property
    def position(self) -> int:
        return self.commands[-1].position

    def headers(self, role: str) -> dict[str, str]:
        return bearer(token(self.tenant, [role], sub=ROLES[role]))

    def send(self, name: str, role: str, path: str, body: Json | None, key: str | None) -> Json:
        request_id = f"week-{len(self.commands) + 1:02d}-{name}"
        headers = self.headers(role) | {"X-Request-ID": request_id}
        if key is not None:
            headers["Idempotency-Key"] = key
        response = self.client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        assert response.headers["X-Request-ID"] == request_id
        assert "Idempotent-Replayed" not in response.headers
        data: Json = response.json()
        self.commands.append(Command(role, request_id, key, data["position"]))
        self.done[name] = data
        return data

    def read(self, path: str, **params: Any) -> Json:
        params = {"min_position": self.position, "limit": 1000} | params
        response = self.client.get(path, params=params, headers=self.headers("auditor"))
        assert response.status_code == 200, response.text
        data: Json = response.json()
        assert data["position"] >= self.position
        return data

    def head(self) -> int:
        response = self.client.get("/v1/audit/verify", headers=self.headers("auditor"))
        assert response.status_code == 200, response.text
        checked: int = response.json()["checked_to_position"]
        return checked


def d(value: Any) -> Decimal:
    return Decimal(str(value))


def in_days(week: Week, days: int) -> str:
    return (week.today + timedelta(days=days)).isoformat()


# -- the week ---------------------------------------------------------------------------------


def set_up_catalog(week: Week) -> None:
    milk = {"sku": MILK, "name": "Whole milk 1 l", "lot_tracked": True, "expiry_tracked": True}
    week.send("milk", "admin", "/v1/products", milk | {"removal_policy": "fefo"}, None)
    bolt = {"sku": BOLT, "name": "Hex bolt M8", "removal_policy": "fifo"}
    week.send("bolt", "admin", "/v1/products", bolt, None)
    warehouse = {"code": WH, "name": "Hamburg", "timezone": "UTC"}
    week.send("warehouse", "admin", "/v1/warehouses", warehouse, None)
    bins = f"/v1/warehouses/{WH}/bins"
    week.send("dock", "admin", bins, {"code": DOCK, "zone": "receiving", "pickable": False}, None)
    week.send("milk-bin", "admin", bins, {"code": MILK_BIN, "zone": "chilled"}, None)
    week.send("bolt-bin", "admin", bins, {"code": BOLT_BIN, "zone": "hardware"}, None)


def delivery(milk_lot: str, expires_in: int, quantities: dict[str, int], week: Week) -> Json:
    milk = {"line": 1, "quantity": quantities[MILK], "bin": DOCK, "lot": milk_lot}
    bolt = {"line": 2, "quantity": quantities[BOLT], "bin": DOCK}
    return {"lines": [milk | {"expires_on": in_days(week, expires_in)}, bolt]}


def purchase(week: Week) -> None:
    lines = [
        {"sku": MILK, "quantity": MILK_ORDERED, "unit_cost": str(MILK_COST)},
        {"sku": BOLT, "quantity": BOLT_ORDERED, "unit_cost": float(BOLT_COST)},
    ]
    order = {"supplier": "Nordsee Dairy & Hardware", "warehouse": WH, "lines": lines}
    order |= {"expected_on": in_days(week, 7), "external_id": "PO-0042"}
    created = week.send("po", "purchasing_agent", "/v1/purchase-orders", order, None)
    path = f"/v1/purchase-orders/{created['id']}"
    week.send("po-submit", "purchasing_agent", f"{path}/submit", None, None)
    week.early["submitted"] = week.read("/v1/stock-levels", warehouse=WH)
    first = delivery(LATE, 40, FIRST, week)
    week.send("po-receipt-1", "purchasing_agent", f"{path}/receipts", first, "po-0042-delivery-1")
    week.early["first"] = week.read("/v1/stock-levels", warehouse=WH)
    before = week.head()
    week.replay = week.client.post(
        f"{path}/receipts",
        json=first,
        headers=week.headers("purchasing_agent")
        | {"Idempotency-Key": "po-0042-delivery-1", "X-Request-ID": "week-retry"},
    )
    week.heads = (before, week.head())
    second = delivery(SOON, 20, SECOND, week)
    week.send("po-receipt-2", "purchasing_agent", f"{path}/receipts", second, "po-0042-delivery-2")


def put_away(week: Week) -> None:
    move = {"sku": MILK, "warehouse": WH, "from_bin": DOCK, "to_bin": MILK_BIN}
    for lot, quantity in ((LATE, FIRST[MILK]), (SOON, SECOND[MILK])):
        week.send(
            f"move-{lot}",
            "warehouse_operator",
            "/v1/stock/moves",
            move | {"lot": lot, "quantity": quantity},
            None,
        )
    bolts = move | {"sku": BOLT, "to_bin": BOLT_BIN, "quantity": BOLT_PUT_AWAY}
    week.send("move-bolts", "warehouse_operator", "/v1/stock/moves", bolts, "put-away-bolts")
    walk_in = {"sku": BOLT, "warehouse": WH, "bin": BOLT_BIN, "quantity": WALK_IN}
    walk_in |= {"unit_cost": str(WALK_IN_COST), "reference": "walk-in"}
    week.send("walk-in", "warehouse_operator", "/v1/stock/receipts", walk_in, "walk-in-1")


def sell(week: Week) -> None:
    for name, customer, lines in (("so1", "Cafe Alster", SO1), ("so2", "Hafen Hardware", SO2)):
        body: Json = {"customer": customer, "warehouse": WH, "external_id": name.upper()}
        body["lines"] = [{"sku": sku, "quantity": quantity} for sku, quantity in lines.items()]
        order = week.send(name, "sales", "/v1/sales-orders", body, None)
        week.send(
            f"{name}-allocate", "sales", f"/v1/sales-orders/{order['id']}/allocate", None, None
        )
    week.early["allocated"] = week.read("/v1/lots", sku=MILK, warehouse=WH)
    so1, so2 = (f"/v1/sales-orders/{week.done[n]['id']}" for n in ("so1", "so2"))
    week.send("so1-ship", "sales", f"{so1}/ship", None, "ship-so1")
    partial = {
        "lines": [{"line": 1, "quantity": SO2[BOLT]}, {"line": 2, "quantity": SO2_MILK_SHIPPED}]
    }
    week.send("so2-ship", "sales", f"{so2}/ship", partial, "ship-so2")
    back = {"line": 1, "quantity": RETURNED, "disposition": "restock", "bin": MILK_BIN, "lot": SOON}
    week.send("so1-return", "sales", f"{so1}/returns", {"lines": [back]}, "return-so1")


def count(week: Week) -> None:
    lot = week.done["po-receipt-2"]["receipts"][1]["lot"]
    body = {"sku": BOLT, "warehouse": WH, "bin": DOCK, "lot": lot}
    body |= {
        "counted_quantity": COUNTED,
        "expected_quantity": SECOND[BOLT] + FIRST[BOLT] - BOLT_PUT_AWAY,
    }
    week.send("count", "warehouse_operator", "/v1/stock/counts", body, "count-dock")


@pytest.fixture
def week(database_url: str) -> Iterator[Week]:
    tenant = register_tenant(database_url, f"week-{uuid.uuid4().hex[:10]}")
    with served(database_url) as base, httpx.Client(base_url=base, timeout=60) as client:
        story = Week(client, tenant, datetime.now(UTC).date())
        for step in (set_up_catalog, purchase, put_away, sell, count):
            step(story)
        yield story


# -- what the week reads back -----------------------------------------------------------------

LEFT_ON_DOCK = FIRST[BOLT] + SECOND[BOLT] - BOLT_PUT_AWAY
MILK_LEFT = MILK_ORDERED - SO1[MILK] - SO2_MILK_SHIPPED + RETURNED
MILK_RESERVED = SO2[MILK] - SO2_MILK_SHIPPED
BOLT_LEFT = BOLT_ORDERED + WALK_IN - SO1[BOLT] - SO2[BOLT] - (LEFT_ON_DOCK - COUNTED)
#: FIFO: SO1's bolts come from the first delivery, then the second; SO2's from what is left of
#: the second, then the walk-in receipt.
SO2_FROM_SECOND = FIRST[BOLT] + SECOND[BOLT] - LEFT_ON_DOCK - SO1[BOLT]
WALK_IN_LEFT = WALK_IN - (SO2[BOLT] - SO2_FROM_SECOND)
MILK_VALUE = MILK_LEFT * MILK_COST
BOLT_VALUE = COUNTED * BOLT_COST + WALK_IN_LEFT * WALK_IN_COST
SHIPPED_COST = (
    (SO1[MILK] + SO2_MILK_SHIPPED) * MILK_COST
    + (SO1[BOLT] + SO2_FROM_SECOND) * BOLT_COST
    + (SO2[BOLT] - SO2_FROM_SECOND) * WALK_IN_COST
)
COGS = SHIPPED_COST - RETURNED * MILK_COST


def level(item: Json) -> tuple[Decimal, ...]:
    names = ("on_hand", "reserved", "available", "incoming", "value")
    return tuple(d(item[name]) for name in names)


def test_stock_levels_on_hand_reserved_available_incoming_and_value_follow_from_the_week(
    week: Week,
) -> None:
    page = week.read("/v1/stock-levels", warehouse=WH)
    levels = {item["sku"]: level(item) for item in page["items"]}
    assert levels == {
        MILK: (d(MILK_LEFT), d(MILK_RESERVED), d(MILK_LEFT - MILK_RESERVED), d(0), MILK_VALUE),
        BOLT: (d(BOLT_LEFT), d(0), d(BOLT_LEFT - COUNTED), d(0), BOLT_VALUE),
    }


def test_stock_on_the_dock_is_on_hand_but_not_available_and_submitted_orders_are_incoming(
    week: Week,
) -> None:
    submitted = {i["sku"]: level(i) for i in week.early["submitted"]["items"]}
    first = {i["sku"]: level(i) for i in week.early["first"]["items"]}
    nothing = (d(0), d(0), d(0))
    assert submitted == {
        MILK: (*nothing, d(MILK_ORDERED), d(0)),
        BOLT: (*nothing, d(BOLT_ORDERED), d(0)),
    }
    assert first == {
        MILK: (d(FIRST[MILK]), d(0), d(0), d(MILK_ORDERED - FIRST[MILK]), FIRST[MILK] * MILK_COST),
        BOLT: (d(FIRST[BOLT]), d(0), d(0), d(BOLT_ORDERED - FIRST[BOLT]), FIRST[BOLT] * BOLT_COST),
    }


def test_a_retried_receipt_with_its_key_is_replayed_and_appends_nothing(week: Week) -> None:
    assert week.replay is not None
    assert week.replay.status_code == 201, week.replay.text
    assert week.replay.headers["Idempotent-Replayed"] == "true"
    assert week.replay.json() == week.done["po-receipt-1"]
    assert week.heads == (week.done["po-receipt-1"]["position"],) * 2


def lot_rows(page: Json) -> set[tuple[Any, ...]]:
    names = ("lot", "bin", "on_hand", "reserved", "expires_on", "expired", "unit_cost", "status")
    return {
        tuple(d(i[n]) if n in ("on_hand", "reserved", "unit_cost") else i[n] for n in names)
        for i in page["items"]
    }


def test_each_lot_is_left_in_its_bin_with_its_expiry_cost_and_reservations(week: Week) -> None:
    milk = lot_rows(week.read("/v1/lots", sku=MILK, warehouse=WH))
    bolt = lot_rows(week.read("/v1/lots", sku=BOLT, warehouse=WH))
    late, soon = in_days(week, 40), in_days(week, 20)
    second_bolts = week.done["po-receipt-2"]["receipts"][1]["lot"]
    walk_in = week.done["walk-in"]["lot"]
    left = FIRST[MILK] - (SO1[MILK] - SECOND[MILK]) - SO2_MILK_SHIPPED
    assert milk == {
        (LATE, MILK_BIN, d(left), d(MILK_RESERVED), late, False, MILK_COST, "released"),
        (SOON, MILK_BIN, d(RETURNED), d(0), soon, False, MILK_COST, "released"),
    }
    assert bolt == {
        (second_bolts, DOCK, d(COUNTED), d(0), None, False, BOLT_COST, "released"),
        (walk_in, BOLT_BIN, d(WALK_IN_LEFT), d(0), None, False, WALK_IN_COST, "released"),
    }


def test_allocation_by_fefo_reserves_the_earlier_expiring_lot_first(week: Week) -> None:
    reserved = {(i["lot"], d(i["reserved"])) for i in week.early["allocated"]["items"]}
    # SO1 takes all of the earlier lot, which arrived last, and the rest from the later one.
    soon_for_so1 = SECOND[MILK]
    assert reserved == {(SOON, d(soon_for_so1)), (LATE, d(SO1[MILK] - soon_for_so1 + SO2[MILK]))}
    milk_picks = [p for p in week.done["so1-ship"]["picks"] if p["sku"] == MILK]
    assert [(p["lot"], d(p["quantity"]), p["expires_on"]) for p in milk_picks] == [
        (SOON, d(soon_for_so1), in_days(week, 20)),
        (LATE, d(SO1[MILK] - soon_for_so1), in_days(week, 40)),
    ]


def test_fifo_shipments_take_the_oldest_receipts_first_at_their_cost(week: Week) -> None:
    first_bolts = week.done["po-receipt-1"]["receipts"][1]["lot"]
    second_bolts = week.done["po-receipt-2"]["receipts"][1]["lot"]
    walk_in = week.done["walk-in"]["lot"]

    def bolts(name: str) -> list[tuple[str, Decimal, Decimal]]:
        picks = week.done[name]["picks"]
        return [(p["lot"], d(p["quantity"]), d(p["unit_cost"])) for p in picks if p["sku"] == BOLT]

    assert bolts("so1-ship") == [
        (first_bolts, d(FIRST[BOLT]), BOLT_COST),
        (second_bolts, d(SO1[BOLT] - FIRST[BOLT]), BOLT_COST),
    ]
    assert bolts("so2-ship") == [
        (second_bolts, d(SO2_FROM_SECOND), BOLT_COST),
        (walk_in, d(SO2[BOLT] - SO2_FROM_SECOND), WALK_IN_COST),
    ]
    shipped = sum(d(week.done[n]["cost"]) for n in ("so1-ship", "so2-ship"))
    assert shipped == SHIPPED_COST


def order_lines(order: Json, *names: str) -> list[tuple[Any, ...]]:
    return [(line["sku"], *(d(line[n]) for n in names)) for line in order["lines"]]


def test_the_orders_read_back_with_their_statuses_and_line_quantities(week: Week) -> None:
    statuses = [week.done[n]["status"] for n in ("po", "po-submit", "po-receipt-1", "po-receipt-2")]
    assert statuses == ["draft", "submitted", "partially_received", "received"]
    sales = [week.done[n]["status"] for n in ("so1", "so1-allocate", "so1-ship", "so2-ship")]
    assert sales == ["open", "allocated", "shipped", "partially_shipped"]
    po = week.read(f"/v1/purchase-orders/{week.done['po']['id']}")
    assert (po["status"], po["external_id"]) == ("received", "PO-0042")
    assert order_lines(po, "ordered", "received", "open", "unit_cost") == [
        (MILK, d(MILK_ORDERED), d(MILK_ORDERED), d(0), MILK_COST),
        (BOLT, d(BOLT_ORDERED), d(BOLT_ORDERED), d(0), BOLT_COST),
    ]
    so1 = week.read(f"/v1/sales-orders/{week.done['so1']['id']}")
    so2 = week.read(f"/v1/sales-orders/{week.done['so2']['id']}")
    assert (so1["status"], so2["status"]) == ("shipped", "partially_shipped")
    names = ("ordered", "allocated", "shipped", "returned")
    assert order_lines(so1, *names) == [
        (MILK, d(SO1[MILK]), d(0), d(SO1[MILK]), d(RETURNED)),
        (BOLT, d(SO1[BOLT]), d(0), d(SO1[BOLT]), d(0)),
    ]
    assert order_lines(so2, *names) == [
        (BOLT, d(SO2[BOLT]), d(0), d(SO2[BOLT]), d(0)),
        (MILK, d(SO2[MILK]), d(MILK_RESERVED), d(SO2_MILK_SHIPPED), d(0)),
    ]


def rounded(value: Fraction) -> Decimal:
    """A rate as the KPIs give it: to 6 decimals."""
    return Decimal(round(value * 10**6)).scaleb(-6)


def test_the_kpis_follow_from_the_shipments_the_return_and_the_count(week: Week) -> None:
    last = datetime.now(UTC).date()
    kpis = week.read("/v1/kpis", **{"from": week.today.isoformat(), "to": last.isoformat()})
    ordered = sum(SO1.values()) + sum(SO2.values())
    shipped = sum(SO1.values()) + SO2[BOLT] + SO2_MILK_SHIPPED
    assert d(kpis["cogs"]) == COGS
    assert d(kpis["unit_fill_rate"]) == rounded(Fraction(shipped, ordered))
    assert d(kpis["line_fill_rate"]) == rounded(Fraction(3, 4))  # all but SO2's milk
    assert d(kpis["record_accuracy"]) == 0  # one count, and it found a difference
    assert d(kpis["supplier_on_time_rate"]) == 1  # everything came before the expected date
    assert (d(kpis["expired_quantity"]), d(kpis["expired_value"])) == (0, 0)
    assert kpis["stockout_events"] == 0
    if last == week.today:  # one business day: the average is that day's closing value
        closing = Fraction(MILK_VALUE + BOLT_VALUE)
        assert d(kpis["average_inventory_value"]) == MILK_VALUE + BOLT_VALUE
        assert d(kpis["inventory_turnover"]) == rounded(Fraction(COGS) / closing)
        assert d(kpis["days_of_inventory"]) == rounded(closing / Fraction(COGS))


def test_every_milk_movement_is_recorded_with_its_actor_and_request(week: Week) -> None:
    items = week.read("/v1/movements", sku=MILK, warehouse=WH)["items"]
    by_request = {c.request_id: ROLES[c.role] for c in week.commands}
    assert all(i["actor"] == f"jwt:{by_request[i['request_id']]}" for i in items)
    assert all(d(i["unit_cost"]) == MILK_COST for i in items)
    moves = Counter(
        (i["lot"], i["bin"], d(i["quantity"]), i["request_id"].split("-", 2)[2]) for i in items
    )
    assert moves == Counter(
        [
            (LATE, DOCK, d(FIRST[MILK]), "po-receipt-1"),
            (SOON, DOCK, d(SECOND[MILK]), "po-receipt-2"),
            (LATE, DOCK, d(-FIRST[MILK]), f"move-{LATE}"),
            (LATE, MILK_BIN, d(FIRST[MILK]), f"move-{LATE}"),
            (SOON, DOCK, d(-SECOND[MILK]), f"move-{SOON}"),
            (SOON, MILK_BIN, d(SECOND[MILK]), f"move-{SOON}"),
            (SOON, MILK_BIN, d(-SECOND[MILK]), "so1-ship"),
            (LATE, MILK_BIN, d(SECOND[MILK] - SO1[MILK]), "so1-ship"),
            (LATE, MILK_BIN, d(-SO2_MILK_SHIPPED), "so2-ship"),
            (SOON, MILK_BIN, d(RETURNED), "so1-return"),
        ]
    )
    assert [i["position"] for i in items] == sorted(i["position"] for i in items)


def audit_feed(week: Week) -> list[Json]:
    """Every event of the tenant, page by page."""
    events: list[Json] = []
    cursor: str | None = None
    while True:
        params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
        response = week.client.get(
            "/v1/audit/events", params=params, headers=week.headers("auditor")
        )
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def test_the_audit_chain_recomputed_from_the_payloads_matches_the_feed_and_verify(
    week: Week,
) -> None:
    events = audit_feed(week)
    assert [e["position"] for e in events] == list(range(1, week.position + 1))
    previous = bytes(32)
    for event in events:
        digest = hashlib.sha256(previous + base64.b64decode(event["payload"])).digest()
        assert (event["prev_hash"], event["hash"]) == (previous.hex(), digest.hex())
        previous = digest
    response = week.client.get("/v1/audit/verify", headers=week.headers("auditor"))
    assert response.status_code == 200, response.text
    verified = response.json()
    assert (verified["ok"], verified["checked_to_position"], verified["first_bad_position"]) == (
        True,
        week.position,
        None,
    )
    assert verified["head_hash"] == previous.hex()


def test_the_audit_feed_holds_each_commands_events_with_its_actor_request_and_key(
    week: Week,
) -> None:
    events = audit_feed(week)
    by_position = {e["position"]: e for e in events}
    before = min(p for p in by_position if by_position[p]["actor"]["kind"] != "cli") - 1
    assert all(by_position[p]["actor"]["kind"] == "cli" for p in range(1, before + 1))
    for command in week.commands:
        caused = [by_position[p] for p in range(before + 1, command.position + 1)]
        assert caused, command
        actor = {"kind": "jwt", "id": ROLES[command.role], "roles": [command.role]}
        assert all(e["actor"] == actor for e in caused), command
        assert all(e["request_id"] == command.request_id for e in caused), command
        if command.key is not None:
            assert all(e["idempotency_key"] == command.key for e in caused), command
        before = command.position
    assert before == events[-1]["position"]
    assert not [e for e in events if e["request_id"] == "week-retry"]
