"""KPI marts: every KPI by year and by street, against targets, reconciled with the report,
and the monthly series the charts show. Each mart reads the latest staging outputs and
writes its own; unchanged inputs mean the mart is not recomputed."""

import re
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb

from union_pipeline import kpis
from union_pipeline.assetkit.io import (
    IO_MANAGER,
    Tables,
    by_key,
    input_name,
    latest_tables,
    reading,
    table_ins,
)
from union_pipeline.assetkit.metadata import district_metadata, excel_text, table_metadata
from union_pipeline.assetkit.outputs import (
    DISTRICTS,
    REUSED,
    AllDistricts,
    Latest,
    content_version,
    metadata_value,
    output_metadata,
    reusable,
    reused_metadata,
    versions_of,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import EAGER, OWNER, package_digest
from union_pipeline.ingest.specs import load_specs
from union_pipeline.kpis import describe
from union_pipeline.settings import ASSETS_DIR, Settings
from union_pipeline.warehouse.versions import digest

STAGING = [dg.AssetKey(["staging", s]) for s in load_specs()]
REFRESH_CONTEXT = dg.AssetKey(["marts", "refresh_context"])
MARTS_CODE = package_digest("kpis", "warehouse")
CATALOGUE = (ASSETS_DIR / "kpis.yaml").read_text(encoding="utf-8")

KPI_YEARLY_COLUMNS = {
    "kpi_code": "指标代码 (assets/kpis.yaml)",
    "year": "年度",
    "actual": "实际值 (year to date for the incomplete as-of year)",
    "prior_actual": "上年同期 (prior year, to the same date for the incomplete year)",
    "yoy_change": "同比增减 actual - prior_actual",
    "yoy_pct": "同比增幅 (fraction)",
    "target": "年度目标",
    "comparator": "目标比较 >= or <=",
    "target_met": "是否达成 (complete years only)",
    "is_complete_year": "是否完整年度",
    "projected_year_end": "年末预测 (incomplete year only)",
    "on_track": "预计能否达成 (incomplete year with a target)",
}
KPI_BY_STREET_COLUMNS = {
    "kpi_code": "指标代码",
    "year": "年度",
    "street": "镇街 (the district's streets, assets/districts/<code>.yaml)",
    "actual": "实际值 at year end (year to date for the incomplete year)",
    "persons": "人数: distinct persons behind the value, exact below 50, for small-cell "
    "suppression (<5 is never shown)",
}
RECONCILIATION_COLUMNS = {
    "kpi_code": "指标代码",
    "year": "年度",
    "published": "发布值",
    "lower": "下限 (from the published rounding or 余)",
    "upper": "上限",
    "computed": "仓库计算值 (marts.kpi_yearly.actual)",
    "match": "是否一致: lower <= computed <= upper",
}
REFRESH_CONTEXT_COLUMNS = {
    "as_of": "统计截止日: UNION_AS_OF, else the latest event date in staging",
    "first_year": "首个统计年度: UNION_FIRST_YEAR, else the first activity year",
}


@dataclass(frozen=True)
class Mart:
    """One mart: `build(con, settings)` creates `marts.<name>` in a scratch DuckDB whose
    views are the latest outputs of `deps` (of the same district, for a district mart; of
    every district, for a city mart); the result is written as its materialization's
    Parquet output."""

    name: str
    build: Callable
    deps: list[dg.AssetKey]
    columns: dict[str, str]
    description: str
    settings_used: Callable[[Settings], object] = lambda s: None
    code: str = ""
    partitioned: bool = True
    group_name: str = "kpis"
    preview: Callable[[duckdb.DuckDBPyConnection, str | None], str] | None = None
    # a city mart: made only when no district's refresh is under way
    waits_for_districts: bool = False

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["marts", self.name])

    @property
    def code_version(self) -> str:
        return digest(MARTS_CODE, CATALOGUE, self.code)

    @property
    def reads(self) -> list[dg.AssetKey]:
        """The tables it reads (a dependency on a publish orders it, and has no table)."""
        return [k for k in self.deps if k.path[0] in ("staging", "marts")]

    def out(self) -> dg.AssetOut:
        return dg.AssetOut(
            key=self.key,
            group_name=self.group_name,
            kinds={"duckdb", "parquet", "sql"},
            owners=[OWNER],
            code_version=self.code_version,
            automation_condition=EAGER,
            description=self.description,
            is_required=False,
            io_manager_key=IO_MANAGER,
        )

    def asset(self) -> dg.AssetsDefinition:
        """The mart as an asset of its own (the city's, the catalogue)."""
        return marts_step(f"marts__{self.name}", [self])


def marts_step(name: str, marts: list["Mart"]) -> dg.AssetsDefinition:
    """The marts in one step, in the order given (each after those it reads), each only
    when selected; all partitioned by district or none (a city step reads every district's
    tables)."""
    partitioned = {m.partitioned for m in marts}
    assert len(partitioned) == 1, "a step's marts are all the district's or all the city's"
    partitioned = partitioned.pop()
    made = {m.key for m in marts}
    external = sorted({k for m in marts for k in m.deps} - made, key=lambda k: k.path)
    ins = table_ins(
        [k for k in external if k.path[0] in ("staging", "marts")], all_districts=not partitioned
    )

    @dg.multi_asset(
        name=name,
        outs={input_name(m.key): m.out() for m in marts},
        ins=ins,
        deps=[k for k in external if k not in {i.key for i in ins.values()}],
        internal_asset_deps={input_name(m.key): set(m.deps) for m in marts},
        partitions_def=DISTRICTS if partitioned else None,
        can_subset=True,
    )
    def _marts(context: dg.AssetExecutionContext, warehouse: WarehouseResource, **inputs):
        upstream = by_key(ins, inputs)
        district = context.partition_key if partitioned else None
        stands = []
        for mart in marts:
            if mart.key not in context.selected_asset_keys:
                continue
            if mart.waits_for_districts:
                from union_pipeline.defs.warehouse.assets import waiting_for

                if waiting := waiting_for(context.instance, context.run.run_id):
                    context.log.info(
                        f"marts.{mart.name} not made yet: waiting for district "
                        f"{', '.join(waiting)} (its refresh is under way); it is made when "
                        "their files are published. 等待区县刷新完成。"
                    )
                    continue
            # what it reads: the step's inputs; a mart made in this step, its latest
            reads = {
                k: upstream[k] if k in upstream else latest_tables(context.instance, k, district)
                for k in mart.reads
            }
            for result in materialize_mart(context, warehouse, mart, reads):
                if metadata_value(result.metadata, REUSED):
                    stands.append(f"marts.{mart.name}")
                yield result
        if stands:  # one line: every log line is an event the instance stores
            context.log.info(f"inputs unchanged, results stand: {', '.join(stands)}")

    return _marts


def materialize_mart(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mart: Mart,
    upstream: dict[dg.AssetKey, Latest | AllDistricts],
):
    """Build one mart (its table for the IO manager to write), or keep its last result when
    its inputs are those it was made from."""
    settings = warehouse.settings
    key, name = mart.key, mart.name
    district = context.partition_key if mart.partitioned else None
    inputs = digest(mart.code_version, versions_of(upstream), mart.settings_used(settings))
    previous = reusable(context.instance, key, inputs, district)
    if previous:
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(previous.version),
            metadata=reused_metadata(previous),
        )
        return
    with reading(warehouse.warehouse, upstream.values()) as con:
        mart.build(con, settings)
        version = content_version(con, f"marts.{name}")
        metadata = table_metadata(con, f"marts.{name}", mart.columns)
        if mart.preview is not None:  # what the analyst looks for, not the table's first rows
            metadata["preview"] = dg.MetadataValue.md(mart.preview(con, district))
        if REFRESH_CONTEXT in upstream or key == REFRESH_CONTEXT:
            for as_of, first_year in con.execute(
                "SELECT as_of, first_year FROM marts.refresh_context"
            ).fetchall():
                metadata["as_of"] = dg.MetadataValue.text(str(as_of))
                metadata["first_year"] = dg.MetadataValue.int(int(first_year))
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(version),
            metadata={
                **district_metadata(district),
                **metadata,
                **output_metadata(version, inputs=inputs),
            },
            value=Tables(con, {"data": f"SELECT * FROM marts.{name}"}, inputs),
        )


_mart = Mart


refresh_context = _mart(
    "refresh_context",
    lambda con, s: kpis.resolve_refresh_context(con, s.as_of, s.first_year),
    STAGING,
    REFRESH_CONTEXT_COLUMNS,
    """统计口径 — The refresh context: the as-of date and the first reported year.

    Every mart and chart reports "as of" this date: UNION_AS_OF, else the latest event date
    in the loaded data; years from UNION_FIRST_YEAR, else the first year of activity.
    统计截止日与首个统计年度。""",
    settings_used=lambda s: [s.as_of, s.first_year],
)


def scorecard_preview(con: duckdb.DuckDBPyConnection, district: str | None) -> str:
    """The as-of year's row of every KPI, as the KPI workbook's scorecard shows it: actual
    and target in the workbook's units (万元 where it uses them), rates and year-on-year
    change in percent, the status."""
    import pandas as pd

    from union_pipeline.reports.data import ReportData
    from union_pipeline.reports.theme import load_theme
    from union_pipeline.reports.workbook import scorecard_table

    (as_of, first_year), rows = (
        con.execute("SELECT as_of, first_year FROM marts.refresh_context").fetchall()[0],
        con.execute("SELECT count(*) FROM marts.kpi_yearly").fetchall()[0][0],
    )
    yearly = con.execute(
        "SELECT * FROM marts.kpi_yearly WHERE year BETWEEN ? AND ? ORDER BY kpi_code, year",
        [first_year, as_of.year],
    ).df()
    data = ReportData(as_of, int(first_year), kpis.load_catalogue(), yearly, pd.DataFrame())
    theme = load_theme().of(district)
    table = scorecard_table(data, theme)
    t = theme.t
    out = []
    for kpi, values, formats in zip(data.reported, table.rows, table.formats, strict=True):
        formats = [*formats, *[None] * (len(values) - len(formats))]  # text cells: none
        cell = {h: excel_text(v, f) for h, v, f in zip(table.headers, values, formats, strict=True)}
        row = data.series(kpi.code)
        row = row[row["year"] == data.as_of_year]
        change = (
            theme.fmt_change(row["yoy_change"].iloc[0], row["yoy_pct"].iloc[0], kpi.unit)
            if len(row)
            else ""
        )
        target = table.headers[7]  # the year's target, its comparator before it
        out.append(
            {
                t("col_kpi"): cell[t("col_kpi")],
                t("wb_unit"): cell[t("wb_unit")],
                table.headers[3]: cell[table.headers[3]],  # this year's actual (to date)
                t("wb_prior"): cell[t("wb_prior")],
                t("col_yoy"): change,
                target: f"{cell[t('wb_comparator')]} {cell[target]}".strip(),
                t("col_status"): cell[t("col_status")],
                t("col_projection"): cell[t("col_projection")],
                t("wb_code"): kpi.code,
            }
        )
    if not out:
        return "(no KPI rows for the as-of year)"
    head = (
        f"**{as_of.year}年各项指标（截至 {as_of.isoformat()}）**：{len(out)} 项，格式同指标工作簿"
        f"的完成情况表；历年全部 {rows:,} 行见 marts.kpi_yearly。 The as-of year's KPIs as in "
        "the KPI workbook's scorecard."
    )
    return head + "\n\n" + pd.DataFrame(out).to_markdown(index=False)


kpi_yearly = _mart(
    "kpi_yearly",
    lambda con, s: kpis.build_kpi_yearly(con),
    [*STAGING, REFRESH_CONTEXT],
    KPI_YEARLY_COLUMNS,
    """指标年度表 — Every KPI of the catalogue by year, with year-on-year change, target and
    projection.

    One row per (kpi_code, year) from the first activity year to the as-of year; the
    incomplete as-of year compares year to date with the prior year to the same date.
    指标年度表：实际值、同比、目标、达成情况及年末预测。""",
    preview=scorecard_preview,
)

kpi_by_street = _mart(
    "kpi_by_street",
    lambda con, s: kpis.build_kpi_by_street(con),
    [*STAGING, REFRESH_CONTEXT],
    KPI_BY_STREET_COLUMNS,
    """分镇街指标 — Every KPI whose rows reach a union, by year and street (镇街).

    分镇街指标：会员、工会、医疗互助按所属镇街统计。""",
)

report_reconciliation = _mart(
    "report_reconciliation",
    lambda con, s: kpis.build_report_reconciliation(con),
    [*STAGING, REFRESH_CONTEXT, dg.AssetKey(["marts", "kpi_yearly"])],
    RECONCILIATION_COLUMNS,
    """与已发布数据核对 — Each published figure beside the warehouse's value, and whether it
    lies in its bounds.

    A mismatch is a question for the analyst (the check warns), not a reason to publish
    nothing. 与已发布数据核对：发布值、上下限、计算值、是否一致。""",
)


def _catalogue_table(con, settings) -> None:
    frame = describe.catalogue_frame()
    con.register("catalogue_frame", frame)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute("CREATE OR REPLACE TABLE marts.kpi_catalogue AS SELECT * FROM catalogue_frame")
    con.unregister("catalogue_frame")


kpi_catalogue = _mart(
    "kpi_catalogue",
    _catalogue_table,
    [],
    {
        "code": "指标代码 kpi_code",
        "name_zh": "中文名称",
        "name_en": "English name",
        "unit": "单位 unit",
        "kind": "类型 stock / flow / ratio / cumulative",
        "definition": "口径 definition",
    },
    """指标目录 — The KPI catalogue: every KPI's code, Chinese and English name, unit, kind
    and definition, so that a reader of marts.kpi_yearly knows what each code means.

    From assets/kpis.yaml; the same for every district. 指标代码、中英文名称、单位、类型及口径。""",
    partitioned=False,
)


def _sql_mart(path) -> Mart:
    """A mart defined by one SELECT in assets/marts/<name>.sql; its first comment line is
    its description, the tables it names are its dependencies."""
    sql = path.read_text(encoding="utf-8")
    name = path.stem
    comment = [line[2:].strip() for line in sql.splitlines() if line.startswith("--")]
    deps = sorted(
        {
            dg.AssetKey([schema, table])
            for schema, table in re.findall(r"\b(staging|marts)\.(\w+)", sql)
        },
        key=lambda k: k.path,
    )
    return _mart(
        name,
        lambda con, s: con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS {sql}"),
        deps,
        {},
        comment[0] + "\n\n" + " ".join(comment[1:]) + f"\n\nSQL: assets/marts/{path.name}",
        code=sql,
    )


series = [_sql_mart(p) for p in sorted((ASSETS_DIR / "marts").glob("*.sql"))]

DISTRICT_MARTS = [refresh_context, kpi_yearly, kpi_by_street, report_reconciliation, *series]
MART_KEYS = [m.key for m in (*DISTRICT_MARTS, kpi_catalogue)]
REPORT_MART_KEYS = [m.key for m in (refresh_context, kpi_yearly, kpi_by_street, *series)]

# the district's marts in one step; the catalogue, the same for every district, its own
marts = marts_step("marts", DISTRICT_MARTS)
catalogue = kpi_catalogue.asset()
