"""Tenant isolation over every /v1 route: tenant B's credential, aimed at tenant A's own
resources, gets `not-found` or `forbidden` for paths, `unknown-reference` for body references,
lists without A's rows, and leaves A unchanged. A route without a case here fails the suite."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

import pytest
from cryptography.fernet import Fernet
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from ledger.settings import Settings
from tests.test_api_foundation import SECRET, bearer, head, seed, token

Expect = Literal["absent", "unknown", "list", "own"]
PROBLEM = "application/problem+json"
#: A's time zone setting, which no seeded tenant has.
A_TIMEZONE = "Pacific/Chatham"


@dataclass(frozen=True)
class Attempt:
    """One request of tenant B and what B must get: `absent` (404 `not-found` or 403
    `forbidden`), `unknown` (422 `unknown-reference`), `list` (200 without A's rows, the same
    as for an identifier nobody has), `own` (B's own new resource)."""

    method: str
    url: str
    expect: Expect
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    """Two seeded tenants; A also holds resources whose identifiers only A has."""

    url: str
    client: TestClient
    a: UUID
    b: UUID
    marker: str
    purchase_order: str = ""
    sales_order: str = ""
    key_id: str = ""
    key: str = ""
    b_sku: str = ""
    b_warehouse: str = ""
    b_bin: str = ""
    b_other_warehouse: str = ""
    webhook: str = ""
    a_head: int = 0

    @property
    def sku(self) -> str:
        return f"{self.marker}-sku"

    @property
    def warehouse(self) -> str:
        return f"{self.marker}-wh"

    @property
    def bin(self) -> str:
        return f"{self.marker}-bin"

    @property
    def lot(self) -> str:
        return f"{self.marker}-lot"

    @property
    def barcode(self) -> str:
        return f"{self.marker}-ean"

    @property
    def reference(self) -> str:
        return f"{self.marker}-ref"

    @property
    def own(self) -> str:
        """An identifier of B's own new resources (no A secret in it)."""
        return f"own-{self.marker.removeprefix('isoa')}"

    def headers(self, tenant: UUID, role: str = "admin") -> dict[str, str]:
        return bearer(token(tenant, [role]))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that only A's rows contain."""
        return (
            self.marker,
            self.purchase_order,
            self.sales_order,
            self.key_id,
            self.webhook,
            A_TIMEZONE,
        )


def _post(world: World, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = world.client.post(path, json=body, headers=world.headers(world.a))
    assert response.status_code in (200, 201), response.text
    found: dict[str, Any] = response.json()
    return found


def _first(world: World, tenant: UUID, path: str, key: str) -> str:
    """The first item's `key`, read once the read model has every event of the tenant."""
    params = {"limit": 1, "min_position": head(world.url, tenant)}
    response = world.client.get(path, params=params, headers=world.headers(tenant))
    assert response.status_code == 200, response.text
    return str(response.json()["items"][0][key])


def _a_resources(world: World) -> None:
    """A's product (with a barcode), warehouse, bin, received lot, submitted purchase order,
    allocated sales order and API key, every name carrying A's marker."""
    _post(
        world,
        "/v1/products",
        {
            "sku": world.sku,
            "name": f"{world.marker} product",
            "lot_tracked": True,
            "expiry_tracked": True,
            "removal_policy": "fefo",
            "expiry_alert_days": 30,
            "reorder_point": 1000,
            "barcodes": [{"code": world.barcode}],
        },
    )
    _post(world, "/v1/warehouses", {"code": world.warehouse, "name": "A", "timezone": "UTC"})
    _post(world, f"/v1/warehouses/{world.warehouse}/bins", {"code": world.bin})
    receipt: dict[str, Any] = {"sku": world.sku, "warehouse": world.warehouse, "bin": world.bin}
    receipt |= {"quantity": 10, "unit_cost": "2.5", "lot": world.lot}
    receipt |= {"expires_on": str(date.today() + timedelta(days=10))}
    _post(world, "/v1/stock/receipts", receipt | {"reference": world.reference})
    order = {"warehouse": world.warehouse, "reference": world.reference}
    lines = [{"sku": world.sku, "quantity": 5, "unit_cost": 2}]
    created = _post(
        world,
        "/v1/purchase-orders",
        order
        | {"supplier": f"{world.marker} supplier", "external_id": world.marker}
        | {"lines": lines},
    )
    world.purchase_order = str(created["id"])
    _post(world, f"/v1/purchase-orders/{world.purchase_order}/submit", {})
    lines = [{"sku": world.sku, "quantity": 2}]
    created = _post(
        world,
        "/v1/sales-orders",
        order
        | {"customer": f"{world.marker} customer", "external_id": world.marker}
        | {"lines": lines},
    )
    world.sales_order = str(created["id"])
    _post(world, f"/v1/sales-orders/{world.sales_order}/allocate", {})
    issued = _post(world, "/v1/api-keys", {"name": f"{world.marker} key", "roles": ["auditor"]})
    world.key_id, world.key = str(issued["id"]), str(issued["key"])
    _a_administration(world)


def _a_administration(world: World) -> None:
    """A's own settings, a role named with A's marker, and a webhook."""
    headers = world.headers(world.a)
    settings = world.client.get("/v1/settings", headers=headers).json()
    settings = {k: v for k, v in settings.items() if k != "position"}
    changed = world.client.put(
        "/v1/settings", json=settings | {"timezone": A_TIMEZONE}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    roles = world.client.get("/v1/roles", headers=headers).json()["roles"]
    roles[world.marker] = ["stock:read"]
    changed = world.client.put("/v1/roles", json={"roles": roles}, headers=headers)
    assert changed.status_code == 200, changed.text
    hook = {"url": f"http://127.0.0.1:9/{world.marker}", "events": ["*"]}
    world.webhook = str(_post(world, "/v1/webhooks", hook | {"secret": "s" * 32})["id"])


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest,
    sqlite_template: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("isolation") / "ledger.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    run = uuid4().hex[:8]  # the PostgreSQL database is shared by the session's tests
    a, b = seed(url, f"iso-a-{run}", 1), seed(url, f"iso-b-{run}", 2)
    settings = Settings(
        database_url=url,
        jwt_secret=SECRET,  # type: ignore[arg-type]
        min_position_timeout=30,  # the read models catch up from scratch on a busy machine
        rate_limit_per_second=1_000_000,
        webhook_allow_private=True,
        secret_key=Fernet.generate_key().decode(),  # type: ignore[arg-type]
    )
    marker = f"isoa{run}"
    with TestClient(create_app(settings)) as client:
        world = World(url=url, client=client, a=a, b=b, marker=marker)
        _a_resources(world)
        world.b_sku = _first(world, b, "/v1/products", "sku")
        warehouses = client.get("/v1/warehouses", headers=world.headers(b)).json()["items"]
        world.b_warehouse, world.b_other_warehouse = (w["code"] for w in warehouses[:2])
        world.b_bin = _first(world, b, f"/v1/warehouses/{world.b_warehouse}/bins", "code")
        world.a_head = head(url, a)
        wait = {"min_position": world.a_head}
        assert client.get("/v1/lots", params=wait, headers=world.headers(a)).status_code == 200
        assert client.get("/v1/kpis", params=_period() | wait, headers=world.headers(a))
        yield world


def _period() -> dict[str, str]:
    today = date.today()
    return {"from": str(today - timedelta(days=30)), "to": str(today + timedelta(days=1))}


# -- the table: each /v1 route and how B tries A's resources through it ----------------------

Cases = Callable[[World], list[Attempt]]


def _absent(method: str, path: str, body: Any = None) -> Cases:
    return lambda w: [Attempt(method, path.format(w=w), "absent", json=body)]


def _lists(path: str, *filters: Callable[[World], dict[str, Any]]) -> Cases:
    """The unfiltered list and the list filtered by each of A's identifiers."""
    return lambda w: (
        [Attempt("GET", path, "list", params={"limit": 1000})]
        + [Attempt("GET", path, "list", params={"limit": 1000} | f(w)) for f in filters]
    )


def _movement(path: str, fields: Callable[[World, str, str, str], dict[str, Any]]) -> Cases:
    """A stock command naming A's SKU in B's warehouse, and B's SKU in A's warehouse and bin."""
    return lambda w: [
        Attempt("POST", path, "unknown", json=fields(w, w.sku, w.b_warehouse, w.b_bin)),
        Attempt("POST", path, "unknown", json=fields(w, w.b_sku, w.warehouse, w.bin)),
    ]


def _order(path: str, party: str, unit_cost: bool) -> Cases:
    def line(sku: str) -> dict[str, Any]:
        return {"sku": sku, "quantity": 1} | ({"unit_cost": 1} if unit_cost else {})

    return lambda w: [
        Attempt("POST", path, "unknown", json={party: "B", "warehouse": wh, "lines": [line(s)]})
        for s, wh in ((w.sku, w.b_warehouse), (w.b_sku, w.warehouse))
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat()


QTY: dict[str, Any] = {"quantity": 1}
TABLE: dict[tuple[str, str], Cases] = {
    ("GET", "/v1/stock-levels"): _lists(
        "/v1/stock-levels", lambda w: {"sku": w.sku}, lambda w: {"warehouse": w.warehouse}
    ),
    ("GET", "/v1/lots"): _lists(
        "/v1/lots",
        lambda w: {"lot": w.lot},
        lambda w: {"sku": w.sku},
        lambda w: {"warehouse": w.warehouse, "bin": w.bin},
    ),
    ("GET", "/v1/movements"): _lists(
        "/v1/movements", lambda w: {"lot": w.lot}, lambda w: {"reference": w.reference}
    ),
    ("GET", "/v1/stock-levels/as-of"): lambda w: [
        Attempt("GET", "/v1/stock-levels/as-of", "list", params={"at": _now()} | f)
        for f in ({}, {"sku": w.sku}, {"warehouse": w.warehouse})
    ],
    ("GET", "/v1/lots/as-of"): lambda w: [
        Attempt("GET", "/v1/lots/as-of", "list", params={"at": _now()} | f)
        for f in ({}, {"sku": w.sku}, {"warehouse": w.warehouse})
    ],
    ("GET", "/v1/kpis"): lambda w: [
        Attempt("GET", "/v1/kpis", "list", params=_period() | f)
        for f in ({}, {"warehouse": w.warehouse})
    ],
    ("GET", "/v1/alerts"): _lists("/v1/alerts"),
    ("GET", "/v1/alerts/records"): _lists(
        "/v1/alerts/records", lambda w: {"state": "open"}, lambda w: {"kind": "low_stock"}
    ),
    ("GET", "/v1/audit/events"): _lists("/v1/audit/events", lambda w: {"after": 0}),
    ("GET", "/v1/audit/verify"): lambda w: [Attempt("GET", "/v1/audit/verify", "list")],
    ("POST", "/v1/api-keys"): lambda w: [
        Attempt("POST", "/v1/api-keys", "own", json={"name": "B's own", "roles": ["auditor"]})
    ],
    ("GET", "/v1/api-keys"): _lists("/v1/api-keys"),
    ("POST", "/v1/api-keys/{key_id}/revoke"): _absent("POST", "/v1/api-keys/{w.key_id}/revoke"),
    ("POST", "/v1/products"): lambda w: [
        Attempt("POST", "/v1/products", "own", json={"sku": w.own, "name": "B"})
    ],
    ("GET", "/v1/products"): _lists("/v1/products"),
    ("GET", "/v1/products/{sku:path}"): _absent("GET", "/v1/products/{w.sku}"),
    ("PATCH", "/v1/products/{sku:path}"): _absent(
        "PATCH", "/v1/products/{w.sku}", {"name": "taken over"}
    ),
    ("POST", "/v1/warehouses"): lambda w: [
        Attempt(
            "POST",
            "/v1/warehouses",
            "own",
            json={"code": w.own, "name": "B", "timezone": "UTC"},
        )
    ],
    ("GET", "/v1/warehouses"): _lists("/v1/warehouses"),
    ("POST", "/v1/warehouses/{code:path}/bins"): _absent(
        "POST", "/v1/warehouses/{w.warehouse}/bins", {"code": "B-bin"}
    ),
    ("GET", "/v1/warehouses/{code:path}/bins"): _absent("GET", "/v1/warehouses/{w.warehouse}/bins"),
    ("GET", "/v1/lookup"): lambda w: [
        Attempt("GET", "/v1/lookup", "absent", params={"code": code})
        for code in (w.sku, w.bin, w.lot, w.barcode)
    ],
    ("POST", "/v1/stock/receipts"): _movement(
        "/v1/stock/receipts",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "bin": b, "unit_cost": 1} | QTY,
    ),
    ("POST", "/v1/stock/issues"): _movement(
        "/v1/stock/issues",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "bin": b, "reason": "loss"} | QTY,
    ),
    ("POST", "/v1/stock/reservations"): _movement(
        "/v1/stock/reservations",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "reference": w.reference} | QTY,
    ),
    ("POST", "/v1/stock/reservations/release"): _movement(
        "/v1/stock/reservations/release",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "reference": w.reference},
    ),
    ("POST", "/v1/stock/moves"): _movement(
        "/v1/stock/moves",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "from_bin": b, "to_bin": b} | QTY,
    ),
    ("POST", "/v1/stock/transfers"): lambda w: [
        Attempt("POST", "/v1/stock/transfers", "unknown", json=body | QTY)
        for body in (
            {"sku": w.sku, "from_warehouse": w.b_warehouse, "to_warehouse": w.b_other_warehouse},
            {"sku": w.b_sku, "from_warehouse": w.b_warehouse, "to_warehouse": w.warehouse},
            {"sku": w.b_sku, "from_warehouse": w.warehouse, "to_warehouse": w.b_warehouse},
        )
        for body in [body | {"to_bin": w.bin if body["to_warehouse"] == w.warehouse else w.b_bin}]
    ],
    ("POST", "/v1/stock/adjustments"): _movement(
        "/v1/stock/adjustments",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "bin": b, "reason": "loss", "delta": -1},
    ),
    ("POST", "/v1/stock/counts"): _movement(
        "/v1/stock/counts",
        lambda w, s, wh, b: {"sku": s, "warehouse": wh, "bin": b, "counted_quantity": 0},
    ),
    ("POST", "/v1/stock/write-offs"): _movement(
        "/v1/stock/write-offs", lambda w, s, wh, b: {"sku": s, "warehouse": wh, "lot": w.lot}
    ),
    ("POST", "/v1/stock/lots/{lot:path}/status"): lambda w: (
        [
            Attempt("POST", f"/v1/stock/lots/{w.lot}/status", "absent", json=body)
            for body in ({"sku": w.b_sku, "status": "hold"},)
        ]
        + [
            Attempt("POST", f"/v1/stock/lots/{w.lot}/status", "unknown", json=body)
            for body in ({"sku": w.sku, "status": "hold"},)
        ]
    ),
    ("POST", "/v1/purchase-orders"): _order("/v1/purchase-orders", "supplier", True),
    ("POST", "/v1/purchase-orders/{order_id}/submit"): _absent(
        "POST", "/v1/purchase-orders/{w.purchase_order}/submit"
    ),
    ("POST", "/v1/purchase-orders/{order_id}/cancel"): _absent(
        "POST", "/v1/purchase-orders/{w.purchase_order}/cancel"
    ),
    ("POST", "/v1/purchase-orders/{order_id}/close"): _absent(
        "POST", "/v1/purchase-orders/{w.purchase_order}/close"
    ),
    ("POST", "/v1/purchase-orders/{order_id}/receipts"): _absent(
        "POST",
        "/v1/purchase-orders/{w.purchase_order}/receipts",
        {"lines": [{"line": 1, "quantity": 1, "bin": "B-bin"}]},
    ),
    ("GET", "/v1/purchase-orders"): _lists(
        "/v1/purchase-orders",
        lambda w: {"external_id": w.marker},
        lambda w: {"reference": w.reference},
    ),
    ("GET", "/v1/purchase-orders/{order_id}"): _absent(
        "GET", "/v1/purchase-orders/{w.purchase_order}"
    ),
    ("POST", "/v1/sales-orders"): _order("/v1/sales-orders", "customer", False),
    ("POST", "/v1/sales-orders/{order_id}/allocate"): _absent(
        "POST", "/v1/sales-orders/{w.sales_order}/allocate"
    ),
    ("POST", "/v1/sales-orders/{order_id}/ship"): _absent(
        "POST", "/v1/sales-orders/{w.sales_order}/ship"
    ),
    ("POST", "/v1/sales-orders/{order_id}/cancel"): _absent(
        "POST", "/v1/sales-orders/{w.sales_order}/cancel"
    ),
    ("POST", "/v1/sales-orders/{order_id}/returns"): _absent(
        "POST",
        "/v1/sales-orders/{w.sales_order}/returns",
        {"lines": [{"line": 1, "quantity": 1, "disposition": "scrap"}]},
    ),
    ("GET", "/v1/sales-orders"): _lists(
        "/v1/sales-orders",
        lambda w: {"external_id": w.marker},
        lambda w: {"reference": w.reference},
    ),
    ("GET", "/v1/sales-orders/{order_id}"): _absent("GET", "/v1/sales-orders/{w.sales_order}"),
    ("GET", "/v1/lots/{lot:path}/trace"): lambda w: [
        Attempt("GET", f"/v1/lots/{w.lot}/trace", "absent", params={"sku": sku})
        for sku in (w.sku, w.b_sku)
    ],
    ("GET", "/v1/events"): _lists("/v1/events", lambda w: {"after": 0}),
    ("GET", "/v1/event-types"): lambda w: [Attempt("GET", "/v1/event-types", "list")],
    ("GET", "/v1/event-types/{name}"): lambda w: [
        Attempt("GET", f"/v1/event-types/{name}", "list") for name in _event_types(w)[:1]
    ],
    ("GET", "/v1/exports/stock-levels.csv"): lambda w: [
        Attempt("GET", "/v1/exports/stock-levels.csv", "list", params=f)
        for f in ({}, {"sku": w.sku}, {"warehouse": w.warehouse})
    ],
    ("GET", "/v1/exports/movements.csv"): lambda w: [
        Attempt("GET", "/v1/exports/movements.csv", "list", params=f)
        for f in ({}, {"lot": w.lot}, {"reference": w.reference})
    ],
    ("GET", "/v1/exports/events.ndjson"): lambda w: [
        Attempt("GET", "/v1/exports/events.ndjson", "list")
    ],
    ("GET", "/v1/settings"): lambda w: [Attempt("GET", "/v1/settings", "list")],
    ("PUT", "/v1/settings"): lambda w: [
        Attempt("PUT", "/v1/settings", "own", json=_own(w, "/v1/settings"))
    ],
    ("GET", "/v1/roles"): lambda w: [Attempt("GET", "/v1/roles", "list")],
    ("PUT", "/v1/roles"): lambda w: [
        Attempt("PUT", "/v1/roles", "own", json={"roles": _own(w, "/v1/roles")["roles"]})
    ],
    ("POST", "/v1/webhooks"): lambda w: [
        Attempt(
            "POST",
            "/v1/webhooks",
            "own",
            json={"url": f"http://127.0.0.1:9/{w.own}", "events": ["*"], "secret": "b" * 32},
        )
    ],
    ("GET", "/v1/webhooks"): _lists("/v1/webhooks"),
    ("POST", "/v1/webhooks/{webhook_id}/disable"): _absent(
        "POST", "/v1/webhooks/{w.webhook}/disable"
    ),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): _absent(
        "GET", "/v1/webhooks/{w.webhook}/deliveries"
    ),
}


def _event_types(world: World) -> list[str]:
    listed = world.client.get("/v1/event-types", headers=world.headers(world.b))
    return [str(item["type"]) for item in listed.json()["items"]]


def _own(world: World, path: str) -> dict[str, Any]:
    """B's own current answer of `path`, to put back as it is."""
    found: dict[str, Any] = world.client.get(path, headers=world.headers(world.b)).json()
    return {k: v for k, v in found.items() if k != "position"}


def v1_routes() -> set[tuple[str, str]]:
    """Every (method, path template) of the app under /v1."""
    app = create_app(Settings(database_url="sqlite:///unused.db"))
    return {
        (method, str(route.path))
        for route in iter_route_contexts(app.routes)
        if str(route.path).startswith("/v1")
        for method in route.methods or ()
        if method != "HEAD"
    }


# -- checking B's answers -----------------------------------------------------------------------


def _send(world: World, attempt: Attempt, role: str) -> Response:
    headers = world.headers(world.b, role)
    if attempt.expect == "own":  # the same B resource on every run of the table
        headers |= {"Idempotency-Key": f"own-{attempt.url}"}
    response: Response = world.client.request(
        attempt.method, attempt.url, params=attempt.params, json=attempt.json, headers=headers
    )
    return response


def _leaks(world: World, text: str) -> list[str]:
    return [secret for secret in world.secrets if secret in text]


def _without(value: Any, drop: set[str]) -> Any:
    """A JSON answer without its `position` fields and with the identifiers B sent blanked."""
    if isinstance(value, dict):
        return {k: _without(v, drop) for k, v in value.items() if k != "position"}
    if isinstance(value, list):
        return [_without(v, drop) for v in value]
    return "<sent>" if isinstance(value, str) and value in drop else value


def _nobody(world: World, attempt: Attempt) -> Attempt:
    """The same list query with A's identifiers replaced by one nobody has."""
    unused = f"nobody-{world.marker}"

    def swap(value: Any) -> Any:
        return unused if isinstance(value, str) and _leaks(world, value) else value

    return replace(attempt, params={k: swap(v) for k, v in attempt.params.items()})


def _body(response: Response) -> Any:
    json = response.headers["content-type"].split(";")[0] in ("application/json", PROBLEM)
    return response.json() if json else response.text


def _list_problem(world: World, attempt: Attempt, response: Response, role: str) -> str | None:
    if response.status_code != 200:
        return f"{response.status_code} {response.text[:300]}"
    sent = {str(v) for v in attempt.params.values()}
    body = _body(response)
    shown = _without(body, sent)
    if leaked := _leaks(world, repr(shown)):
        return f"shows A's {leaked}"
    twin = _send(world, _nobody(world, attempt), role)
    if _without(_body(twin), sent | {f"nobody-{world.marker}"}) != shown:
        return "differs from the answer for an identifier nobody has"
    return None


def _problem(world: World, attempt: Attempt, response: Response, role: str) -> str | None:
    """Why B's answer breaks isolation, or None."""
    if role != "admin" and response.status_code == 403:
        return None  # the role lacks the permission
    if attempt.expect == "list":
        return _list_problem(world, attempt, response, role)
    if attempt.expect == "own":
        return None if response.status_code in (200, 201) else response.text[:300]
    wanted = {"absent": ((404, 403), "not-found"), "unknown": ((422,), "unknown-reference")}
    statuses, code = wanted[attempt.expect]
    kind = response.json().get("type") if response.headers["content-type"] == PROBLEM else None
    if response.status_code not in statuses or kind not in (f"/errors/{code}", "/errors/forbidden"):
        return f"{response.status_code} {response.text[:300]}"
    return None


def _try_everything(world: World, role: str) -> list[str]:
    """B's attempts on every route of the table, and what went wrong with each."""
    wrong = []
    for (method, path), cases in sorted(TABLE.items()):
        for attempt in cases(world):
            response = _send(world, attempt, role)
            if (why := _problem(world, attempt, response, role)) is not None:
                wrong.append(f"{method} {path} {attempt.url} {attempt.params}: {why}")
    return wrong


# -- the tests -------------------------------------------------------------------------------------


def test_every_v1_route_has_an_isolation_case() -> None:
    routes = v1_routes()
    assert routes - TABLE.keys() == set(), "routes without an isolation case"
    assert TABLE.keys() - routes == set(), "isolation cases of routes the app does not have"


def test_tenant_b_admin_never_reaches_tenant_a_through_any_route(world: World) -> None:
    assert _try_everything(world, "admin") == []


def test_tenant_b_roles_without_the_permission_are_forbidden_or_see_nothing_of_a(
    world: World,
) -> None:
    for role in ("auditor", "sales", "no-such-role"):
        assert _try_everything(world, role) == [], role


def test_tenant_a_is_unchanged_after_tenant_b_tried_every_route(world: World) -> None:
    before = world.client.get(f"/v1/products/{world.sku}", headers=world.headers(world.a)).json()
    _try_everything(world, "admin")
    assert head(world.url, world.a) == world.a_head
    after = world.client.get(f"/v1/products/{world.sku}", headers=world.headers(world.a))
    assert _without(after.json(), set()) == _without(before, set())
    key = world.client.get("/v1/stock-levels", headers=bearer(world.key))
    assert key.status_code == 200, "A's key still works"
    orders = world.client.get(
        f"/v1/sales-orders/{world.sales_order}", headers=world.headers(world.a)
    ).json()
    assert orders["status"] == "allocated"


def test_tenant_a_lists_show_none_of_tenant_bs_own_resources(world: World) -> None:
    _try_everything(world, "admin")
    own = world.own
    for path in ("/v1/products", "/v1/warehouses", "/v1/api-keys", "/v1/webhooks"):
        response = world.client.get(path, params={"limit": 1000}, headers=world.headers(world.a))
        assert response.status_code == 200
        assert own not in response.text, path
        assert "B's own" not in response.text, path
