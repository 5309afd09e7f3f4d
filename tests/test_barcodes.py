"""Product barcodes: check digits, pack quantities, one product per code in a tenant (even under
racing writers), codes released and taken again, events from before barcodes, the read model."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from sqlalchemy import Engine, Table, create_engine, delete, insert, pool, select, text

from domain.catalog import BarcodeClaim, BarcodeTaken, Product, barcode_id, gs1_check_digit
from domain.errors import AlreadyExists, InvalidQuantity, ValidationFailed
from domain.metadata import EventMetadata
from domain.sales_orders import LedgerApplication
from eventstore.store import LedgerStore
from ledger.settings import Settings
from ledger.wiring import Ledger
from projections.catalog import (
    BARCODES,
    BINS,
    PRODUCTS,
    WAREHOUSES,
    Catalog,
    product_by_barcode,
    products,
)
from projections.rebuild import Rebuild
from projections.runner import Runner
from projections.schema import ProjectionTracking
from projections.tenancy import tenant_scope
from tests.orders import Clock, M, head, order_ledger
from tests.racing import THREADS, chain_of, new_tenant, race

TRACKING = cast("Table", ProjectionTracking.__table__)
TENANT = UUID("00000000-0000-4000-8000-000000000001")
EAN13 = "4006381333931"  # published examples of each GS1 kind, check digit last
UPC_A = "036000291452"
EAN8 = "96385074"
GTIN14 = "10012345678902"


def product(**fields: Any) -> Product:
    return Product.register(TENANT, "SOAP", "Soap", **fields)


@pytest.fixture
def app(store: LedgerStore) -> LedgerApplication:
    return order_ledger(store, Clock())


def claim_of(app: LedgerApplication, code: str) -> BarcodeClaim:
    found: BarcodeClaim = app.repository.get(barcode_id(app.tenant_id, code))
    return found


# -- the rules of one product's barcodes -----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"), [(EAN13, "ean13"), (UPC_A, "upc_a"), (EAN8, "ean8"), (GTIN14, "gtin14")]
)
def test_gs1_codes_with_their_published_check_digit_are_accepted(code: str, kind: str) -> None:
    assert gs1_check_digit(code[:-1]) == int(code[-1])
    soap = product(barcodes=[{"code": code, "kind": kind}])
    assert soap.barcodes == [{"code": code, "kind": kind, "pack_quantity": Decimal(1)}]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("4006381333932", "ean13"),  # wrong check digit
        ("036000291453", "upc_a"),
        ("96385075", "ean8"),
        ("10012345678901", "gtin14"),
        ("400638133393", "ean13"),  # a digit short
        ("40063813339X1", "ean13"),
        ("٤٠٠٦٣٨١٣٣٣٩٣١", "ean13"),  # digits, but not ASCII ones
        ("Ünïcode", "code128"),
    ],
)
def test_a_code_that_breaks_its_kind_is_a_validation_error(code: str, kind: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        product(barcodes=[{"code": "CASE-1"}, {"code": code, "kind": kind}])
    assert raised.value.field == "barcodes.1.code"


def test_a_barcode_without_kind_or_pack_quantity_is_other_and_one_unit() -> None:
    soap = product(barcodes=[{"code": "4006381333932"}])  # no kind: no check digit to verify
    assert soap.barcodes == [{"code": "4006381333932", "kind": "other", "pack_quantity": 1}]


def test_a_pack_quantity_is_positive_within_the_products_decimals() -> None:
    tenths = product(decimals=1, barcodes=[{"code": "C", "pack_quantity": "2.5"}])
    assert tenths.barcodes[0]["pack_quantity"] == Decimal("2.5")
    for pack in ("0.5", "0", "-12", "twelve", 1.5):
        with pytest.raises(ValidationFailed) as raised:
            product(barcodes=[{"code": "C", "pack_quantity": pack}])
        assert raised.value.field == "barcodes.0.pack_quantity"
    with pytest.raises(InvalidQuantity):
        product(barcodes=[{"code": "C", "pack_quantity": "0.5"}])


@pytest.mark.parametrize(
    ("barcodes", "field"),
    [
        ([{"code": "A"}, {"code": "B"}, {"code": "A"}], "barcodes.2.code"),
        ([{"code": ""}], "barcodes.0.code"),
        ([{"code": "X" * 65}], "barcodes.0.code"),
        ([{"code": "A\nB"}], "barcodes.0.code"),
        ([{"code": "A", "kind": "morse"}], "barcodes.0.kind"),
        ([{"code": "A", "colour": "red"}], "barcodes.0.colour"),
        (["A"], "barcodes.0"),
        ("A", "barcodes"),
    ],
)
def test_malformed_barcodes_are_validation_errors(barcodes: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        product(barcodes=barcodes)
    assert raised.value.field == field


def test_codes_are_case_sensitive() -> None:
    soap = product(barcodes=[{"code": "case-a"}, {"code": "CASE-A"}])
    assert [b["code"] for b in soap.barcodes] == ["case-a", "CASE-A"]


def test_fewer_decimals_are_refused_while_a_pack_quantity_needs_them() -> None:
    soap = product(decimals=2, barcodes=[{"code": "C", "pack_quantity": "0.25"}])
    with pytest.raises(ValidationFailed) as raised:
        soap.change(stock_on_hand=False, decimals=1)
    assert raised.value.field == "barcodes.0.pack_quantity"


# -- events from before barcodes ---------------------------------------------------------------


def test_a_product_registered_before_barcodes_loads_and_projects_with_none(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    event = Product.register(app.tenant_id, "OLD", "Old soap").collect_events()[0]
    stored = app.mapper.to_stored_event(event)
    state = orjson.loads(stored.state)
    del state["barcodes"]  # what the event held before barcodes existed
    app.recorder.insert_events(
        [StoredEvent(stored.originator_id, 1, stored.topic, orjson.dumps(state))]
    )
    assert b"barcodes" not in list(store.iter_events(app.tenant_id))[-1].payload
    loaded = app.product("OLD")
    assert (loaded.name, list(loaded.barcodes)) == ("Old soap", [])
    app.change_product("OLD", M, barcodes=[{"code": "OLD-CASE", "pack_quantity": 6}])
    Runner(store, engine, [Catalog()]).run_tenant(app.tenant_id)
    with engine.connect() as conn:
        found = products(conn, app.tenant_id, sku="OLD")[0]
        case = product_by_barcode(conn, app.tenant_id, "OLD-CASE")
    assert [(b.code, b.pack_quantity) for b in found.barcodes] == [("OLD-CASE", 6)]
    assert case is not None
    assert case[0] == "OLD"


def test_a_snapshot_taken_before_barcodes_loads_without_them_and_changes_only_what_is_asked() -> (
    None
):
    soap = product()
    soap.collect_events()
    snapshot = Snapshot.take(soap)
    state = dict(snapshot.state)
    del state["barcodes"]
    old = Snapshot(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        timestamp=snapshot.timestamp,
        topic=snapshot.topic,
        state=state,
    )
    loaded = old.mutate(None)
    assert isinstance(loaded, Product)
    assert list(loaded.barcodes) == []
    loaded.change(stock_on_hand=False, name="Soap bar")
    assert [e.changes for e in loaded.collect_events()] == [{"name": "Soap bar"}]  # type: ignore[attr-defined]


# -- one product per code ------------------------------------------------------------------------


def test_two_products_cannot_share_a_barcode(app: LedgerApplication) -> None:
    app.register_product("SOAP", "Soap", M, barcodes=[{"code": EAN13, "kind": "ean13"}])
    before = head(app)
    with pytest.raises(BarcodeTaken) as raised:
        app.register_product("NUT", "Nut", M, barcodes=[{"code": "N-1"}, {"code": EAN13}])
    assert (raised.value.code, raised.value.holder) == (EAN13, "SOAP")
    assert EAN13 in str(raised.value)
    with pytest.raises(AlreadyExists):
        app.change_product("BOLT", M, barcodes=[{"code": EAN13}])
    assert head(app) == before  # nothing of either command was recorded


def test_a_released_code_can_be_taken_by_another_product_and_not_back(
    app: LedgerApplication,
) -> None:
    app.register_product("SOAP", "Soap", M, barcodes=[{"code": "BOX"}, {"code": "CASE"}])
    app.change_product("SOAP", M, barcodes=[{"code": "CASE", "pack_quantity": 12}])
    assert claim_of(app, "BOX").sku is None
    app.change_product("BOLT", M, barcodes=[{"code": "BOX"}])
    assert (claim_of(app, "BOX").sku, claim_of(app, "CASE").sku) == ("BOLT", "SOAP")
    with pytest.raises(BarcodeTaken):
        app.change_product("SOAP", M, barcodes=[{"code": "CASE"}, {"code": "BOX"}])
    app.change_product("SOAP", M, barcodes=None)  # null clears them all
    app.change_product("MILK", M, barcodes=[{"code": "CASE"}])
    assert claim_of(app, "CASE").sku == "MILK"
    assert app.product("SOAP").barcodes == []


def test_changing_a_pack_quantity_keeps_the_claim(app: LedgerApplication) -> None:
    app.register_product("SOAP", "Soap", M, barcodes=[{"code": "CASE", "pack_quantity": 6}])
    version = claim_of(app, "CASE").version
    app.change_product("SOAP", M, barcodes=[{"code": "CASE", "pack_quantity": 12}])
    assert claim_of(app, "CASE").version == version
    assert app.product("SOAP").barcodes[0]["pack_quantity"] == 12


def test_a_barcode_may_be_its_own_sku_but_not_another_products(app: LedgerApplication) -> None:
    app.register_product(EAN13, "Pencil", M, barcodes=[{"code": EAN13, "kind": "ean13"}])
    with pytest.raises(BarcodeTaken) as raised:
        app.change_product("BOLT", M, barcodes=[{"code": "MILK"}])
    assert raised.value.holder == "MILK"
    app.register_product("SOAP", "Soap", M, barcodes=[{"code": "SOAP-CASE"}])
    with pytest.raises(BarcodeTaken) as taken:
        app.register_product("SOAP-CASE", "Soap case", M)
    assert (taken.value.code, taken.value.holder) == ("SOAP-CASE", "SOAP")


def test_a_retried_registration_with_barcodes_appends_nothing_more(
    app: LedgerApplication,
) -> None:
    keyed = EventMetadata(idempotency_key="k-1")
    first = app.register_product("SOAP", "Soap", keyed, barcodes=[{"code": "CASE"}])
    again = app.register_product("SOAP", "Soap", keyed, barcodes=[{"code": "CASE"}])
    assert (again.replayed, again.position, head(app)) == (True, first.position, first.position)


@pytest.mark.postgres
def test_racing_products_for_one_code_leave_exactly_one_holder(race_ledger: Ledger) -> None:
    app = new_tenant(race_ledger, "barcode")

    def register(i: int) -> int:
        return app.register_product(f"P-{i}", "Racer", M, barcodes=[{"code": "RACE"}]).position

    outcomes = race(THREADS, register)
    won = [o for o in outcomes if isinstance(o, int)]
    lost = [o for o in outcomes if not isinstance(o, int)]
    assert len(won) == 1
    assert all(isinstance(o, BarcodeTaken) for o in lost), lost
    holder = claim_of(app, "RACE").sku
    assert holder is not None
    assert [b["code"] for b in app.product(holder).barcodes] == ["RACE"]
    events = chain_of(race_ledger.store, app.tenant_id)
    claims = [e for e in events if "BarcodeClaim" in e.topic]
    assert len(claims) == 1


@pytest.mark.postgres
def test_racing_changes_for_a_released_code_leave_exactly_one_holder(race_ledger: Ledger) -> None:
    app = new_tenant(race_ledger, "reclaim")
    app.register_product("OLD", "Old", M, barcodes=[{"code": "RACE"}])
    app.change_product("OLD", M, barcodes=[])
    for i in range(THREADS):
        app.register_product(f"P-{i}", "Racer", M)

    def claim(i: int) -> int:
        return app.change_product(f"P-{i}", M, barcodes=[{"code": "RACE"}]).position

    outcomes = race(THREADS, claim)
    assert sum(isinstance(o, int) for o in outcomes) == 1
    assert all(isinstance(o, (int, BarcodeTaken)) for o in outcomes), outcomes
    holders = [i for i in range(THREADS) if app.product(f"P-{i}").barcodes]
    assert len(holders) == 1
    assert claim_of(app, "RACE").sku == f"P-{holders[0]}"
    chain_of(race_ledger.store, app.tenant_id)


# -- the tenant's default removal policy -------------------------------------------------------


@pytest.mark.parametrize(
    ("default", "expiry_tracked", "policy"),
    [("fefo", True, "fefo"), ("fefo", False, "fifo"), ("fifo", True, "fifo")],
)
def test_a_product_without_a_policy_takes_the_tenants_default_where_it_can(
    app: LedgerApplication,
    monkeypatch: pytest.MonkeyPatch,
    default: str,
    expiry_tracked: bool,
    policy: str,
) -> None:
    monkeypatch.setattr(app, "tenant", lambda: SimpleNamespace(default_removal_policy=default))
    app.register_product("SOAP", "Soap", M, expiry_tracked=expiry_tracked)
    app.register_product("NAIL", "Nail", M, expiry_tracked=expiry_tracked, removal_policy="fifo")
    assert (app.product("SOAP").removal_policy, app.product("NAIL").removal_policy) == (
        policy,
        "fifo",
    )


def test_a_tenant_without_the_setting_gives_fifo(app: LedgerApplication) -> None:
    app.register_product("SOAP", "Soap", M, expiry_tracked=True)
    assert app.product("SOAP").removal_policy == "fifo"


# -- the read model ----------------------------------------------------------------------------


def barcode_rows(engine: Engine, tenant_id: UUID) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(
            select(BARCODES).where(BARCODES.c.tenant_id == tenant_id).order_by(BARCODES.c.code)
        )
        return [tuple(row) for row in found]


def history(app: LedgerApplication) -> None:
    app.register_product("SOAP", "Soap", M, barcodes=[{"code": "BOX"}, {"code": "CASE"}])
    app.change_product("BOLT", M, decimals=3, barcodes=[{"code": "BAG", "pack_quantity": "0.5"}])
    app.change_product("SOAP", M, barcodes=[{"code": "CASE", "pack_quantity": 12}])
    app.change_product("MILK", M, barcodes=[{"code": "BOX", "kind": "qr"}])
    app.change_product("SOAP", M, name="Soap bar")
    app.change_product("BOLT", M, barcodes=[])


def test_the_read_model_holds_each_code_with_its_product_and_pack_quantity(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    history(app)
    Runner(store, engine, [Catalog()], batch_size=3).run_tenant(app.tenant_id)
    rows = barcode_rows(engine, app.tenant_id)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("BOX", "MILK", "qr", Decimal(1)),
        ("CASE", "SOAP", "other", Decimal(12)),
    ]
    with engine.connect() as conn:
        found = {p.sku: p for p in products(conn, app.tenant_id)}
        case = product_by_barcode(conn, app.tenant_id, "CASE")
        assert product_by_barcode(conn, uuid4(), "CASE") is None
        assert product_by_barcode(conn, app.tenant_id, "BAG") is None
    assert case is not None
    assert (case[0], case[1].pack_quantity) == ("SOAP", Decimal(12))
    assert [(b.code, b.pack_quantity) for b in found["SOAP"].barcodes] == [("CASE", 12)]
    assert [(b.code, b.kind) for b in found["MILK"].barcodes] == [("BOX", "qr")]
    assert found["BOLT"].barcodes == ()


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_any_batching_gives_the_rows_of_one_event_at_a_time(
    store: LedgerStore, engine: Engine, app: LedgerApplication, batch_size: int
) -> None:
    history(app)
    Runner(store, engine, [Catalog()], batch_size=1).run_tenant(app.tenant_id)
    one_by_one = barcode_rows(engine, app.tenant_id)
    with engine.begin() as conn:  # the tenant's catalog from scratch
        for table in (BARCODES, PRODUCTS, WAREHOUSES, BINS):
            conn.execute(delete(table).where(table.c.tenant_id == app.tenant_id))
        conn.execute(
            delete(TRACKING).where(
                TRACKING.c.tenant_id == app.tenant_id, TRACKING.c.projection == "catalog"
            )
        )
    Runner(store, engine, [Catalog()], batch_size=batch_size).run_tenant(app.tenant_id)
    assert barcode_rows(engine, app.tenant_id) == one_by_one


def test_a_rebuild_gives_the_same_barcode_rows(
    store: LedgerStore, engine: Engine, app: LedgerApplication
) -> None:
    history(app)
    Runner(store, engine, [Catalog()], batch_size=2).run_tenant(app.tenant_id)
    before = barcode_rows(engine, app.tenant_id)
    with engine.begin() as conn:  # a bad deploy spoils the table
        conn.execute(delete(BARCODES).where(BARCODES.c.tenant_id == app.tenant_id))
    with Rebuild(store, engine, [Catalog()], batch_size=4) as rebuild:
        assert rebuild.run([app.tenant_id]).switched
    assert barcode_rows(engine, app.tenant_id) == before
    assert len(before) == 2


@pytest.mark.postgres
def test_a_plain_role_sees_only_its_tenants_barcodes(pg_url: str) -> None:
    engine = create_engine(Settings(database_url=pg_url).sqlalchemy_url, poolclass=pool.NullPool)
    role = f"reader_{uuid4().hex[:8]}"
    mine, theirs = uuid4(), uuid4()
    rows = [
        {"tenant_id": t, "code": "CASE", "sku": "S", "kind": "other", "pack_quantity": 1}
        for t in (mine, theirs)
    ]
    try:
        with engine.begin() as conn:
            conn.execute(insert(BARCODES), [r | {"last_position": 1} for r in rows])
            conn.execute(text(f"CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS"))
            conn.execute(text(f"GRANT SELECT ON rm_product_barcodes TO {role}"))
        with engine.begin() as conn:
            tenant_scope(conn, mine, role=role)
            seen = conn.execute(select(BARCODES.c.tenant_id)).scalars().all()
            assert product_by_barcode(conn, theirs, "CASE") is None
        assert seen == [mine]
    finally:
        with engine.begin() as conn:
            conn.execute(delete(BARCODES).where(BARCODES.c.tenant_id.in_([mine, theirs])))
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        engine.dispose()
