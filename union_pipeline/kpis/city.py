"""The city roll-up: every KPI for each district and for the city, and each district's rank.

The city's figures are computed by the same KPI definitions over every district's staging
rows together, not by adding up district figures: a count or sum comes out as the sum of
the districts, a ratio from the summed parts, and a distinct count of persons counts a
person registered in two districts once (person_key is the same in every district).
"""

from __future__ import annotations

import duckdb

from union_pipeline.districts import load_city, load_districts
from union_pipeline.kpis.catalogue import load_catalogue
from union_pipeline.kpis.context import resolve_refresh_context
from union_pipeline.kpis.marts import build_kpi_yearly

CITY_LEVEL = "city"
DISTRICT_LEVEL = "district"


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def build_city_kpi_yearly(con: duckdb.DuckDBPyConnection, as_of=None, first_year=None) -> None:
    """`marts.city_kpi_yearly` from views of every district's staging tables (district keys
    prefixed), every district's `marts.kpi_yearly` (with its `district`) and the city's
    targets `staging.city_targets`."""
    con.execute("CREATE OR REPLACE TEMP TABLE district_rows AS SELECT * FROM marts.kpi_yearly")
    con.execute("DROP VIEW marts.kpi_yearly")
    con.execute("DROP VIEW IF EXISTS marts.refresh_context")
    # the city is measured against its own targets, not the sum of the districts'
    con.execute("CREATE OR REPLACE VIEW staging.targets AS SELECT * FROM staging.city_targets")
    resolve_refresh_context(con, as_of, first_year)
    build_kpi_yearly(con)
    names = load_districts()
    city = load_city()
    district_names = (
        ", ".join(f"({_quote(code)}, {_quote(d.name)})" for code, d in sorted(names.items()))
        or "(NULL, NULL)"
    )
    lower_better = ", ".join(
        f"({_quote(k.code)}, {str(k.target_comparator == '<=').lower()})" for k in load_catalogue()
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE marts.city_kpi_yearly AS
        WITH names(district, district_name) AS (VALUES {district_names}),
             direction(kpi_code, lower_is_better) AS (VALUES {lower_better}),
             ranked AS (
               SELECT d.*,
                      CASE WHEN d.actual IS NOT NULL THEN rank() OVER (
                        PARTITION BY d.kpi_code, d.year, d.actual IS NULL
                        ORDER BY CASE WHEN coalesce(x.lower_is_better, false)
                                      THEN d.actual ELSE -d.actual END) END AS city_rank,
                      count(d.actual) OVER (PARTITION BY d.kpi_code, d.year) AS districts_ranked
               FROM district_rows d LEFT JOIN direction x USING (kpi_code))
        SELECT r.district, coalesce(n.district_name, r.district) AS district_name,
               '{DISTRICT_LEVEL}' AS level, r.* EXCLUDE (district, city_rank, districts_ranked),
               r.city_rank::INTEGER AS city_rank, r.districts_ranked::INTEGER AS districts_ranked
        FROM ranked r LEFT JOIN names n USING (district)
        UNION ALL BY NAME
        SELECT {_quote(city.code)} AS district, {_quote(city.name)} AS district_name,
               '{CITY_LEVEL}' AS level, k.*, NULL::INTEGER AS city_rank,
               (SELECT count(DISTINCT district) FROM district_rows)::INTEGER AS districts_ranked
        FROM marts.kpi_yearly k
        ORDER BY kpi_code, year, level, city_rank, district
        """
    )
