"""Public events: every stored kind is published or declared internal, every public event made
by real commands follows its type's JSON Schema, and stock is named by SKU and warehouse."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
from datetime import date
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from eventsourcing.domain import Aggregate, DomainEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import domain
from domain.errors import DomainError
from domain.metadata import EventMetadata
from domain.orders import ReceiveLine, ReturnLine, ShipLine
from domain.sales_orders import LedgerApplication
from domain.stock import stock_item_id
from eventstore.store import LedgerStore
from ledger.public_events import (
    CONVERTERS,
    INTERNAL,
    SOURCES,
    TYPES,
    PublicEvent,
    produces,
    public_events,
)
from tests.orders import Clock, head, order_ledger

M = EventMetadata()


def stored_kinds() -> set[str]:
    """Every event class of the domain's aggregates, as stored topics name it."""
    kinds = set()
    for module_info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{module_info.name}")
        for aggregate in vars(module).values():
            if not (
                inspect.isclass(aggregate)
                and issubclass(aggregate, Aggregate)
                and aggregate.__module__ == module.__name__
            ):
                continue
            events = [
                e
                for e in vars(aggregate).values()
                if inspect.isclass(e) and issubclass(e, DomainEvent)
            ]
            created = [e for e in events if issubclass(e, Aggregate.Created)]
            for event in events:
                name = event.__qualname__.rpartition(".")[2]
                generated = name == "Event" or (name == "Created" and len(created) > 1)
                if not generated:
                    kinds.add(event.__qualname__)
    return kinds


def strict(schema: Any) -> Any:
    """The schema with every listed object closed: data may carry no field it does not list."""
    if isinstance(schema, dict):
        closed = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def problems(event: PublicEvent) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        strict(TYPES[event.type].schema), format_checker=jsonschema.FormatChecker()
    )
    return [f"{event.type}: {error.message}" for error in validator.iter_errors(event.data)]


def published(app: LedgerApplication, store: LedgerStore) -> list[PublicEvent]:
    return list(public_events(store, app.tenant_id, 0, head(app)))


def every_kind_of_event(app: LedgerApplication) -> None:
    """Commands that between them record every public type."""
    app.change_product("BOLT", M, name="Bolt M6 zinc", reorder_point=Decimal("5.5"))
    app.receive("MILK", "WH1", "A1", 20, "1.25", M, lot="L1", expires_on=date(2026, 7, 1))
    app.receive("BOLT", "WH1", "A1", "10.5", "0.1", M)
    app.move("MILK", "WH1", "A1", "A2", 2, M, lot="L1")
    app.transfer("MILK", "WH1", "WH2", "A1", 3, M)
    app.adjust("MILK", "WH1", "A2", 1, "correction", M, lot="L1")
    app.adjust("BOLT", "WH1", "A1", "-0.5", "damage", M)
    app.count("MILK", "WH1", "A2", 2, M, lot="L1")
    app.issue("BOLT", "WH1", 1, "consumption", M)
    app.reserve("BOLT", "WH1", 2, "pick-1", M)
    app.release("BOLT", "WH1", "pick-1", M)
    app.set_lot_status("MILK", "L1", "hold", M)
    app.set_lot_status("MILK", "L1", "released", M)
    order = app.create_purchase_order("Dairy Co", "WH1", [("MILK", 10, "1.1")], M).order_id
    app.submit_purchase_order(order, M)
    app.receive_purchase_order(order, [ReceiveLine(1, 4, "A1", "L2", date(2026, 7, 3))], M)
    app.close_purchase_order(order, M)
    dropped = app.create_purchase_order("Dairy Co", "WH1", [("BOLT", 1, "1")], M).order_id
    app.cancel_purchase_order(dropped, M)
    sale = app.create_sales_order("Corner Shop", "WH1", [("MILK", 6)], M).order_id
    app.allocate_sales_order(sale, M)
    app.ship_sales_order(sale, M, lines=[ShipLine(1, 4)])
    app.return_sales_order(sale, [ReturnLine(1, 1, "restock", "A1")], M)
    app.count("MILK", "WH1", "A1", 0, M, lot="L1")  # below what the order holds there
    app.cancel_sales_order(sale, M)


@pytest.fixture
def app(store: LedgerStore) -> LedgerApplication:
    return order_ledger(store, Clock())


def test_every_stored_event_kind_is_published_or_declared_internal() -> None:
    undecided = stored_kinds() - CONVERTERS.keys() - INTERNAL.keys()
    assert undecided == set()


def test_no_kind_is_both_published_and_internal() -> None:
    assert CONVERTERS.keys() & INTERNAL.keys() == set()


def test_every_public_type_comes_from_a_stored_kind_that_exists() -> None:
    kinds = stored_kinds()
    for name in TYPES:
        assert SOURCES[name], name
        assert SOURCES[name] <= kinds, name


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    for kind in TYPES.values():
        jsonschema.Draft202012Validator.check_schema(kind.schema)
        assert kind.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_real_commands_record_every_public_type_and_each_follows_its_schema(
    app: LedgerApplication, store: LedgerStore
) -> None:
    every_kind_of_event(app)
    events = published(app, store)
    assert {e.type for e in events} == set(TYPES)
    assert [p for e in events for p in problems(e)] == []


def test_an_event_becomes_a_type_its_stored_kind_may_produce(
    app: LedgerApplication, store: LedgerStore
) -> None:
    every_kind_of_event(app)
    recorded = {e.position: e for e in store.read_range(app.tenant_id, 0, head(app))}
    for event in published(app, store):
        kind = recorded[event.position].topic.rpartition(":")[2]
        assert event.type in produces(kind)


def test_public_events_are_in_position_order_with_distinct_stable_ids(
    app: LedgerApplication, store: LedgerStore
) -> None:
    every_kind_of_event(app)
    first, again = published(app, store), published(app, store)
    positions = [e.position for e in first]
    assert positions == sorted(set(positions))
    assert len({e.event_id for e in first}) == len(first)
    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_internal_kinds_are_left_out(app: LedgerApplication, store: LedgerStore) -> None:
    every_kind_of_event(app)
    kinds = {e.topic.rpartition(":")[2] for e in store.read_range(app.tenant_id, 0, head(app))}
    public_positions = {e.position for e in published(app, store)}
    internal = [
        e.position
        for e in store.read_range(app.tenant_id, 0, head(app))
        if e.topic.rpartition(":")[2] in INTERNAL
    ]
    assert kinds & INTERNAL.keys()  # the scenario records some
    assert public_positions.isdisjoint(internal)


def test_a_receipt_names_sku_warehouse_and_lot_with_decimal_text(
    app: LedgerApplication, store: LedgerStore
) -> None:
    app.receive("MILK", "WH1", "A1", "3.0", "1.200", M, lot="L9", reference="GRN-7")
    [event] = [e for e in published(app, store) if e.type == "stock.received"]
    assert event.version == 1
    assert event.stream == str(stock_item_id(app.tenant_id, "MILK", "WH1"))
    assert {k: v for k, v in event.data.items() if k != "received_at"} == {
        "sku": "MILK",
        "warehouse": "WH1",
        "lot": "L9",
        "bin": "A1",
        "quantity": "3",
        "unit_cost": "1.2",
        "expires_on": "2026-06-25",  # ten days' shelf life from the clock's business date
        "reference": "GRN-7",
        "purchase_order": None,
    }


def test_a_shipment_names_its_sales_order_line(app: LedgerApplication, store: LedgerStore) -> None:
    app.receive("BOLT", "WH1", "A1", 5, "2", M)
    sale = app.create_sales_order("Corner Shop", "WH1", [("BOLT", 3)], M).order_id
    app.allocate_sales_order(sale, M)
    app.ship_sales_order(sale, M)
    [shipped] = [e for e in published(app, store) if e.type == "stock.shipped"]
    assert shipped.data["sales_order"] == {"order_id": str(sale), "line": 1}
    assert (shipped.data["quantity"], shipped.data["cost"]) == ("3", "6")


def test_a_type_filter_reads_only_those_types(app: LedgerApplication, store: LedgerStore) -> None:
    every_kind_of_event(app)
    wanted = {"stock.moved", "sales_order.shipped"}
    chosen = list(public_events(store, app.tenant_id, 0, head(app), wanted, window=7))
    expected = [e for e in published(app, store) if e.type in wanted]
    assert [e.position for e in chosen] == [e.position for e in expected]
    assert {e.type for e in chosen} == wanted


COMMANDS = st.sampled_from(["receive", "issue", "move", "transfer", "adjust", "count", "reserve"])


def run(app: LedgerApplication, command: str, amount: int, lot: str) -> None:
    calls: dict[str, Any] = {
        "receive": lambda: app.receive("MILK", "WH1", "A1", amount, "0.75", M, lot=lot),
        "issue": lambda: app.issue("MILK", "WH1", amount, "sample", M),
        "move": lambda: app.move("MILK", "WH1", "A1", "A2", amount, M),
        "transfer": lambda: app.transfer("MILK", "WH1", "WH2", "DOCK", amount, M),
        "adjust": lambda: app.adjust("MILK", "WH1", "A1", -amount, "loss", M),
        "count": lambda: app.count("MILK", "WH1", "A1", amount, M, lot=lot),
        "reserve": lambda: app.reserve("MILK", "WH1", amount, f"r-{lot}", M, allow_partial=True),
    }
    with contextlib.suppress(DomainError):  # a refused command records nothing
        calls[command]()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.tuples(COMMANDS, st.integers(1, 9), st.sampled_from(["L1", "L2"])),
        min_size=1,
        max_size=8,
    )
)
def test_random_stock_commands_publish_events_that_follow_their_schemas(
    store: LedgerStore, steps: list[tuple[str, int, str]]
) -> None:
    app = order_ledger(store, Clock())  # a tenant of this example's own
    for command, amount, lot in steps:
        run(app, command, amount, lot)
    assert [p for e in published(app, store) for p in problems(e)] == []
