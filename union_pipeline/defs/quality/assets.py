"""The quarantine: every row a source sent that the data contract held back, and why."""

from pathlib import Path

import dagster as dg

from union_pipeline import districts
from union_pipeline.assetkit.io import IO_MANAGER, Tables
from union_pipeline.assetkit.metadata import (
    district_metadata,
    quarantine_rules,
    rule_label,
)
from union_pipeline.assetkit.outputs import (
    latest,
    output_metadata,
    reusable,
    reused_metadata,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import EAGER, OWNER, QUARANTINE_FILE
from union_pipeline.ingest.safety import truncate_cell_sql
from union_pipeline.ingest.specs import load_specs
from union_pipeline.settings import load_settings
from union_pipeline.warehouse import scratch, sql_path
from union_pipeline.warehouse.versions import digest

KEY = dg.AssetKey(["staging", "quarantine"])
STAGING = [dg.AssetKey(["staging", s]) for s in load_specs()]
PREVIEW_PER_SOURCE = 3  # rows of each source in the preview: every source shows
CODE_VERSION = "quarantine-2"  # 2: the preview shows every source, rules Chinese first


def _rule_legend(counts: list[tuple[str, str, int]]) -> str:
    rules = quarantine_rules()
    lines = ["| 数据源 source | 规则 rule | meaning | 行数 rows |", "|---|---|---|---|"]
    for source, rule, n in counts:
        meaning = rules.get(rule, {}).get("en", "")
        lines.append(f"| {source} | {rule_label(rule)} | {meaning} | {n:,} |")
    return "\n".join(lines)


def problem_list_note(district: str) -> str:
    """Where the analyst finds every held-back row: the problem-list workbook the reports
    write into the district's export folder (reports/problem_lists)."""
    from union_pipeline.reports.theme import load_theme

    settings = load_settings()
    # the district's folder within the export folder: itself, or <code>/ in a city drop
    within = districts.district_export_dir(Path(), settings.raw_dir, district).as_posix()
    folder = ("" if within == "." else f"{within}/") + "<统计截止日 as-of>/"
    workbook = f"{load_theme().t('pl_file')}-<统计截止日 as-of>.xlsx"
    return (
        f"完整清单见导出目录（UNION_EXPORT_DIR）中的 {folder}{workbook}：每个数据源一页，"
        "含规则的中文含义与处理建议；按工会/、按镇街/ 下为分发给各工会、镇街的文件"
        "（reports/problem_lists 生成）。"
        f"The full list: {folder}{workbook} in the export folder."
    )


def quarantine_out() -> dg.AssetOut:
    """The quarantine's asset, made in the staging step after the sources (which it
    depends on)."""
    return dg.AssetOut(
        key=KEY,
        group_name="quality",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        is_required=False,
        io_manager_key=IO_MANAGER,
        code_version=CODE_VERSION,
        automation_condition=EAGER,
        description="""隔离数据 — Every row a source sent that broke a rule of the data contract,
    masked.

    One row per held-back row: source, file, line, the first broken rule and its column,
    every broken rule, and the row's values with names, ID numbers and phones masked. The
    unions that sent them fix them at the source; the next refresh takes the fixed rows.
    被隔离的行：来源文件、行号、违反的规则及列、脱敏后的原值。
    """,
    )


def quarantine(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """The quarantine's materialization, when selected: the latest quarantine of every
    source of the district (those staged in this step included), masked, in one table."""
    if KEY not in context.selected_asset_keys:
        return
    yield from _quarantine(context, warehouse)


def _quarantine(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    store = warehouse.warehouse
    district = context.partition_key
    parts = {k: latest(context.instance, k, district) for k in STAGING}
    files = {k: p.get(QUARANTINE_FILE) for k, p in parts.items() if p and p.get(QUARANTINE_FILE)}
    version = digest(CODE_VERSION, {k.to_user_string(): parts[k].version for k in files})
    previous = reusable(context.instance, KEY, version, district)  # inputs = its version
    if previous:
        yield dg.MaterializeResult(
            asset_key=KEY, data_version=dg.DataVersion(version), metadata=reused_metadata(previous)
        )
        return
    with scratch(store.spill_dir) as con:
        union = " UNION ALL ".join(
            f"SELECT * FROM read_parquet({sql_path(f)})" for f in files.values()
        ) or (
            "SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS file, NULL::INTEGER AS line, "
            'NULL::VARCHAR AS rule, NULL::VARCHAR AS "column", NULL::VARCHAR AS rules, '
            "NULL::VARCHAR AS values_masked WHERE false"
        )
        con.execute(f"CREATE TABLE quarantine AS {union} ORDER BY source, file, line")
        rows = con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
        counts = con.execute(
            "SELECT source, rule, count(*) FROM quarantine GROUP BY ALL ORDER BY 3 DESC"
        ).fetchall()
        # a few rows of every source, not the first source's first rows
        preview = con.execute(
            f'SELECT source, file, line, rule, "column", '
            f"{truncate_cell_sql('values_masked')} AS values_masked FROM quarantine "
            f"QUALIFY row_number() OVER (PARTITION BY source ORDER BY file, line) "
            f"<= {PREVIEW_PER_SOURCE} ORDER BY source, file, line"
        ).df()
        preview.insert(0, "规则 rule", [rule_label(r) for r in preview["rule"]])
        preview = preview.drop(columns=["rule"])
        shown = (
            f"{len(preview)} of {rows:,} rows, up to {PREVIEW_PER_SOURCE} per source. "
            f"{problem_list_note(district)}\n\n{preview.to_markdown(index=False)}"
        )
        yield dg.MaterializeResult(
            asset_key=KEY,
            data_version=dg.DataVersion(version),
            metadata={
                **district_metadata(district),
                "dagster/row_count": dg.MetadataValue.int(int(rows)),
                "dagster/table_name": dg.MetadataValue.text("staging.quarantine"),
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn("source", "VARCHAR", description="数据源 source"),
                        dg.TableColumn(
                            "file", "VARCHAR", description="文件 file, relative to the raw folder"
                        ),
                        dg.TableColumn("line", "INTEGER", description="行号 line (header = 1)"),
                        dg.TableColumn(
                            "rule", "VARCHAR", description="首个违反的规则 first broken rule"
                        ),
                        dg.TableColumn("column", "VARCHAR", description="列 column"),
                        dg.TableColumn(
                            "rules", "VARCHAR", description="全部违反的规则 every broken rule"
                        ),
                        dg.TableColumn(
                            "values_masked",
                            "VARCHAR",
                            description="脱敏后的原值 the row's values, PII masked",
                        ),
                    ]
                ),
                "rules": dg.MetadataValue.md(_rule_legend(counts) if counts else "(none)"),
                "preview": dg.MetadataValue.md(shown if rows else "(empty)"),
                "problem_list": dg.MetadataValue.text(problem_list_note(district)),
                **output_metadata(version),
            },
            value=Tables(con, {"data": "SELECT * FROM quarantine"}, version),
        )
