"""An export line is exactly orjson's dump of the line's fields, whatever the stored header."""

from __future__ import annotations

from binascii import b2a_base64
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ledger.export_lines import FIELDS, line

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)


def expected(position: int, payload: bytes, prev: str | None, current: str) -> bytes:
    """The line as a plain dict dumped by orjson."""
    header = orjson.loads(payload[: payload.index(b"\n")])
    fields: dict[str, Any] = {"position": position}
    fields |= {k: header.get(k) if isinstance(header, dict) else None for k in FIELDS}
    fields |= {
        "payload": b2a_base64(payload, newline=False).decode("ascii"),
        "prev_hash": prev,
        "hash": current,
    }
    return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)


@given(
    position=st.integers(1, 2**62),
    values=st.fixed_dictionaries(dict.fromkeys(("v", "tenant_id", *FIELDS), json_values)),
    order=st.permutations(("v", "tenant_id", *FIELDS)),
    extra=st.dictionaries(st.sampled_from(["x", "tenant", "zz"]), json_values, max_size=2),
    dropped=st.sets(st.sampled_from(FIELDS), max_size=3),
    body=st.binary(max_size=300),
    prev=st.none() | hashes,
    current=hashes,
)
def test_a_line_equals_the_dump_of_its_fields(
    position: int,
    values: dict[str, Any],
    order: list[str],
    extra: dict[str, Any],
    dropped: set[str],
    body: bytes,
    prev: str | None,
    current: str,
) -> None:
    for header in (
        values,  # the store's own order
        {k: values[k] for k in order},
        {k: v for k, v in values.items() if k not in dropped} | extra,
    ):
        payload = orjson.dumps(header) + b"\n" + body
        assert line(position, payload, prev, current) == expected(position, payload, prev, current)


@given(payload=st.binary(max_size=200), current=hashes)
def test_a_payload_without_a_json_header_still_makes_aline(payload: bytes, current: str) -> None:
    made = orjson.loads(line(7, payload, None, current))
    assert made["position"] == 7
    assert made["payload"] == b2a_base64(payload, newline=False).decode("ascii")
    assert made["hash"] == current
