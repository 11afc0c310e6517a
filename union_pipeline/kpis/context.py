"""The refresh context: the as-of date and the first reported year (data contract, last section)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb


class KpiError(ValueError):
    """The marts cannot be built as asked (no as-of date, years out of order, ...)."""


@dataclass(frozen=True)
class RefreshContext:
    as_of: dt.date
    first_year: int

    @property
    def as_of_year(self) -> int:
        return self.as_of.year

    @property
    def is_complete(self) -> bool:
        """Whether the as-of year has ended (the as-of date is 31 December)."""
        return (self.as_of.month, self.as_of.day) == (12, 31)

    @property
    def years(self) -> range:
        return range(self.first_year, self.as_of_year + 1)


# Event dates that place the as-of date (joins, enrolments, claims, loans, training).
_LATEST_EVENT = """
SELECT max(d) FROM (
    SELECT max(join_date) AS d FROM staging.members
    UNION ALL SELECT max(enrolled_date) FROM staging.mutual_aid_enrollments
    UNION ALL SELECT max(claim_date) FROM staging.mutual_aid_claims
    UNION ALL SELECT max(disbursed_date) FROM staging.loans
    UNION ALL SELECT max(session_date) FROM staging.training
)
"""

# Years of activity: plan years and claim/loan/training dates (not joins nor foundings).
_FIRST_ACTIVITY_YEAR = """
SELECT CAST(min(y) AS INTEGER) FROM (
    SELECT min(plan_year) AS y FROM staging.mutual_aid_enrollments
    UNION ALL SELECT min(year(claim_date)) FROM staging.mutual_aid_claims
    UNION ALL SELECT min(year(disbursed_date)) FROM staging.loans
    UNION ALL SELECT min(year(session_date)) FROM staging.training
)
"""


def resolve_refresh_context(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date | None = None,
    first_year: int | None = None,
) -> RefreshContext:
    """Work out the as-of date and first year from staging and write `marts.refresh_context`.

    as_of: the override (UNION_AS_OF), else the latest event date in the loaded data.
    first_year: the override (UNION_FIRST_YEAR), else the earliest enrolment plan year or
    claim/loan/training year, capped at the as-of year (so at least that year is reported);
    the as-of year itself when there is no such activity at all.
    """
    if as_of is None:
        as_of = con.execute(_LATEST_EVENT).fetchall()[0][0]
        if as_of is None:
            raise KpiError(
                "cannot work out the as-of date: staging has no dated events "
                "(joins, enrolments, claims, loans, training); set UNION_AS_OF"
            )
    if first_year is None:
        found = con.execute(_FIRST_ACTIVITY_YEAR).fetchall()[0][0]
        first_year = as_of.year if found is None else min(found, as_of.year)
    elif first_year > as_of.year:
        raise KpiError(
            f"first year {first_year} (UNION_FIRST_YEAR) is after the as-of year {as_of.year}"
        )
    ctx = RefreshContext(as_of=as_of, first_year=int(first_year))
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        "CREATE OR REPLACE TABLE marts.refresh_context AS "
        f"SELECT DATE '{ctx.as_of.isoformat()}' AS as_of, "
        f"CAST({ctx.first_year} AS INTEGER) AS first_year"
    )
    return ctx


def read_refresh_context(con: duckdb.DuckDBPyConnection) -> RefreshContext:
    """The context written by `resolve_refresh_context` (which must have run first)."""
    try:
        rows = con.execute("SELECT as_of, first_year FROM marts.refresh_context").fetchall()
    except duckdb.CatalogException as err:
        raise KpiError(
            "marts.refresh_context is missing: run resolve_refresh_context() first"
        ) from err
    if len(rows) != 1 or rows[0][0] is None or rows[0][1] is None:
        raise KpiError(f"marts.refresh_context must hold one complete row, found {rows}")
    return RefreshContext(as_of=rows[0][0], first_year=int(rows[0][1]))
