"""Evaluate catalogue KPIs for many (year, date) points in one set-based query.

Each non-ratio KPI's `rows` SQL reads `eval_points(year, at_date)`; the engine aggregates
it per point (and per street), stacks all KPIs with UNION ALL into one statement, fills
the gaps with 0 (no rows = nothing counted), then divides ratio parts. The result is the
temporary table `_kpi_values(kpi_code, year, at_date, [street,] value, persons)`, dense:
one row per requested KPI and point (and street).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb

from union_pipeline.kpis.catalogue import Kpi
from union_pipeline.kpis.context import KpiError, RefreshContext

POINTS_TABLE = "_kpi_points"
VALUES_TABLE = "_kpi_values"
_RAW_TABLE = "_kpi_raw"

YEAR_END = "year_end"  # the KPI's value for its year: 31 December, or the as-of date
SAME_DAY = "same_day"  # a complete year's value at the as-of date's month and day


@dataclass(frozen=True)
class EvalPoint:
    year: int
    at_date: dt.date
    role: str = YEAR_END


def same_day_in(year: int, as_of: dt.date) -> dt.date:
    """The as-of date's month and day in `year`; 29 February becomes 28 February."""
    try:
        return as_of.replace(year=year)
    except ValueError:  # 29 February in a common year
        return dt.date(year, 2, 28)


def year_end(ctx: RefreshContext, year: int) -> dt.date:
    return ctx.as_of if year == ctx.as_of_year else dt.date(year, 12, 31)


def year_end_points(ctx: RefreshContext, years: Iterable[int] | None = None) -> list[EvalPoint]:
    wanted = ctx.years if years is None else sorted(set(years) & set(ctx.years))
    return [EvalPoint(y, year_end(ctx, y), YEAR_END) for y in wanted]


def yearly_points(ctx: RefreshContext) -> list[EvalPoint]:
    """Points marts.kpi_yearly needs: every year's value, and for an incomplete as-of year
    every earlier year's value at the same month and day (prior_actual and seasonality)."""
    points = year_end_points(ctx)
    if not ctx.is_complete:
        points += [
            EvalPoint(y, same_day_in(y, ctx.as_of), SAME_DAY)
            for y in range(ctx.first_year, ctx.as_of_year)
        ]
    return points


def sql_text(value: str | None) -> str:
    """A SQL string literal (or NULL)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def evaluate(
    con: duckdb.DuckDBPyConnection,
    catalogue: Sequence[Kpi],
    points: Sequence[EvalPoint],
    *,
    codes: Iterable[str] | None = None,
    by_street: bool = False,
) -> str:
    """Evaluate KPIs (all, or `codes`) at `points`; returns the name of the temp table.

    by_street: one value per street (KPIs without a street are left out); the streets are
    those of staging.unions, every one of them at every point.
    """
    by_code = {k.code: k for k in catalogue}
    wanted = list(catalogue) if codes is None else [by_code[c] for c in codes if c in by_code]
    if by_street:
        wanted = [k for k in wanted if k.has_street]
    ratios = [k for k in wanted if k.is_ratio]
    base: dict[str, Kpi] = {}
    for k in wanted:
        for code in (k.numerator, k.denominator) if k.is_ratio else (k.code,):
            base.setdefault(code, by_code[code])

    _write_points(con, points)
    street_col = ", street" if by_street else ""
    if not base or not points:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {VALUES_TABLE} (kpi_code VARCHAR, year INTEGER, "
            f"at_date DATE{', street VARCHAR' if by_street else ''}, value DOUBLE, "
            "persons BIGINT)"
        )
        return VALUES_TABLE

    cte = f"WITH eval_points AS (SELECT DISTINCT year, at_date FROM {POINTS_TABLE})\n"
    parts = [_kpi_query(k, by_street) for k in base.values()]
    for kpi, part in zip(base.values(), parts, strict=True):
        _check(con, kpi, cte + part, by_street)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_RAW_TABLE} AS\n" + cte + "\nUNION ALL\n".join(parts)
    )

    spec = ", ".join(f"({sql_text(k.code)}, {str(k.persons is not None).lower()})"
                     for k in base.values())  # fmt: skip
    streets = (
        ", streets AS (SELECT DISTINCT street FROM staging.unions WHERE street IS NOT NULL)"
        if by_street
        else ""
    )
    on_street = " AND r.street = g.street" if by_street else ""
    sql = f"""
    CREATE OR REPLACE TEMP TABLE {VALUES_TABLE} AS
    WITH pts AS (SELECT DISTINCT year, at_date FROM {POINTS_TABLE}),
    spec(kpi_code, has_persons) AS (VALUES {spec}){streets},
    grid AS (
        SELECT spec.kpi_code, spec.has_persons, pts.year, pts.at_date
               {", streets.street" if by_street else ""}
        FROM spec CROSS JOIN pts {"CROSS JOIN streets" if by_street else ""}
    ),
    base AS (
        SELECT g.kpi_code, g.year, g.at_date{street_col.replace(", ", ", g.")},
               coalesce(r.value, 0) AS value,
               CASE WHEN g.has_persons THEN coalesce(r.persons, 0) END AS persons
        FROM grid AS g
        LEFT JOIN {_RAW_TABLE} AS r
          ON r.kpi_code = g.kpi_code AND r.year = g.year AND r.at_date = g.at_date{on_street}
    )
    SELECT kpi_code, year, at_date{street_col}, value, persons
    FROM base WHERE kpi_code IN ({", ".join(sql_text(k.code) for k in wanted)})
    """
    if ratios:
        ratio_spec = ", ".join(
            f"({sql_text(k.code)}, {sql_text(k.numerator)}, {sql_text(k.denominator)})"
            for k in ratios
        )
        on_street = " AND d.street = n.street" if by_street else ""
        sql += f"""
    UNION ALL
    SELECT q.kpi_code, n.year, n.at_date{street_col.replace(", ", ", n.")},
           n.value / nullif(d.value, 0) AS value,
           coalesce(d.persons, n.persons) AS persons
    FROM (VALUES {ratio_spec}) AS q(kpi_code, numerator, denominator)
    JOIN base AS n ON n.kpi_code = q.numerator
    JOIN base AS d ON d.kpi_code = q.denominator
                  AND d.year = n.year AND d.at_date = n.at_date{on_street}
    """
    con.execute(sql)
    con.execute(f"DROP TABLE IF EXISTS {_RAW_TABLE}")
    return VALUES_TABLE


def _write_points(con: duckdb.DuckDBPyConnection, points: Sequence[EvalPoint]) -> None:
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {POINTS_TABLE} "
        "(year INTEGER, at_date DATE, role VARCHAR)"
    )
    if points:
        rows = ", ".join(
            f"({p.year}, DATE '{p.at_date.isoformat()}', {sql_text(p.role)})" for p in points
        )
        con.execute(f"INSERT INTO {POINTS_TABLE} VALUES {rows}")


def _kpi_query(kpi: Kpi, by_street: bool) -> str:
    rows = kpi.rows.strip().rstrip(";")
    street = ", street" if by_street else ""
    persons = kpi.persons if (by_street and kpi.persons) else "NULL"
    return (
        f"SELECT {sql_text(kpi.code)} AS kpi_code, CAST(year AS INTEGER) AS year, "
        f"CAST(at_date AS DATE) AS at_date{street}, "
        f"CAST({kpi.value} AS DOUBLE) AS value, CAST({persons} AS BIGINT) AS persons\n"
        f"FROM (\n{rows}\n) AS kpi_rows\n"
        f"GROUP BY year, at_date{street}\n"
    )


def _check(con: duckdb.DuckDBPyConnection, kpi: Kpi, query: str, by_street: bool) -> None:
    """Bind one KPI's query (no execution) so that a broken entry is named in the error."""
    try:
        con.execute("DESCRIBE " + query).fetchall()
    except duckdb.Error as err:
        hint = " (does `rows` return year, at_date" + (", street" if by_street else "") + "?)"
        raise KpiError(f"KPI {kpi.code!r}: its rows/value SQL fails{hint}: {err}") from err
