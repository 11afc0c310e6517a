"""What every warehouse asset reports: row count, column schema, a small masked preview;
and the labels the analyst reads in the UI (districts and rules named, figures as in the
workbook, files relative to the export folder)."""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import cache
from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.ingest.safety import truncate_cell_sql
from union_pipeline.yamlfile import load_yaml

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


# ------------------------------------------------------------------ labels for the analyst


def district_label(code: str | None) -> str:
    """A district as the analyst knows it: its code and name ("330211 镇海区"); the code
    alone for a district without a reference file (assets/districts/)."""
    from union_pipeline import districts

    if code is None:
        return ""
    found = districts.load_districts().get(code)
    return f"{code} {found.name}" if found else code


def district_metadata(code: str | None) -> dict:
    """The district a partition's materialization is of, named (partition keys are codes)."""
    if code is None:
        return {}
    return {"district": dg.MetadataValue.text(district_label(code))}


@cache
def quarantine_rules() -> dict[str, dict]:
    """assets/quarantine_rules.yaml: rule code -> zh, en, fix_zh, fix_en."""
    from union_pipeline.settings import ASSETS_DIR

    return load_yaml((ASSETS_DIR / "quarantine_rules.yaml").read_text(encoding="utf-8"))


def rule_label(code: str) -> str:
    """A quarantine rule, Chinese first: "身份证号校验位错误或格式不对 (invalid_id_number)"."""
    zh = quarantine_rules().get(code, {}).get("zh")
    return f"{zh} ({code})" if zh else code


def rules_label(rules: str | None) -> str:
    """A quarantined row's broken rules ("after_as_of(join_date); ..."), Chinese first, with
    the column of each: "晚于统计截止日 (after_as_of): join_date; ..."."""
    if not rules:
        return ""
    return "; ".join(
        f"{rule_label(code)}: {column}" if column else rule_label(code)
        for code, column in _RULE_CALL.findall(rules)
    ) or str(rules)


def by_rule_labels(by_rule: dict[str, int]) -> dict[str, int]:
    """Rows held back per rule, keyed "中文 (code)", most first."""
    return {rule_label(k): v for k, v in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))}


_RULE_CALL = re.compile(r"(\w+)(?:\(([^)]*)\))?")


# ------------------------------------------------------------------ figures as in the workbook


def excel_text(value, number_format: str | None) -> str:
    """A cell's value as the KPI workbook shows it with its number format (the formats of
    `union_pipeline.reports.workbook`): 4,752; 21.89; 75.23%; +1.2%."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    fmt = (number_format or "").split(";")[0]
    if fmt.endswith("%"):
        decimals = len(fmt.split(".")[1]) - 1 if "." in fmt else 0
        sign = "+" if fmt.startswith("+") and round(value * 100, decimals) != 0 else ""
        return f"{value * 100:{sign},.{decimals}f}%"
    decimals = len(fmt.split(".")[1].rstrip("#")) if "." in fmt else 0
    return f"{value:,.{decimals}f}"


# ------------------------------------------------------------------ files, for the analyst


def in_export_folder(path: str | Path, export_dir: str | Path) -> str:
    """A file the refresh wrote, as the analyst finds it: relative to the export folder
    (UNION_EXPORT_DIR), which they open from their own machine; a server path means
    nothing there."""
    try:
        return Path(path).resolve().relative_to(Path(export_dir).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def local_time(ns: int | float) -> str:
    """A file time (nanoseconds since the epoch) as the server's local date and time."""
    return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M")


FILES_SHOWN = 50


def files_table(state: dict[str, list]) -> str:
    """The files of a source as the analyst knows them (name, size, when modified), from
    the state the pipeline records ({name: [size, mtime_ns, sha256]}, union/raw_files)."""
    if not state:
        return "(no files)"
    lines = ["| 文件 file | 大小 size | 修改时间 modified |", "|---|---|---|"]
    for name, (size, mtime_ns, *_) in list(sorted(state.items()))[:FILES_SHOWN]:
        lines.append(f"| {name} | {size / 1024:,.1f} KB | {local_time(mtime_ns)} |")
    if len(state) > FILES_SHOWN:
        lines.append(f"| … {len(state) - FILES_SHOWN} more | | |")
    return "\n".join(lines)


FAILED_ASSET = "asset"  # a step's failure names the asset it failed on, where it knows


def failed_asset(step_key: str | None, failure_data) -> str:
    """The asset a failed step names: the one its failure says (a fat step's source), else
    the step's own (an asset's step is named after its key: staging__x is staging/x)."""
    user = getattr(failure_data, "user_failure_data", None)
    entry = (user.metadata or {}).get(FAILED_ASSET) if user is not None else None
    if entry is not None:
        return str(getattr(entry, "value", entry))
    return (step_key or "?").replace("__", "/")
