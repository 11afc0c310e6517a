"""KPI marts: every KPI by year and by street, against targets, reconciled with the report."""

import dagster as dg

from union_pipeline import kpis
from union_pipeline.assetkit.metadata import table_metadata
from union_pipeline.assetkit.resources import WRITER_POOL, WarehouseResource
from union_pipeline.assetkit.staging import OWNER
from union_pipeline.ingest.specs import load_specs

STAGING = [dg.AssetKey(["staging", s]) for s in load_specs()]

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
    "street": "镇街 (assets/streets.csv)",
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


def _build(context, warehouse: WarehouseResource, table: str, build, descriptions=None):
    settings = warehouse.settings
    with warehouse.building(context) as con:
        kpis.resolve_refresh_context(con, settings.as_of, settings.first_year)
        build(con)
        metadata = table_metadata(con, f"marts.{table}", descriptions)
        as_of, first_year = con.execute(
            "SELECT as_of, first_year FROM marts.refresh_context"
        ).fetchall()[0]
    return metadata | {
        "as_of": dg.MetadataValue.text(str(as_of)),
        "first_year": dg.MetadataValue.int(int(first_year)),
    }


def _mart(name: str, build, columns: dict[str, str], description: str, after=()):
    """One mart: built by `build` from staging into the run's warehouse, with its metadata."""

    @dg.asset(
        key=["marts", name],
        group_name="kpis",
        kinds={"duckdb", "sql"},
        owners=[OWNER],
        pool=WRITER_POOL,
        deps=[*STAGING, *(dg.AssetKey(["marts", a]) for a in after)],
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        return dg.MaterializeResult(metadata=_build(context, warehouse, name, build, columns))

    return _asset


kpi_yearly = _mart(
    "kpi_yearly",
    kpis.build_kpi_yearly,
    KPI_YEARLY_COLUMNS,
    """Every KPI of the catalogue by year, with year-on-year change, target and projection.

    One row per (kpi_code, year) from the first activity year to the as-of year; the
    incomplete as-of year compares year to date with the prior year to the same date.
    指标年度表：实际值、同比、目标、达成情况及年末预测。""",
)

kpi_by_street = _mart(
    "kpi_by_street",
    kpis.build_kpi_by_street,
    KPI_BY_STREET_COLUMNS,
    """Every KPI whose rows reach a union, by year and street (镇街).

    分镇街指标：会员、工会、医疗互助按所属镇街统计。""",
)

report_reconciliation = _mart(
    "report_reconciliation",
    kpis.build_report_reconciliation,
    RECONCILIATION_COLUMNS,
    """Each published figure beside the warehouse's value, and whether it lies in its bounds.

    A mismatch is a question for the analyst (the check warns), not a reason to publish
    nothing. 与已发布数据核对：发布值、上下限、计算值、是否一致。""",
    after=("kpi_yearly",),
)
