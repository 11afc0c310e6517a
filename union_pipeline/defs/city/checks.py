"""Checks on the city roll-up."""

import dagster as dg

from union_pipeline.assetkit.checks import rows_check_result
from union_pipeline.defs.marts.checks import additive
from union_pipeline.defs.quality.checks import SqlCheck, layer_checks
from union_pipeline.kpis import load_catalogue

CITY_KPI_YEARLY = dg.AssetKey(["marts", "city_kpi_yearly"])


def city_total_is_sum_of_districts(con):
    codes = [k.code for k in load_catalogue() if k.reported and additive(k)]
    listed = ", ".join(f"'{c}'" for c in codes) or "NULL"
    return rows_check_result(
        con,
        f"""WITH sums AS (
              SELECT kpi_code, year, sum(actual) AS districts_total, count(*) AS districts
              FROM marts.city_kpi_yearly WHERE level = 'district' GROUP BY ALL)
            SELECT c.kpi_code, c.year, c.actual AS city, s.districts_total, s.districts
            FROM marts.city_kpi_yearly c LEFT JOIN sums s USING (kpi_code, year)
            WHERE c.level = 'city' AND c.kpi_code IN ({listed})
              AND abs(c.actual - coalesce(s.districts_total, 0))
                  > 1e-6 * greatest(1, abs(c.actual))""",
        extra={"additive_kpis": dg.MetadataValue.json(codes)},
    )


# its step keeps the name it had as an asset check of its own
city_checks = layer_checks(
    "marts__city_kpi_yearly_city_total_is_sum_of_districts",
    "全市汇总检查 — the city roll-up's checks",
    [],
    (
        SqlCheck.of(
            city_total_is_sum_of_districts,
            CITY_KPI_YEARLY,
            (),
            "全市合计等于各区县之和 — for every additive KPI (a count or sum) and year, the "
            "city's figure equals the sum of the districts' figures.",
        ),
    ),
)
