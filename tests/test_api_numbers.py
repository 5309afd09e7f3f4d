"""JSON numbers in request bodies are taken by their exact digits, never rounded to a float."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.exact_numbers import exact
from tests.test_api_stock import Shop, level, shop  # noqa: F401  (the fixture)


def test_a_fraction_or_an_exponent_becomes_a_string_of_its_digits() -> None:
    body = b'{"quantity": 12345678901234567.25, "lines": [{"line": 1, "q": 1e2}], "ok": true}'
    assert orjson.loads(exact(body) or b"") == {
        "quantity": "12345678901234567.25",
        "lines": [{"line": 1, "q": "1e2"}],
        "ok": True,
    }


@pytest.mark.parametrize("body", [b'{"line": 3, "sku": "A"}', b"not json", b"[1, 2", b""])
def test_a_body_without_such_numbers_or_not_json_is_left_alone(body: bytes) -> None:
    assert exact(body) is None


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6))
def test_every_decimal_literal_keeps_its_value(value: Decimal) -> None:
    literal = format(value, "f")
    if "." not in literal:
        literal += ".0"
    rewritten = exact(b'{"unit_cost": ' + literal.encode() + b"}")
    assert rewritten is not None
    assert Decimal(orjson.loads(rewritten)["unit_cost"]) == value


def test_a_receipt_keeps_a_unit_cost_beyond_float_precision(shop: Shop) -> None:  # noqa: F811
    body = (
        b'{"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "quantity": 2,'
        b' "unit_cost": 12345678901234567.25}'
    )
    headers = shop.headers() | {"Content-Type": "application/json"}
    response = shop.client.post("/v1/stock/receipts", content=body, headers=headers)
    assert response.status_code == 201, response.text
    position = response.json()["position"]
    assert level(shop, "SCREW", "W1", position)["value"] == Decimal("24691357802469134.5")


def test_a_quantity_number_with_too_many_decimals_is_refused_not_rounded(
    shop: Shop,  # noqa: F811
) -> None:
    body = b'{"sku": "SCREW", "warehouse": "W1", "bin": "A-01", "quantity": 1.0000000000000000001,'
    body += b' "unit_cost": 1}'
    headers = shop.headers() | {"Content-Type": "application/json"}
    before = shop.head()
    response = shop.client.post("/v1/stock/receipts", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert "quantity" in response.text
    assert shop.head() == before
