"""Quantities and money: exact decimals, never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from domain.errors import InvalidQuantity, ValidationFailed

ZERO = Decimal(0)
MAX_DECIMALS = 6
MONEY_DECIMALS = 6


def to_decimal(value: Decimal | int | str, field: str = "quantity") -> Decimal:
    """A finite decimal from a number or a decimal string (floats are refused)."""
    if isinstance(value, (bool, float)):
        raise ValidationFailed(field, "must be a decimal string or an integer, not a float")
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationFailed(field, f"{value!r} is not a number") from None
    if not result.is_finite():
        raise ValidationFailed(field, f"{value!r} is not a finite number")
    return result


def decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def quantity(value: Decimal | int | str, decimals: int, field: str = "quantity") -> Decimal:
    """A positive quantity with at most `decimals` decimal places."""
    result = to_decimal(value, field)
    if result <= ZERO:
        raise InvalidQuantity(field, f"must be positive, not {result}")
    if decimals_of(result) > decimals:
        raise InvalidQuantity(field, f"{result} has more than {decimals} decimals")
    return result


def signed_quantity(value: Decimal | int | str, decimals: int, field: str) -> Decimal:
    """A non-zero quantity (a delta) with at most `decimals` decimal places."""
    result = to_decimal(value, field)
    if result == ZERO:
        raise InvalidQuantity(field, "must not be zero")
    quantity(abs(result), decimals, field)
    return result


def counted_quantity(value: Decimal | int | str, decimals: int, field: str) -> Decimal:
    """A quantity that may be zero (a count), with at most `decimals` decimal places."""
    result = to_decimal(value, field)
    if result < ZERO:
        raise InvalidQuantity(field, f"must not be negative, not {result}")
    if result and decimals_of(result) > decimals:
        raise InvalidQuantity(field, f"{result} has more than {decimals} decimals")
    return result


def money(value: Decimal | int | str, field: str = "unit_cost") -> Decimal:
    """A non-negative amount with at most 6 decimals."""
    result = to_decimal(value, field)
    if result < ZERO:
        raise ValidationFailed(field, f"must not be negative, not {result}")
    if decimals_of(result) > MONEY_DECIMALS:
        raise ValidationFailed(field, f"{result} has more than {MONEY_DECIMALS} decimals")
    return result


def normalised(value: Decimal | int | str | None) -> Decimal | int | str | None:
    """A number by its value, so 2.5, "2.50" and Decimal("2.5") are the same request."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return Decimal(value).normalize()
    except (ArithmeticError, ValueError, TypeError):
        return value


def decimal_text(value: Decimal) -> str:
    """A decimal as the contract writes it: plain digits, no exponent, no trailing zeros (a
    PostgreSQL NUMERIC arrives padded to its column's scale)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
