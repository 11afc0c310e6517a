"""The city roll-up: each district's KPIs beside the others', ranked, and the city's own
against the city's targets."""

import dagster as dg

from union_pipeline.assetkit.staging import city_targets_asset
from union_pipeline.defs.marts.assets import KPI_YEARLY_COLUMNS, REFRESH_CONTEXT, STAGING, _mart
from union_pipeline.kpis.city import build_city_kpi_yearly

CITY_TARGETS = dg.AssetKey(["staging", "city_targets"])
KPI_YEARLY = dg.AssetKey(["marts", "kpi_yearly"])
DISTRICT_FILE = dg.AssetKey(["warehouse", "district_duckdb"])

city_targets = city_targets_asset()
CITY_TARGETS_DESCRIPTION = city_targets.specs_by_key[CITY_TARGETS].description

city_kpi_yearly_mart = _mart(
    "city_kpi_yearly",
    lambda con, s: build_city_kpi_yearly(con, s.as_of, s.first_year),
    # after each district's publish: the city is made of what its districts published
    [*STAGING, REFRESH_CONTEXT, KPI_YEARLY, CITY_TARGETS, DISTRICT_FILE],
    {
        "district": "区县代码 district code (the city's code on the city's rows)",
        "district_name": "区县名称 district name",
        "level": "district or city",
        **KPI_YEARLY_COLUMNS,
        "city_rank": "全市排名 the district's rank among the districts (1 = best; for a KPI "
        "whose target is `<=`, lowest first); empty on the city's rows",
        "districts_ranked": "参与排名的区县数 districts with a value",
    },
    """全市指标 — Every KPI by year for each district and for the city, with each district's
    rank among the districts (全市排名) and the city against the city's targets.

    District rows are each district's `marts.kpi_yearly`. City rows apply the same KPI
    definitions to every district's rows together: counts and sums equal the sum of the
    districts, ratios come from the summed parts, and a person in two districts counts once
    in a distinct count (by person_key). Targets: the city's `targets/` folder.
    各区县及全市指标、全市排名、全市目标达成。""",
    settings_used=lambda s: [s.as_of, s.first_year],
    partitioned=False,
    group_name="city",
    waits_for_districts=True,
)
CITY_MARTS = [city_kpi_yearly_mart]
city_kpi_yearly = city_kpi_yearly_mart.asset()
