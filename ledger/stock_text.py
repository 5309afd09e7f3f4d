"""Stock as text: exact decimals without exponents, UTC times, tables and JSON lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from projections.stock_fold import LevelState, LotState

LEVEL_COLUMNS = ("sku", "warehouse", "on_hand", "reserved", "value")
LOT_COLUMNS = (
    *("sku", "warehouse", "lot", "bin", "on_hand", "reserved", "value"),
    *("expires_on", "received_at", "status"),
)
_NUMERIC = frozenset({"on_hand", "reserved", "value"})


def text(value: object) -> str:
    """A value as an auditor reads it: `12.5` not `12.500` or `1.25E+1`, times in UTC."""
    if isinstance(value, Decimal):
        if value == 0:
            return "0"
        digits = format(value, "f")
        return digits.rstrip("0").rstrip(".") if "." in digits else digits
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if value is None:
        return "-"
    return str(value)


def json_lines(rows: Sequence[LevelState | LotState]) -> str:
    """One JSON object per row: decimals as strings, dates and times ISO 8601, null when none."""
    return "".join(
        orjson.dumps(
            {f.name: _json(getattr(row, f.name)) for f in fields(row)},
            option=orjson.OPT_APPEND_NEWLINE,
        ).decode()
        for row in rows
    )


def _json(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return text(value)


def table(rows: Sequence[LevelState | LotState], columns: Sequence[str]) -> str:
    """Aligned columns under upper-case headings; numbers right-aligned."""
    cells = [[text(getattr(row, name)) for name in columns] for row in rows]
    heads = [name.upper() for name in columns]
    widths = [max(len(line[i]) for line in [heads, *cells]) for i in range(len(columns))]
    lines = []
    for line in [heads, *cells]:
        padded = [
            cell.rjust(width) if name in _NUMERIC else cell.ljust(width)
            for name, cell, width in zip(columns, line, widths, strict=True)
        ]
        lines.append("  ".join(padded).rstrip() + "\n")
    return "".join(lines)
