"""Many new rows into a read-model table: COPY on PostgreSQL, one executemany elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Inserts `rows` (values in the order of `columns`) in the connection's transaction.

    On PostgreSQL the rows are streamed with binary COPY (half the client's work of text) into
    the table the connection's schema translation names (a rebuild's new version, say).
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    preparer = conn.dialect.identifier_preparer
    name = preparer.quote(table.name)
    target = f"{preparer.quote_schema(schema)}.{name}" if schema else name
    names = ", ".join(preparer.quote(c) for c in columns)
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    found = dict(
        cursor.execute(
            "SELECT attname, atttypid::int FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (target,),
        ).fetchall()
    )
    with cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([found[c] for c in columns])
        for row in rows:
            copy.write_row(row)
