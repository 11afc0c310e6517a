"""Evaluate catalogue KPIs for many (year, date) points in one set-based statement.

Each non-ratio KPI's `rows` SQL reads `eval_points(year, at_date)`; the engine aggregates
it per point (and per street) with the KPI's `value` (FILTER `where`), stacks all KPIs
with UNION ALL in one statement (KPIs with identical `rows` text share one scan), fills
the gaps with 0 (no rows = nothing counted), then divides ratio parts. The result is the
temporary table `_kpi_values(kpi_code, year, at_date, [street,] value, persons)`, dense:
one row per requested KPI and point (and street). No Python loop per KPI or year.
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
    with_persons: bool = True,
) -> str:
    """Evaluate KPIs (all, or `codes`) at `points`; returns the name of the temp table.

    by_street: one value per street (KPIs without a street are left out); the streets are
    those of staging.unions, every one of them at every point.
    with_persons: in street mode, count the distinct persons (`person`) behind each value;
    otherwise `persons` is null.
    """
    by_code = {k.code: k for k in catalogue}
    wanted = list(catalogue) if codes is None else [by_code[c] for c in codes if c in by_code]
    if by_street:
        wanted = [k for k in wanted if k.has_street]
    base: dict[str, Kpi] = {}
    for k in wanted:
        for code in (k.numerator, k.denominator) if k.is_ratio else (k.code,):
            base.setdefault(code, by_code[code])

    _write_points(con, points)
    keys = "year, at_date, street" if by_street else "year, at_date"
    if not base or not points:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {VALUES_TABLE} (kpi_code VARCHAR, year INTEGER, "
            f"at_date DATE{', street VARCHAR' if by_street else ''}, value DOUBLE, "
            "persons BIGINT)"
        )
        return VALUES_TABLE

    persons = by_street and with_persons
    for kpi in base.values():
        _check(con, kpi, keys, persons)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_RAW_TABLE} AS\n"
        + _raw_select(list(base.values()), by_street, persons)
    )
    if persons:
        _exact_persons(con, list(base.values()), keys)
    con.execute(_dense_statement(list(base.values()), wanted, by_street, persons))
    con.execute(f"DROP TABLE IF EXISTS {_RAW_TABLE}")
    return VALUES_TABLE


_EVAL_POINTS = f"eval_points AS (SELECT DISTINCT year, at_date FROM {POINTS_TABLE})"


def _rows(kpi: Kpi) -> str:
    return kpi.rows.strip().rstrip(";")


def _values_query(kpis: Sequence[Kpi], keys: str, persons: bool = False) -> str:
    """One scan of the (shared) rows: value_i for each KPI, per point (and street), and with
    `persons` a HyperLogLog sketch_i of the distinct persons behind it (see _exact_persons)."""
    measures = []
    for i, k in enumerate(kpis):
        only = f" FILTER (WHERE {k.where})" if k.where else ""
        measures.append(f"{k.value}{only} AS value_{i}")
        if persons and k.person:
            measures.append(f"approx_count_distinct({k.person}){only} AS sketch_{i}")
    return (
        f"SELECT {keys}, {', '.join(measures)}\n"
        f"FROM (\n{_rows(kpis[0])}\n) AS kpi_rows\nGROUP BY {keys}"
    )


EXACT_BELOW = 50


def _persons_query(kpi: Kpi, keys: str, cells: str = "") -> str:
    """Exact distinct persons behind the KPI's rows, per point and street, for the cells
    `cells` selects (a query returning `keys`), or for all."""
    where = f"({kpi.where}) AND " if kpi.where else ""
    restrict = f" AND ({keys}) IN ({cells})" if cells else ""
    return (
        f"SELECT {keys}, count(DISTINCT {kpi.person}) AS persons\n"
        f"FROM (\n{_rows(kpi)}\n) AS kpi_rows\n"
        f"WHERE {where}({kpi.person}) IS NOT NULL{restrict}\nGROUP BY {keys}"
    )


def _exact_persons(con: duckdb.DuckDBPyConnection, base: Sequence[Kpi], keys: str) -> None:
    """Replace the sketch by the exact count in cells the sketch puts below EXACT_BELOW.

    Exact counting keeps every (cell, person) pair in memory: 13 GB and a minute at province
    scale. The sketch is nearly free, and in its small range it cannot overestimate (n
    persons fill at most n registers), so the small cells, the ones suppression is about,
    are always exact; large ones are within a few percent.
    """
    on = " AND ".join(f"r.{k.strip()} = e.{k.strip()}" for k in keys.split(","))
    for kpi in base:
        if not kpi.person:
            continue
        cells = (
            f"SELECT {keys} FROM {_RAW_TABLE} WHERE kpi_code = {sql_text(kpi.code)} "
            f"AND persons > 0 AND persons < {EXACT_BELOW}"
        )
        if not con.execute(f"SELECT count(*) FROM ({cells})").fetchall()[0][0]:
            continue
        con.execute(
            f"UPDATE {_RAW_TABLE} AS r SET persons = e.persons FROM (WITH {_EVAL_POINTS}\n"
            f"{_persons_query(kpi, keys, cells)}) AS e "
            f"WHERE r.kpi_code = {sql_text(kpi.code)} AND {on}"
        )


def _raw_select(base: Sequence[Kpi], by_street: bool, persons: bool) -> str:
    """All KPIs in one statement. KPIs with the same `rows` text share one scan (a CTE with
    one aggregate per KPI, and its persons sketch)."""
    street = ", street" if by_street else ""
    keys = "year, at_date" + street
    groups: dict[str, list[Kpi]] = {}
    for kpi in base:
        groups.setdefault(" ".join(kpi.rows.split()), []).append(kpi)
    ctes, selects = [_EVAL_POINTS], []
    for g, kpis in enumerate(groups.values()):
        ctes.append(f"g{g} AS MATERIALIZED (\n{_values_query(kpis, keys, persons)}\n)")
        for i, kpi in enumerate(kpis):
            count = f"sketch_{i}" if persons and kpi.person else "NULL"
            selects.append(
                f"SELECT {sql_text(kpi.code)} AS kpi_code, CAST(year AS INTEGER) AS year, "
                f"CAST(at_date AS DATE) AS at_date{street}, "
                f"CAST(value_{i} AS DOUBLE) AS value, CAST({count} AS BIGINT) AS persons "
                f"FROM g{g}"
            )
    return "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(selects)


def _dense_statement(
    base: Sequence[Kpi], wanted: Sequence[Kpi], by_street: bool, persons: bool
) -> str:
    """Every requested KPI at every point (and street): 0 where nothing was counted; ratios
    divided from their parts (null on a zero denominator)."""
    spec = ", ".join(
        f"({sql_text(k.code)}, {str(persons and k.person is not None).lower()})" for k in base
    )
    street = ", street" if by_street else ""
    n_street = ", n.street" if by_street else ""
    sql = f"""
    CREATE OR REPLACE TEMP TABLE {VALUES_TABLE} AS
    WITH spec(kpi_code, has_persons) AS (VALUES {spec}),
    grid AS (
        SELECT spec.kpi_code, spec.has_persons, pts.year, pts.at_date{street}
        FROM spec
        CROSS JOIN (SELECT DISTINCT year, at_date FROM {POINTS_TABLE}) AS pts
        {
        "CROSS JOIN (SELECT DISTINCT street FROM staging.unions WHERE street IS NOT NULL)"
        if by_street
        else ""
    }
    ),
    base AS (
        SELECT kpi_code, year, at_date{street},
               coalesce(r.value, 0) AS value,
               CASE WHEN has_persons THEN coalesce(r.persons, 0) END AS persons
        FROM grid LEFT JOIN {_RAW_TABLE} AS r USING (kpi_code, year, at_date{street})
    )
    SELECT kpi_code, year, at_date{street}, value, persons
    FROM base WHERE kpi_code IN ({", ".join(sql_text(k.code) for k in wanted)})
    """
    ratios = [k for k in wanted if k.is_ratio]
    if ratios:
        ratio_spec = ", ".join(
            f"({sql_text(k.code)}, {sql_text(k.numerator)}, {sql_text(k.denominator)})"
            for k in ratios
        )
        sql += f"""
    UNION ALL
    SELECT q.kpi_code, n.year, n.at_date{n_street},
           n.value / nullif(d.value, 0) AS value,
           coalesce(d.persons, n.persons) AS persons
    FROM (VALUES {ratio_spec}) AS q(kpi_code, numerator, denominator)
    JOIN base AS n ON n.kpi_code = q.numerator
    JOIN base AS d ON d.kpi_code = q.denominator
                  AND d.year = n.year AND d.at_date = n.at_date
                  {"AND d.street = n.street" if by_street else ""}
    """
    return sql


def _write_points(con: duckdb.DuckDBPyConnection, points: Sequence[EvalPoint]) -> None:
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {POINTS_TABLE} (year INTEGER, at_date DATE, role VARCHAR)"
    )
    if points:
        rows = ", ".join(
            f"({p.year}, DATE '{p.at_date.isoformat()}', {sql_text(p.role)})" for p in points
        )
        con.execute(f"INSERT INTO {POINTS_TABLE} VALUES {rows}")


def _check(con: duckdb.DuckDBPyConnection, kpi: Kpi, keys: str, persons: bool) -> None:
    """Bind one KPI's queries (no execution) so that a broken entry is named in the error."""
    queries = [_values_query([kpi], keys)]
    if persons and kpi.person:
        queries.append(_persons_query(kpi, keys))
    for query in queries:
        try:
            con.execute(f"DESCRIBE WITH {_EVAL_POINTS}\n{query}").fetchall()
        except duckdb.Error as err:
            raise KpiError(
                f"KPI {kpi.code!r}: its rows/where/value/person SQL fails "
                f"(does `rows` return {keys}?): {err}"
            ) from err
