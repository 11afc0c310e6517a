"""What every warehouse asset reports: row count, column schema, a small masked preview."""

from __future__ import annotations

from functools import cache

import dagster as dg
import duckdb

from union_pipeline.ingest.safety import truncate_cell_sql

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
    # as text: dates as dates, empty cells empty (not NaT, nan or 00:00:00), long cells cut
    select = ", ".join(_preview_cell(c) for c in shown)
    preview = con.execute(f"SELECT {select} FROM {table} LIMIT {PREVIEW_ROWS}").df()
    if "kpi_code" in preview.columns:  # the KPI's Chinese name first: codes mean little
        preview.insert(0, "指标", [kpi_names().get(c, "") for c in preview["kpi_code"]])
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


def _preview_cell(column: str) -> str:
    quoted = f'"{column}"'
    if column in SHORTENED:
        return f"left({quoted}, 8) || '…' AS {quoted}"
    return f"coalesce({truncate_cell_sql(f'CAST({quoted} AS VARCHAR)')}, '') AS {quoted}"


@cache
def kpi_names() -> dict[str, str]:
    from union_pipeline.kpis import load_catalogue

    return {k.code: k.name_zh for k in load_catalogue()}
