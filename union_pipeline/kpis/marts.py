"""Build the KPI marts (contract: docs/marts.md).

Each builder reads staging.* and marts.refresh_context (tables or views) (written by
`resolve_refresh_context`) and creates or replaces one table in schema `marts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from union_pipeline.kpis.catalogue import Kpi, load_catalogue
from union_pipeline.kpis.context import read_refresh_context
from union_pipeline.kpis.engine import (
    POINTS_TABLE,
    SAME_DAY,
    VALUES_TABLE,
    YEAR_END,
    evaluate,
    sql_text,
    year_end_points,
    yearly_points,
)


def _catalogue_values(kpis: Sequence[Kpi]) -> str:
    """The catalogue as an inline relation cat(ord, kpi_code, kind, name_zh, comparator)."""
    rows = ", ".join(
        f"({i}, {sql_text(k.code)}, {sql_text(k.kind)}, {sql_text(k.name_zh)}, "
        f"{sql_text(k.target_comparator)})"
        for i, k in enumerate(kpis)
    )
    return f"cat(ord, kpi_code, kind, name_zh, default_comparator) AS (VALUES {rows})"


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _cleanup(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS {VALUES_TABLE}")
    con.execute(f"DROP TABLE IF EXISTS {POINTS_TABLE}")


def build_kpi_yearly(
    con: duckdb.DuckDBPyConnection, catalogue: Sequence[Kpi] | None = None
) -> dict:
    """Create marts.kpi_yearly: one row per reported KPI and year, first year to as-of year."""
    catalogue = list(catalogue) if catalogue is not None else load_catalogue()
    ctx = read_refresh_context(con)
    reported = [k for k in catalogue if k.reported]
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    evaluate(con, catalogue, yearly_points(ctx), codes=[k.code for k in reported])
    con.execute(f"""
    CREATE OR REPLACE TABLE marts.kpi_yearly AS
    WITH ctx AS (
        SELECT as_of, first_year, CAST(year(as_of) AS INTEGER) AS as_of_year,
               (month(as_of) = 12 AND day(as_of) = 31) AS as_of_complete
        FROM marts.refresh_context
    ),
    {_catalogue_values(reported)},
    v AS (
        SELECT v.kpi_code, v.year, v.value, p.role
        FROM {VALUES_TABLE} AS v JOIN {POINTS_TABLE} AS p USING (year, at_date)
    ),
    ye AS (SELECT kpi_code, year, value FROM v WHERE role = '{YEAR_END}'),
    sd AS (SELECT kpi_code, year, value FROM v WHERE role = '{SAME_DAY}'),
    -- share of a complete year reached by the as-of month and day, over all complete years
    season AS (
        SELECT sd.kpi_code, sum(sd.value) / nullif(sum(ye.value), 0) AS s
        FROM sd JOIN ye USING (kpi_code, year)
        GROUP BY sd.kpi_code
    ),
    base AS (
        SELECT cat.ord, cat.kpi_code, cat.kind, cat.default_comparator, ye.year,
               ye.value AS actual,
               CASE WHEN ye.year = ctx.first_year THEN NULL
                    WHEN ye.year = ctx.as_of_year AND NOT ctx.as_of_complete THEN sd_prev.value
                    ELSE ye_prev.value END AS prior_actual,
               (ye.year < ctx.as_of_year OR ctx.as_of_complete) AS is_complete_year,
               season.s,
               make_date(ye.year + 1, 1, 1) - make_date(ye.year, 1, 1) AS days_in_year,
               ctx.as_of - make_date(ye.year, 1, 1) + 1 AS days_elapsed
        FROM ye
        JOIN cat USING (kpi_code)
        CROSS JOIN ctx
        LEFT JOIN ye AS ye_prev ON ye_prev.kpi_code = ye.kpi_code AND ye_prev.year = ye.year - 1
        LEFT JOIN sd AS sd_prev ON sd_prev.kpi_code = ye.kpi_code AND sd_prev.year = ye.year - 1
        LEFT JOIN season ON season.kpi_code = ye.kpi_code
    ),
    t AS (
        SELECT kpi_code, CAST(year AS INTEGER) AS year,
               CAST(target_value AS DOUBLE) AS target, comparator
        FROM staging.targets WHERE target_value IS NOT NULL
    ),
    proj AS (
        SELECT base.*,
               CASE WHEN is_complete_year THEN NULL
                    WHEN kind <> 'flow' THEN actual
                    WHEN s IS NULL OR s = 0 THEN actual * days_in_year / days_elapsed
                    ELSE actual / s END AS projected_year_end,
               t.target,
               CASE WHEN t.target IS NOT NULL
                    THEN coalesce(t.comparator, base.default_comparator) END AS comparator
        FROM base LEFT JOIN t USING (kpi_code, year)
    )
    SELECT CAST(kpi_code AS VARCHAR) AS kpi_code,
           CAST(year AS INTEGER) AS year,
           CAST(actual AS DOUBLE) AS actual,
           CAST(prior_actual AS DOUBLE) AS prior_actual,
           CAST(actual - prior_actual AS DOUBLE) AS yoy_change,
           CAST((actual - prior_actual) / nullif(prior_actual, 0) AS DOUBLE) AS yoy_pct,
           CAST(target AS DOUBLE) AS target,
           CAST(comparator AS VARCHAR) AS comparator,
           CAST(CASE WHEN is_complete_year THEN
                    CASE comparator WHEN '>=' THEN actual >= target
                                    WHEN '<=' THEN actual <= target END
                END AS BOOLEAN) AS target_met,
           CAST(is_complete_year AS BOOLEAN) AS is_complete_year,
           CAST(projected_year_end AS DOUBLE) AS projected_year_end,
           CAST(CASE WHEN NOT is_complete_year THEN
                    CASE comparator WHEN '>=' THEN projected_year_end >= target
                                    WHEN '<=' THEN projected_year_end <= target END
                END AS BOOLEAN) AS on_track
    FROM proj
    ORDER BY ord, year
    """)
    _cleanup(con)
    return {
        "rows": _count(con, "marts.kpi_yearly"),
        "kpis": len(reported),
        "years": len(ctx.years),
        "as_of": ctx.as_of.isoformat(),
        "first_year": ctx.first_year,
        "as_of_year_complete": ctx.is_complete,
    }


def build_kpi_by_street(
    con: duckdb.DuckDBPyConnection,
    catalogue: Sequence[Kpi] | None = None,
    *,
    with_persons: bool = True,
) -> dict:
    """Create marts.kpi_by_street(kpi_code, year, street, actual, persons).

    One row per reported KPI with a street, year and street of staging.unions (0 where
    nothing was counted; a ratio is computed from its parts per street, null on a zero
    denominator). persons: distinct persons behind the value (for small-cell suppression;
    a ratio takes its denominator's, else its numerator's; null where the unit is not
    persons, e.g. unions). with_persons=False skips those exact distinct counts (the
    costliest part on large data) and leaves the column null.
    """
    catalogue = list(catalogue) if catalogue is not None else load_catalogue()
    ctx = read_refresh_context(con)
    reported = [k for k in catalogue if k.reported and k.has_street]
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    evaluate(
        con,
        catalogue,
        year_end_points(ctx),
        codes=[k.code for k in reported],
        by_street=True,
        with_persons=with_persons,
    )
    con.execute(f"""
    CREATE OR REPLACE TABLE marts.kpi_by_street AS
    WITH {_catalogue_values(reported)}
    SELECT CAST(v.kpi_code AS VARCHAR) AS kpi_code,
           CAST(v.year AS INTEGER) AS year,
           CAST(v.street AS VARCHAR) AS street,
           CAST(v.value AS DOUBLE) AS actual,
           CAST(v.persons AS BIGINT) AS persons
    FROM {VALUES_TABLE} AS v JOIN cat USING (kpi_code)
    ORDER BY cat.ord, v.year, v.street
    """)
    _cleanup(con)
    return {"rows": _count(con, "marts.kpi_by_street"), "kpis": len(reported)}


_EMPTY_RECONCILIATION = """
CREATE OR REPLACE TABLE marts.report_reconciliation (
    kpi_code VARCHAR, year INTEGER, published DOUBLE, lower DOUBLE, upper DOUBLE,
    quote VARCHAR, note VARCHAR, computed DOUBLE, "match" BOOLEAN,
    name_zh VARCHAR, difference DOUBLE
)
"""


def build_report_reconciliation(
    con: duckdb.DuckDBPyConnection, catalogue: Sequence[Kpi] | None = None
) -> dict:
    """Create marts.report_reconciliation: every staging.published row with its computed value.

    computed is the KPI for the year as in marts.kpi_yearly.actual (null when the KPI is
    unknown or the year is outside first year..as-of year); match is
    lower <= computed <= upper, false when computed is null. difference = computed - published.
    """
    catalogue = list(catalogue) if catalogue is not None else load_catalogue()
    ctx = read_refresh_context(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    has_published = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'staging' AND table_name = 'published'"
    ).fetchall()[0][0]
    if not has_published:
        con.execute(_EMPTY_RECONCILIATION)
        return {"rows": 0, "matched": 0, "unmatched": 0}

    wanted = con.execute(
        "SELECT DISTINCT kpi_code, CAST(year AS INTEGER) FROM staging.published"
    ).fetchall()
    known = {k.code for k in catalogue}
    codes = sorted({code for code, _ in wanted if code in known})
    points = year_end_points(ctx, {year for _, year in wanted if year is not None})
    evaluate(con, catalogue, points, codes=codes)
    con.execute(f"""
    CREATE OR REPLACE TABLE marts.report_reconciliation AS
    WITH {_catalogue_values(catalogue)}
    SELECT CAST(p.kpi_code AS VARCHAR) AS kpi_code,
           CAST(p.year AS INTEGER) AS year,
           CAST(p.published AS DOUBLE) AS published,
           CAST(p.lower AS DOUBLE) AS lower,
           CAST(p.upper AS DOUBLE) AS upper,
           CAST(p.quote AS VARCHAR) AS quote,
           CAST(p.note AS VARCHAR) AS note,
           CAST(v.value AS DOUBLE) AS computed,
           coalesce(v.value BETWEEN CAST(p.lower AS DOUBLE) AND CAST(p.upper AS DOUBLE), false)
               AS "match",
           CAST(cat.name_zh AS VARCHAR) AS name_zh,
           CAST(v.value - CAST(p.published AS DOUBLE) AS DOUBLE) AS difference
    FROM staging.published AS p
    LEFT JOIN {VALUES_TABLE} AS v ON v.kpi_code = p.kpi_code AND v.year = p.year
    LEFT JOIN cat ON cat.kpi_code = p.kpi_code
    ORDER BY p.year, cat.ord NULLS LAST, p.kpi_code
    """)
    _cleanup(con)
    matched, total = con.execute(
        'SELECT count(*) FILTER (WHERE "match"), count(*) FROM marts.report_reconciliation'
    ).fetchall()[0]
    return {"rows": total, "matched": matched, "unmatched": total - matched}
