"""What every warehouse asset reports: row count, column schema, a small masked preview."""

from __future__ import annotations

import dagster as dg
import duckdb

PREVIEW_ROWS = 5
# person_key is a pseudonym, not PII, but a full hash in a preview invites copy-and-join
SHORTENED = {"person_key"}


def table_metadata(
    con: duckdb.DuckDBPyConnection, table: str, descriptions: dict[str, str] | None = None
) -> dict:
    descriptions = descriptions or {}
    schema, name = table.split(".")
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    shown = [c for c, _ in columns if not c.startswith("_")]
    select = ", ".join(
        f'left("{c}", 8) || \'…\' AS "{c}"' if c in SHORTENED else f'"{c}"' for c in shown
    )
    preview = con.execute(f"SELECT {select} FROM {table} LIMIT {PREVIEW_ROWS}").df()
    return {
        "dagster/row_count": dg.MetadataValue.int(int(rows)),
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name=c, type=t, description=descriptions.get(c)) for c, t in columns
            ]
        ),
        "dagster/table_name": dg.MetadataValue.text(table),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False) if rows else "(empty)"),
    }
